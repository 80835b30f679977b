package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

var (
	// ErrStaleDelivery: the delivery's channel has closed since it was
	// received (reconnect, channel error), so its tag means nothing any more.
	// Nothing was sent; the broker will redeliver the message.
	ErrStaleDelivery = errors.New("broker: stale delivery: its channel has closed; the broker will redeliver it")
	// ErrAlreadySettled: the delivery was already acked, nacked or rejected.
	// Nothing was sent: settling a tag twice is a channel error that would
	// requeue every other unacked delivery of the consumer.
	ErrAlreadySettled = errors.New("broker: delivery already acked, nacked or rejected")
)

// ConsumeOptions configures Consume.
type ConsumeOptions struct {
	Queue     string
	Tag       string // consumer tag; generated when empty
	Prefetch  int    // per-consumer QoS; 0 means unlimited
	Exclusive bool
	Args      amqp.Table // e.g. x-priority
}

// Delivery is an amqp.Delivery that remembers which channel it came from.
// Ack/Nack/Reject on a delivery whose channel has since died return
// ErrStaleDelivery and send nothing; they are never sent on a newer channel.
// The embedded amqp.Delivery's own Ack/Nack/Reject go through the same check.
type Delivery struct {
	amqp.Delivery // its Acknowledger is the consumerChannel it arrived on
}

// Ack acknowledges this delivery.
func (d *Delivery) Ack() error { return d.Delivery.Ack(false) }

// Nack negatively acknowledges this delivery; requeue puts it back in the
// queue, otherwise it is dropped or dead-lettered.
func (d *Delivery) Nack(requeue bool) error { return d.Delivery.Nack(false, requeue) }

// Reject is Nack for a single message (basic.reject).
func (d *Delivery) Reject(requeue bool) error { return d.Delivery.Reject(requeue) }

// Stale reports whether the delivery's channel has died (connection lost,
// channel closed by the broker). The broker has then requeued the message
// and will deliver it again, so a delivery that is stale before its work
// starts must not be started: that work would run twice. A Delivery not
// made by Consume (tests) is never stale.
func (d *Delivery) Stale() bool {
	cs, ok := d.Acknowledger.(*consumerChannel)
	return ok && cs.isDead()
}

// Lost returns a channel closed once the delivery's channel has died, for
// callers that hold a delivery while they wait for something else (a free
// slot, an eta). It is nil, never ready, for a Delivery not made by Consume.
func (d *Delivery) Lost() <-chan struct{} {
	if cs, ok := d.Acknowledger.(*consumerChannel); ok {
		return cs.deadCh
	}
	return nil
}

// Consume starts a consumer on its own channel, with per-consumer QoS
// (basic.qos global=false: quorum queues refuse global QoS). The first
// subscription happens before Consume returns, so a missing queue or an
// exclusive-consumer conflict is returned here.
//
// The returned Go channel stays the same across reconnects: after a
// reconnect, once the topology is re-declared, the consumer is re-established
// on a new channel. A consumer whose channel the broker closes while the
// connection stays up (queue deleted, consumer_timeout) is re-subscribed with
// backoff. The Go channel is closed when ctx is cancelled (the consumer is
// basic.cancel'ed first; deliveries already handed out remain the caller's to
// settle, and its AMQP channel stays open until they are) or the Conn closes.
func (c *Conn) Consume(ctx context.Context, opts ConsumeOptions) (<-chan *Delivery, error) {
	if opts.Queue == "" {
		return nil, errors.New("broker: consume: Queue is required")
	}
	if opts.Prefetch < 0 {
		return nil, fmt.Errorf("broker: consume %q: negative Prefetch %d", opts.Queue, opts.Prefetch)
	}
	if err := opts.Args.Validate(); err != nil {
		return nil, fmt.Errorf("broker: consume %q: %w", opts.Queue, err)
	}
	if opts.Tag == "" {
		opts.Tag = "renderfarm-" + c.nextID()
	}
	k := &consumer{
		c:    c,
		opts: opts,
		out:  make(chan *Delivery),
		log:  c.log.With("queue", opts.Queue, "consumer_tag", opts.Tag),
	}
	var cs *consumerChannel
	for {
		s, err := c.waitSession(ctx)
		if err != nil {
			return nil, fmt.Errorf("broker: consume %q: %w", opts.Queue, err)
		}
		if cs, err = k.open(s); err == nil {
			break
		}
		if !s.lost() {
			return nil, fmt.Errorf("broker: consume %q: %w", opts.Queue, err)
		}
		if err := c.awaitLoss(ctx, s); err != nil {
			return nil, fmt.Errorf("broker: consume %q: %w", opts.Queue, err)
		}
	}
	// k.ctx ends with either the caller's ctx or the Conn.
	kctx, kcancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, kcancel)
	k.ctx = kctx
	if !c.goTracked(func() {
		defer kcancel()
		defer stop()
		k.run(cs)
	}) {
		stop()
		kcancel()
		return nil, fmt.Errorf("broker: consume %q: %w", opts.Queue, ErrClosed)
	}
	return k.out, nil
}

type consumer struct {
	c    *Conn
	opts ConsumeOptions
	ctx  context.Context // ends with the caller's ctx (basic.cancel) or the Conn
	out  chan *Delivery
	log  *slog.Logger
}

type stopReason int

const (
	channelLost stopReason = iota // resubscribe on a new channel
	cancelled                     // the caller's ctx ended
	connClosed                    // Conn.Close
)

func (k *consumer) stopReason() stopReason {
	if k.c.ctx.Err() != nil {
		return connClosed
	}
	return cancelled
}

func (k *consumer) open(s *session) (*consumerChannel, error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, err
	}
	cs := &consumerChannel{
		ch:          ch,
		s:           s,
		closes:      ch.NotifyClose(make(chan *amqp.Error, 1)),
		outstanding: make(map[uint64]struct{}),
		drained:     make(chan struct{}),
		deadCh:      make(chan struct{}),
	}
	if err := ch.Qos(k.opts.Prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("qos: %w", err)
	}
	cs.deliveries, err = ch.Consume(k.opts.Queue, k.opts.Tag, false, k.opts.Exclusive, false, false, k.opts.Args)
	if err != nil {
		_ = ch.Close()
		return nil, err
	}
	return cs, nil
}

func (k *consumer) run(cs *consumerChannel) {
	for {
		switch k.pump(cs) {
		case cancelled:
			k.cancel(cs)
			return
		case connClosed:
			close(k.out)
			return
		}
		if cs = k.reopen(cs); cs == nil {
			close(k.out)
			return
		}
	}
}

// pump hands deliveries to the caller until the channel is lost or k.ctx ends.
func (k *consumer) pump(cs *consumerChannel) stopReason {
	for {
		select {
		case d, ok := <-cs.deliveries:
			if !ok {
				// The channel closed, or the broker cancelled the consumer
				// (queue deleted) and the channel is still open: close it
				// so the next subscription starts clean.
				cs.markDead()
				if !cs.ch.IsClosed() {
					_ = cs.ch.Close()
				}
				return channelLost
			}
			wd := cs.track(d)
			select {
			case k.out <- wd:
			case <-k.ctx.Done():
				// Never handed out: give it back now rather than when the
				// channel closes.
				if cs.untrack(d.DeliveryTag) && !cs.ch.IsClosed() {
					_ = cs.ch.Nack(d.DeliveryTag, false, true)
				}
				return k.stopReason()
			case e := <-cs.closes:
				cs.lose(e)
				return channelLost
			}
		case <-k.ctx.Done():
			return k.stopReason()
		case e := <-cs.closes:
			cs.lose(e)
			return channelLost
		}
	}
}

// reopen subscribes again after the channel was lost: right after the
// reconnect when the connection went, with backoff when the broker closed
// just the channel. Returns nil when k.ctx ends.
func (k *consumer) reopen(prev *consumerChannel) *consumerChannel {
	if !prev.s.lost() {
		k.log.Warn("broker: consumer channel closed by the broker, re-subscribing", "err", prev.closeReason())
	}
	warned := false
	for attempt := 0; ; attempt++ {
		s, err := k.c.waitSession(k.ctx)
		if err != nil {
			return nil
		}
		cs, err := k.open(s)
		if err == nil {
			if warned {
				k.log.Info("broker: consumer re-subscribed", "attempts", attempt+1)
			}
			return cs
		}
		if s.lost() {
			if k.c.awaitLoss(k.ctx, s) != nil {
				return nil
			}
			continue
		}
		if !warned {
			k.log.Warn("broker: re-subscribing consumer failed, retrying", "err", err)
			warned = true
		} else {
			k.log.Debug("broker: re-subscribe attempt failed", "attempt", attempt+1, "err", err)
		}
		if sleepCtx(k.ctx, backoff(k.c.cfg.ReconnectMin, k.c.cfg.ReconnectMax, attempt)) != nil {
			return nil
		}
	}
}

// cancel ends the consumer for good: basic.cancel, give back deliveries that
// arrived but were not handed out, close the Go channel, and keep the AMQP
// channel open until the caller has settled what it holds (closing it would
// requeue those behind the caller's back and make its acks stale).
func (k *consumer) cancel(cs *consumerChannel) {
	err := cs.ch.Cancel(k.opts.Tag, false)
	if err == nil {
		// Cancel-ok closes the deliveries channel after what was buffered.
		for d := range cs.deliveries {
			_ = cs.ch.Nack(d.DeliveryTag, false, true)
		}
	} else {
		k.log.Debug("broker: basic.cancel failed", "err", err)
	}
	close(k.out)
	if err == nil && !cs.startDrain() {
		select {
		case <-cs.drained:
		case <-cs.closes:
		case <-k.c.ctx.Done():
		}
	}
	cs.markDead()
	if !cs.ch.IsClosed() {
		_ = cs.ch.Close()
	}
}

// consumerChannel is one AMQP channel of a consumer and the delivery tags
// handed out on it and not yet settled. It is the Acknowledger of its
// deliveries, so every settle goes through its staleness check.
type consumerChannel struct {
	ch         *amqp.Channel
	s          *session
	deliveries <-chan amqp.Delivery
	closes     chan *amqp.Error

	mu          sync.Mutex
	dead        bool
	deadCh      chan struct{} // closed when dead becomes true
	closeErr    *amqp.Error
	outstanding map[uint64]struct{}
	draining    bool
	drained     chan struct{} // closed when draining and nothing is outstanding
}

func (cs *consumerChannel) markDead() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.setDeadLocked()
}

// setDeadLocked marks the channel dead and wakes whoever waits on deadCh;
// cs.mu must be held.
func (cs *consumerChannel) setDeadLocked() {
	if !cs.dead {
		cs.dead = true
		close(cs.deadCh)
	}
}

// isDead also asks amqp091-go, which knows of a lost connection before the
// close notification reaches pump.
func (cs *consumerChannel) isDead() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if !cs.dead && cs.ch.IsClosed() {
		cs.setDeadLocked()
	}
	return cs.dead
}

// lose marks the channel dead with the broker's reason (nil when amqp091-go
// closed the notification without one).
func (cs *consumerChannel) lose(e *amqp.Error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.setDeadLocked()
	if e != nil {
		cs.closeErr = e
	}
}

func (cs *consumerChannel) closeReason() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closeErr != nil {
		return cs.closeErr
	}
	return errors.New("consumer cancelled by the broker")
}

func (cs *consumerChannel) track(d amqp.Delivery) *Delivery {
	cs.mu.Lock()
	cs.outstanding[d.DeliveryTag] = struct{}{}
	cs.mu.Unlock()
	d.Acknowledger = cs
	return &Delivery{Delivery: d}
}

func (cs *consumerChannel) untrack(tag uint64) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	_, ok := cs.outstanding[tag]
	delete(cs.outstanding, tag)
	return ok
}

// startDrain marks the channel as waiting for outstanding deliveries and
// reports whether there are none left already.
func (cs *consumerChannel) startDrain() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.draining = true
	return len(cs.outstanding) == 0
}

func (cs *consumerChannel) settle(tag uint64, multiple bool, send func() error) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.dead || cs.ch.IsClosed() {
		cs.setDeadLocked()
		return ErrStaleDelivery
	}
	if _, ok := cs.outstanding[tag]; !ok {
		return ErrAlreadySettled
	}
	if err := send(); err != nil {
		if errors.Is(err, amqp.ErrClosed) {
			cs.setDeadLocked()
			return ErrStaleDelivery
		}
		return fmt.Errorf("broker: settle delivery: %w", err)
	}
	if multiple {
		for t := range cs.outstanding {
			if t <= tag {
				delete(cs.outstanding, t)
			}
		}
	} else {
		delete(cs.outstanding, tag)
	}
	if cs.draining && len(cs.outstanding) == 0 {
		select {
		case <-cs.drained:
		default:
			close(cs.drained)
		}
	}
	return nil
}

// Ack implements amqp.Acknowledger.
func (cs *consumerChannel) Ack(tag uint64, multiple bool) error {
	return cs.settle(tag, multiple, func() error { return cs.ch.Ack(tag, multiple) })
}

// Nack implements amqp.Acknowledger.
func (cs *consumerChannel) Nack(tag uint64, multiple, requeue bool) error {
	return cs.settle(tag, multiple, func() error { return cs.ch.Nack(tag, multiple, requeue) })
}

// Reject implements amqp.Acknowledger.
func (cs *consumerChannel) Reject(tag uint64, requeue bool) error {
	return cs.settle(tag, false, func() error { return cs.ch.Reject(tag, requeue) })
}
