package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
)

// HeaderRedeliveries counts redeliveries of a message on classic queues,
// which, unlike quorum queues (x-delivery-count), keep no count of their
// own. A replay from the dead-letter queue drops it to start afresh.
const HeaderRedeliveries = "x-renderfarm-redeliveries"

// deps is what the consumer and the control server share, assembled by
// the Worker.
type deps struct {
	cfg     Config
	conn    Broker
	reg     *Registry
	st      *state
	events  *eventSender
	metrics *workerMetrics
	results ResultBackend
	log     *slog.Logger
}

// consumer takes deliveries from the worker's queues and runs each task in
// one of Concurrency slots. It can pause (stop taking work, hand back what
// it holds but has not started) and resume, and it shuts down warm (let
// running tasks finish) or cold (cancel them, and requeue their messages).
type consumer struct {
	rt    *deps
	slots chan struct{}
	// alone is held by the one task at a time that takes every slot: a
	// task that started before without finishing (see priorStarts).
	alone chan struct{}

	// taskCtx is every handler's parent: cancelled on a cold shutdown.
	taskCtx    context.Context
	cancelTask context.CancelCauseFunc

	mu       sync.Mutex
	running  bool
	stopConn context.CancelFunc // stops the broker consumers
	stopping chan struct{}      // closed to hand back reserved work
	tasks    sync.WaitGroup     // one per delivery being handled
}

func newConsumer(rt *deps) *consumer {
	c := &consumer{rt: rt, slots: make(chan struct{}, rt.cfg.Concurrency), alone: make(chan struct{}, 1)}
	c.taskCtx, c.cancelTask = context.WithCancelCause(context.Background())
	return c
}

// Start consumes every configured queue.
func (c *consumer) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return nil
	}
	cctx, cancel := context.WithCancel(context.Background())
	stopping := make(chan struct{})
	for _, q := range c.rt.cfg.Queues {
		ch, err := c.rt.conn.Consume(cctx, broker.ConsumeOptions{Queue: q.Name, Prefetch: c.rt.cfg.Prefetch})
		if err != nil {
			cancel()
			return fmt.Errorf("consuming %s: %w", q.Name, err)
		}
		go c.loop(ch, q, stopping)
	}
	c.running, c.stopConn, c.stopping = true, cancel, stopping
	return nil
}

func (c *consumer) loop(ch <-chan *broker.Delivery, q celery.Queue, stopping chan struct{}) {
	for d := range ch {
		c.tasks.Add(1)
		go func() {
			defer c.tasks.Done()
			c.handle(d, q, stopping)
		}()
	}
}

// Pause stops taking deliveries and hands back those received but not
// started (SIGTSTP, and the first half of a warm shutdown).
func (c *consumer) Pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return
	}
	c.stopConn()
	close(c.stopping)
	c.running = false
}

// Shutdown stops consuming, lets running tasks finish until ctx ends, then
// cancels what is still running; no message is lost either way: unstarted
// and cancelled tasks go back to their queue.
func (c *consumer) Shutdown(ctx context.Context) {
	c.Pause()
	done := make(chan struct{})
	go func() { c.tasks.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	c.rt.log.Warn("cold shutdown: cancelling running tasks; their messages go back to the queue")
	c.cancelTask(errColdShutdown)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.rt.log.Warn("some handlers ignored cancellation; exiting without them")
	}
}

// handle takes one delivery from receipt to acknowledgement.
func (c *consumer) handle(d *broker.Delivery, q celery.Queue, stopping <-chan struct{}) {
	rt := c.rt
	if d.Stale() {
		c.dropStale(d, nil)
		return
	}
	if d.Redelivered {
		rt.metrics.redelivery()
	}
	msg, err := celery.Decode(d.Delivery)
	if err != nil {
		c.poison(d, q, "malformed message: "+err.Error(), nil)
		return
	}
	r := &request{msg: msg, d: d, queue: q, received: time.Now()}
	if c.countsStarts() {
		if c.priorStarts(r) {
			return
		}
	} else if c.countDelivery(d, q, msg) {
		return
	}
	rt.events.send("task-received", func() map[string]any { return receivedFields(msg) })
	reg, ok := rt.reg.lookup(msg.Task)
	if !ok {
		rt.log.Warn("unknown task, rejected", "task", msg.Task, "id", msg.ID)
		rt.metrics.finished(unregistered, outcomeRejected)
		c.failure(r, celery.NotRegistered(msg.Task), nil)
		rt.events.send("task-rejected", func() map[string]any { return map[string]any{"uuid": msg.ID, "requeue": false} })
		c.settle(r, d.Reject(false))
		return
	}
	if c.skip(r) {
		return
	}
	if msg.ETA != nil && time.Until(*msg.ETA) > 0 && !c.waitETA(r, stopping) {
		return
	}
	rt.st.move(r, nil, rt.st.reserved)
	free, why := c.admit(r, stopping)
	switch why {
	case admitStopping:
		rt.st.move(r, rt.st.reserved, nil)
		c.giveBack(r)
		return
	case admitLost:
		rt.st.move(r, rt.st.reserved, nil)
		c.dropStale(d, msg)
		return
	}
	// The slot is the render admission: run gives it back as soon as the
	// handler returns, before storing the result and settling, which wait
	// on the broker.
	release := sync.OnceFunc(free)
	defer release()
	// The channel may have died while this waited for a slot (select
	// picks at random when both are ready): the broker has requeued the
	// message, so running it here would run it twice.
	if d.Stale() {
		rt.st.move(r, rt.st.reserved, nil)
		c.dropStale(d, msg)
		return
	}
	if c.skip(r) { // revoked while it waited for a slot
		rt.st.move(r, rt.st.reserved, nil)
		return
	}
	if c.countsStarts() && r.counted {
		c.recordStart(r)
	}
	c.run(r, reg, release)
}

// dropStale forgets a delivery whose channel died before its task started.
// Nothing is sent: the broker requeued the message when the channel died
// and delivers it again, here or to another worker. msg is nil when the
// delivery was not decoded yet.
func (c *consumer) dropStale(d *broker.Delivery, msg *celery.Message) {
	id := ""
	if msg != nil {
		id = msg.ID
	}
	c.rt.log.Info("dropping a task received on a channel that has since closed; the broker redelivers it",
		"id", id, "delivery_tag", d.DeliveryTag)
}

// skip settles a task that must not run: revoked, or past its expiry. Its
// start record, if it started before, goes with it.
func (c *consumer) skip(r *request) bool {
	switch {
	case c.rt.st.revoked.has(r.msg.ID):
		c.revoked(r, "revoked", false)
	case r.msg.Expires != nil && time.Now().After(*r.msg.Expires):
		c.revoked(r, "expired", true)
	default:
		return false
	}
	c.rt.metrics.finished(r.msg.Task, outcomeRevoked)
	c.settle(r, r.d.Ack())
	if c.countsStarts() && r.prior > 0 {
		c.clearStarts(r)
	}
	return true
}

// countDelivery enforces MaxStarts on deliveries, for a worker without a
// start ledger: it cannot tell a message that killed its worker from one
// that was only prefetched there. Quorum queues count deliveries in
// x-delivery-count; on classic queues a redelivered message is republished
// with a count header of ours and the original acked, so the count travels
// with the message from worker to worker. It reports whether the delivery
// was dealt with here.
func (c *consumer) countDelivery(d *broker.Delivery, q celery.Queue, msg *celery.Message) bool {
	limit := c.rt.cfg.MaxStarts
	if n, ok := celery.TableInt(d.Headers, "x-delivery-count"); ok {
		if n >= int64(limit) {
			c.poison(d, q, fmt.Sprintf("delivered %d times, more than the limit of %d", n+1, limit), msg)
			return true
		}
		return false
	}
	n, _ := celery.TableInt(d.Headers, HeaderRedeliveries)
	if !d.Redelivered {
		return false
	}
	n++
	if n >= int64(limit) {
		c.poison(d, q, fmt.Sprintf("delivered %d times, more than the limit of %d", n+1, limit), msg)
		return true
	}
	if d.Stale() {
		// A copy published now could not be matched by an ack: the
		// broker already holds the original again.
		c.dropStale(d, msg)
		return true
	}
	pub := republishable(d)
	pub.Headers[HeaderRedeliveries] = n
	if err := c.rt.conn.Publish(context.Background(), "", q.Name, pub); err != nil {
		c.rt.log.Warn("cannot recount a redelivered message; running it as is", "id", msg.ID, "err", err)
		return false
	}
	c.settle(nil, d.Ack())
	return true
}

// poison dead-letters a message that cannot or must not run, with the
// reason, and records FAILURE when it is a task a client may wait for,
// in the result backend and through the task's DeadLettered hook (its own
// record, such as a render's manifest). It reports whether the message is
// in the dead-letter exchange; if not, it went back to its queue.
func (c *consumer) poison(d *broker.Delivery, q celery.Queue, reason string, msg *celery.Message) bool {
	c.rt.log.Error("dead-lettering message", "queue", q.Name, "reason", reason, "message_id", d.MessageId, "correlation_id", d.CorrelationId)
	if msg != nil {
		c.failure(&request{msg: msg, d: d, queue: q}, celery.ExceptionInfo{Type: "WorkerLostError", Module: "billiard.exceptions", Message: []any{reason}}, nil)
	}
	c.rt.metrics.deadLetter(reason)
	if msg != nil {
		name := unregistered
		if reg, ok := c.rt.reg.lookup(msg.Task); ok {
			name = msg.Task
			c.deadLettered(reg, msg, reason)
		}
		c.rt.metrics.finished(name, outcomeDeadLettered)
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishWait)
	defer cancel()
	if err := deadLetter(ctx, c.rt.conn, c.rt.cfg.DeadLetterExchange, c.rt.cfg.Hostname, d, q.Name, reason); err != nil {
		// Not recorded, so not dropped: back to the queue, where the
		// start (or redelivery) count still bounds how often this happens.
		c.rt.log.Error("dead-letter publish failed; requeueing", "err", err)
		c.settle(nil, d.Nack(true))
		return false
	}
	c.settle(nil, d.Ack())
	return true
}

// deadLettered runs the task's DeadLettered hook, if it has one.
func (c *consumer) deadLettered(reg registered, msg *celery.Message, reason string) {
	if reg.opts.DeadLettered == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishWait)
	defer cancel()
	t := &Task{ID: msg.ID, Name: msg.Task, Args: msg.Args, Kwargs: msg.Kwargs, Retries: msg.Retries, Request: msg}
	if err := reg.opts.DeadLettered(ctx, t, reason); err != nil {
		c.rt.log.Error("the task's record of its dead-lettering was not written", "task", msg.Task, "id", msg.ID, "err", err)
	}
}

// giveBack returns a delivery that was received but not started, so that
// it does not count as a redelivery: a copy goes back to the queue and the
// original is acked. If the copy can't be published the original is
// requeued instead.
func (c *consumer) giveBack(r *request) {
	if r.d.Stale() {
		// The broker already requeued it; a copy would be a duplicate.
		c.dropStale(r.d, r.msg)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), quickWait)
	defer cancel()
	if err := c.rt.conn.Publish(ctx, "", r.queue.Name, copyOf(r)); err != nil {
		c.settle(r, r.d.Nack(true))
		return
	}
	c.settle(r, r.d.Ack())
}

// settle logs what an ack/nack/reject returned. A stale delivery (its
// channel died) is not an error: the broker redelivers it.
func (c *consumer) settle(r *request, err error) {
	if r != nil {
		r.acked = true
	}
	if err != nil {
		c.rt.log.Warn("acknowledgement not sent; the broker will redeliver", "err", err)
	}
}

// republishable copies a delivery as a publishing, less the headers
// RabbitMQ added on its way.
func republishable(d *broker.Delivery) amqp.Publishing { return broker.Republishing(d.Delivery) }
