package worker

import (
	"context"
	"fmt"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
)

// StartLedger keeps, where every worker reads it, how many times each
// message's handler has begun without ending. It is the record that
// outlives a worker killed by its own task (SIGKILL, a fault in a C
// library): the next worker to receive the message learns that it started
// before. A redelivery alone says nothing of the kind, since a worker that
// dies returns every message it held, most of them never started.
//
// Keys are message identities (task id and retry number). A ledger holds a
// small record per key from Record until Clear. Record must be durable when
// it returns: the handler runs next, and may kill the process at once.
type StartLedger interface {
	// Starts is the count recorded for key; 0 when there is no record.
	Starts(ctx context.Context, key string) (int, error)
	// Record sets key's count to n.
	Record(ctx context.Context, key string, n int) error
	// Clear drops key's record; clearing a key without one is no error.
	Clear(ctx context.Context, key string) error
}

// hdrStarted marks a copy the worker republishes (handed back, parked for
// its eta) of a message that had started before, so that whoever receives
// the copy, which RabbitMQ delivers as new, still looks up the ledger.
const hdrStarted = "x-renderfarm-started"

// ledgerWait bounds a ledger operation. A start that cannot be recorded
// within it runs anyway: refusing would stop every task while the journal
// is unreachable, and quorum queues' x-delivery-limit still bounds a
// message that crashes worker after worker.
const ledgerWait = 5 * time.Second

// startKey is the ledger key of a message: a retry is a new message with
// its own count, a copy handed back or recounted keeps its original's.
func startKey(m *celery.Message) string {
	return m.ID + "." + strconv.Itoa(m.Retries)
}

// countsStarts: with late acks and a ledger, a message is poison when its
// handler started MaxStarts times. Early-acked messages never come back
// after a crash, and without a ledger only deliveries can be counted
// (countDelivery).
func (c *consumer) countsStarts() bool {
	return c.rt.cfg.Starts != nil && !c.rt.cfg.EarlyAck
}

// mayHaveStarted: only a message delivered before, or a copy of one, can
// have a record; a first delivery costs no lookup.
func mayHaveStarted(d *broker.Delivery) bool {
	if d.Redelivered {
		return true
	}
	for _, h := range []string{"x-delivery-count", hdrStarted, HeaderRedeliveries} {
		if n, ok := celery.TableInt(d.Headers, h); ok && n > 0 {
			return true
		}
	}
	return false
}

// priorStarts looks up how often r's handler started before. A message at
// the limit is dead-lettered here (done). A message that started before
// runs alone, so that if it kills this worker too, nothing else running
// beside it is charged with a start it did not cause.
//
// Only the starts of a message that may have started before are recorded:
// a first delivery's start costs no ledger write and no delete, which on
// an S3 journal would be two requests, one of them inside the render
// slot, on every task. A poison message's first start therefore goes
// uncounted, and it kills MaxStarts+1 workers before it is dead-lettered.
func (c *consumer) priorStarts(r *request) (done bool) {
	r.key = startKey(r.msg)
	if !mayHaveStarted(r.d) {
		return false
	}
	r.counted = true
	ctx, cancel := context.WithTimeout(context.Background(), ledgerWait)
	defer cancel()
	n, err := c.rt.cfg.Starts.Starts(ctx, r.key)
	if err != nil {
		// Unknown: run it alone, as if it had started, and count from 0.
		c.rt.log.Warn("cannot read the start ledger; running the redelivered task alone", "id", r.msg.ID, "err", err)
		r.alone = true
		return false
	}
	r.prior, r.alone = n, n > 0
	if limit := c.rt.cfg.MaxStarts; n >= limit {
		reason := fmt.Sprintf("started %d times after its first delivery without finishing (its worker died each time), the limit is %d", n, limit)
		if c.poison(r.d, r.queue, reason, r.msg) {
			c.clearStarts(r)
		}
		return true
	}
	if n > 0 {
		c.rt.log.Info("task started before without finishing; running it alone", "id", r.msg.ID, "starts", n)
	}
	return false
}

// recordStart counts the start about to happen, before the handler runs.
func (c *consumer) recordStart(r *request) {
	ctx, cancel := context.WithTimeout(context.Background(), ledgerWait)
	defer cancel()
	if err := c.rt.cfg.Starts.Record(ctx, r.key, r.prior+1); err != nil {
		c.rt.metrics.startNotRecorded()
		c.rt.log.Warn("start not recorded; running the task anyway", "id", r.msg.ID, "err", err)
	}
}

// endStart settles the ledger once the handler has returned, however it
// ended: that start did not kill the worker. A message that comes back
// (cancelled by a cold shutdown, or its delivery died meanwhile) keeps the
// starts it had before this one; any other is done with its record.
func (c *consumer) endStart(r *request, comesBack bool) {
	if !comesBack || r.prior == 0 {
		c.clearStarts(r)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ledgerWait)
	defer cancel()
	if err := c.rt.cfg.Starts.Record(ctx, r.key, r.prior); err != nil {
		c.rt.log.Warn("cannot restore the start count", "id", r.msg.ID, "err", err)
	}
}

func (c *consumer) clearStarts(r *request) {
	ctx, cancel := context.WithTimeout(context.Background(), ledgerWait)
	defer cancel()
	if err := c.rt.cfg.Starts.Clear(ctx, r.key); err != nil {
		c.rt.log.Warn("cannot clear the start record", "id", r.msg.ID, "err", err)
	}
}

// copyOf is a delivery republished as a new message: marked when it had
// started before, so its receiver looks its count up.
func copyOf(r *request) amqp.Publishing {
	p := republishable(r.d)
	if r.prior > 0 || r.alone {
		p.Headers[hdrStarted] = int64(max(r.prior, 1))
	}
	return p
}

// admission is why admit returned.
type admission int

const (
	admitted admission = iota
	admitStopping
	admitLost
)

// admit waits for the slots r needs: one, or all of them for a task that
// must run alone (one such task at a time, so two never hold half the
// slots each). release gives back whatever was taken; on a refusal
// nothing is held.
func (c *consumer) admit(r *request, stopping <-chan struct{}) (release func(), why admission) {
	held, alone := 0, false
	free := func() {
		for ; held > 0; held-- {
			<-c.slots
		}
		if alone {
			<-c.alone
			alone = false
		}
	}
	take := func(ch chan struct{}) admission {
		select {
		case ch <- struct{}{}:
			return admitted
		case <-stopping:
			return admitStopping
		case <-r.d.Lost():
			return admitLost
		}
	}
	if r.alone {
		if why = take(c.alone); why != admitted {
			return nil, why
		}
		alone = true
	}
	need := 1
	if r.alone {
		need = cap(c.slots)
	}
	for held < need {
		if why = take(c.slots); why != admitted {
			free()
			return nil, why
		}
		held++
	}
	return free, admitted
}
