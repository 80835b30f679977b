package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Reasons a publish failed, wrapped in a *PublishError.
var (
	// ErrUnroutable: the broker returned the message (basic.return): no queue
	// is bound for its routing key. It was not delivered anywhere.
	ErrUnroutable = errors.New("unroutable: returned by the broker, no queue bound for the routing key")
	// ErrNacked: the broker refused responsibility for the message
	// (basic.nack, e.g. a queue overflow with reject-publish).
	ErrNacked = errors.New("nacked by the broker")
	// ErrNotConfirmed: no confirm arrived (timeout, ctx, the channel or
	// connection closed first). The message may or may not have been
	// enqueued; republishing can duplicate it.
	ErrNotConfirmed = errors.New("not confirmed by the broker")
)

// PublishError is how Publish fails. Err is one of ErrUnroutable, ErrNacked,
// ErrNotConfirmed or ErrClosed (possibly joined with a context error), or for
// headers amqp cannot encode, the encoding error.
type PublishError struct {
	Exchange, Key string
	Err           error
	// ReplyCode and ReplyText are the broker's: for ErrUnroutable the
	// basic.return (312 NO_ROUTE); for ErrNotConfirmed the channel.close the
	// broker sent, e.g. 404 NOT_FOUND for a publish to a missing exchange.
	// That close also fails every other publish in flight on the publish
	// channel at that moment with the same code. Zero when not applicable.
	ReplyCode uint16
	ReplyText string
}

func (e *PublishError) Error() string {
	msg := fmt.Sprintf("broker: publish to exchange %q with key %q: %v", e.Exchange, e.Key, e.Err)
	if e.ReplyCode != 0 {
		msg += fmt.Sprintf(" (%d %s)", e.ReplyCode, e.ReplyText)
	}
	return msg
}

func (e *PublishError) Unwrap() error { return e.Err }

// errPublisherGone means the publish channel died before anything was sent:
// the publish can be retried on a new channel without risk of duplication.
var errPublisherGone = errors.New("broker: publish channel closed")

// Publish publishes with mandatory=true on the Conn's confirm-mode channel
// and waits for the broker's confirm, or ctx, or Config.PublishTimeout. It
// returns nil only when the broker acked the message and did not return it;
// otherwise a *PublishError. While disconnected it waits for the reconnect
// until ctx ends. Many publishes may be in flight at once from many
// goroutines: they are pipelined on the channel, not serialised round trips.
//
// msg.MessageId is set to a unique id when empty: it is how a basic.return is
// matched to its publish (Celery ignores message_id).
func (c *Conn) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	return c.cfg.Metrics.published(c.publish(ctx, exchange, key, true, true, msg))
}

// PublishNow is Publish for callers that must answer at once, such as an
// HTTP handler: while the Conn is disconnected it fails with ErrNotConnected
// (wrapped with ErrNotConfirmed: nothing was sent) instead of waiting for
// the reconnect.
func (c *Conn) PublishNow(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	return c.cfg.Metrics.published(c.publish(ctx, exchange, key, true, false, msg))
}

func (c *Conn) publish(ctx context.Context, exchange, key string, mandatory, waitReconnect bool, msg amqp.Publishing) error {
	fail := func(err error) error { return &PublishError{Exchange: exchange, Key: key, Err: err} }
	if err := msg.Headers.Validate(); err != nil {
		return fail(fmt.Errorf("invalid headers: %w", err))
	}
	if msg.MessageId == "" {
		msg.MessageId = c.nextID()
	}
	for {
		if c.isClosed() {
			return fail(ErrClosed)
		}
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("%w: %w", ErrNotConfirmed, err))
		}
		if !waitReconnect && c.current() == nil {
			return fail(fmt.Errorf("%w: %w", ErrNotConfirmed, ErrNotConnected))
		}
		p, err := c.publisher(ctx)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return fail(ErrClosed)
			}
			return fail(fmt.Errorf("%w: %w", ErrNotConfirmed, err))
		}
		pd, err := p.publish(exchange, key, mandatory, msg)
		if errors.Is(err, errPublisherGone) || errors.Is(err, amqp.ErrClosed) {
			continue // nothing (complete) reached the broker; retry on a new channel
		}
		if err != nil {
			return fail(fmt.Errorf("%w: %w", ErrNotConfirmed, err))
		}
		return c.await(ctx, p, pd, exchange, key)
	}
}

func (c *Conn) await(ctx context.Context, p *publisher, pd *pending, exchange, key string) error {
	timer := time.NewTimer(c.cfg.PublishTimeout)
	defer timer.Stop()
	var err error
	select {
	case <-pd.done:
	case <-ctx.Done():
		err = fmt.Errorf("%w: %w", ErrNotConfirmed, ctx.Err())
	case <-timer.C:
		err = fmt.Errorf("%w: no confirm within %v", ErrNotConfirmed, c.cfg.PublishTimeout)
	case <-c.ctx.Done():
		err = ErrClosed
	}
	if err != nil {
		// Prefer an outcome that arrived at the same moment; otherwise stop
		// tracking the publish so a late confirm is dropped.
		if !p.forget(pd) {
			<-pd.done
			err = nil
		}
	}
	if err == nil {
		if pd.err == nil {
			return nil
		}
		return &PublishError{Exchange: exchange, Key: key, Err: pd.err, ReplyCode: pd.code, ReplyText: pd.text}
	}
	return &PublishError{Exchange: exchange, Key: key, Err: err}
}

// publisher returns the live publish channel, opening one (waiting for a
// connection if needed) when there is none.
func (c *Conn) publisher(ctx context.Context) (*publisher, error) {
	for {
		if p := c.pub.Load(); p != nil && !p.isDead() {
			return p, nil
		}
		select {
		case c.pubLock <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
		if p := c.pub.Load(); p != nil && !p.isDead() {
			<-c.pubLock
			return p, nil
		}
		p, err := c.openPublisher(ctx)
		if err == nil {
			c.pub.Store(p)
		}
		<-c.pubLock
		if err != nil {
			return nil, err
		}
	}
}

func (c *Conn) openPublisher(ctx context.Context) (*publisher, error) {
	for {
		s, err := c.waitSession(ctx)
		if err != nil {
			return nil, err
		}
		p, err := newPublisher(c, s)
		if err == nil {
			return p, nil
		}
		if !s.lost() {
			return nil, fmt.Errorf("broker: open publish channel: %w", err)
		}
		if err := c.awaitLoss(ctx, s); err != nil {
			return nil, err
		}
	}
}

// Buffers for amqp091-go's notification channels. The reader goroutine blocks
// when one is full, so they are sized for bursts; the drain loop never blocks.
const (
	confirmBuffer = 4096
	returnBuffer  = 256
)

// publisher is one confirm-mode channel and the publishes awaiting its
// confirms. Delivery tags are per channel, so a publisher never outlives its
// channel: when it closes, every pending publish fails and the next Publish
// opens a new one.
type publisher struct {
	c  *Conn
	ch *amqp.Channel

	// sendMu makes "next delivery tag" and "send" one step, so the tag a
	// pending publish is filed under is the one the broker confirms.
	sendMu sync.Mutex

	mu      sync.Mutex
	pending map[uint64]*pending
	byID    map[string][]*pending // FIFO per message id: returns come in publish order
	dead    chan struct{}
	once    sync.Once
}

type pending struct {
	tag      uint64
	id       string
	returned *amqp.Return
	done     chan struct{} // closed once err/code/text are final
	err      error
	code     uint16
	text     string
}

func newPublisher(c *Conn, s *session) (*publisher, error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, err
	}
	p := &publisher{
		c:       c,
		ch:      ch,
		pending: make(map[uint64]*pending),
		byID:    make(map[string][]*pending),
		dead:    make(chan struct{}),
	}
	// Listeners first: from the moment Confirm succeeds nothing may go unread.
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, confirmBuffer))
	returns := ch.NotifyReturn(make(chan amqp.Return, returnBuffer))
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	if !c.goTracked(func() { p.loop(s, confirms, returns, closes) }) {
		_ = ch.Close()
		return nil, ErrClosed
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	return p, nil
}

// isDead also checks the channel itself: amqp091-go marks it closed before
// it notifies listeners, and a retry must not spin on it meanwhile.
func (p *publisher) isDead() bool {
	select {
	case <-p.dead:
		return true
	default:
		return p.ch.IsClosed()
	}
}

func (p *publisher) markDead() { p.once.Do(func() { close(p.dead) }) }

// publish sends msg and files it as pending under its delivery tag.
func (p *publisher) publish(exchange, key string, mandatory bool, msg amqp.Publishing) (*pending, error) {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	if p.isDead() {
		return nil, errPublisherGone
	}
	pd := &pending{tag: p.ch.GetNextPublishSeqNo(), id: msg.MessageId, done: make(chan struct{})}
	p.mu.Lock()
	p.pending[pd.tag] = pd
	p.byID[pd.id] = append(p.byID[pd.id], pd)
	p.mu.Unlock()
	if err := p.ch.Publish(exchange, key, mandatory, false, msg); err != nil {
		p.forget(pd)
		return nil, err
	}
	return pd, nil
}

// forget stops tracking pd. It returns false if pd was already resolved.
func (p *publisher) forget(pd *pending) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending[pd.tag] != pd {
		return false
	}
	p.untrackLocked(pd)
	return true
}

func (p *publisher) untrackLocked(pd *pending) {
	delete(p.pending, pd.tag)
	q := p.byID[pd.id]
	if i := indexOf(q, pd); i >= 0 {
		q = append(q[:i], q[i+1:]...)
	}
	if len(q) == 0 {
		delete(p.byID, pd.id)
	} else {
		p.byID[pd.id] = q
	}
}

func indexOf(q []*pending, pd *pending) int {
	for i, x := range q {
		if x == pd {
			return i
		}
	}
	return -1
}

// loop drains the channel's notifications until amqp091-go closes all of
// them, then fails whatever is still pending.
func (p *publisher) loop(s *session, confirms <-chan amqp.Confirmation, returns <-chan amqp.Return, closes <-chan *amqp.Error) {
	var closeErr *amqp.Error
	for confirms != nil || returns != nil || closes != nil {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			p.returned(r)
		case cf, ok := <-confirms:
			if !ok {
				confirms = nil
				continue
			}
			// RabbitMQ sends basic.return before the basic.ack of the same
			// message, and amqp091-go queues both from one goroutine, so
			// that return is already in the returns buffer: take it first.
			for drained := false; !drained && returns != nil; {
				select {
				case r, ok := <-returns:
					if !ok {
						returns = nil
					} else {
						p.returned(r)
					}
				default:
					drained = true
				}
			}
			p.confirmed(cf)
		case e, ok := <-closes:
			p.markDead()
			if ok && e != nil {
				closeErr = e
			}
			if !ok {
				closes = nil
			}
		}
	}
	p.markDead()
	p.failAll(s, closeErr)
}

func (p *publisher) returned(r amqp.Return) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pd := range p.byID[r.MessageId] {
		if pd.returned == nil {
			pd.returned = &r
			return
		}
	}
}

func (p *publisher) confirmed(cf amqp.Confirmation) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pd, ok := p.pending[cf.DeliveryTag]
	if !ok {
		return // given up on by its caller
	}
	p.untrackLocked(pd)
	switch {
	case !cf.Ack:
		pd.err = ErrNacked
	case pd.returned != nil:
		pd.err, pd.code, pd.text = ErrUnroutable, pd.returned.ReplyCode, pd.returned.ReplyText
	}
	close(pd.done)
}

// failAll resolves every publish still waiting when the channel closed. A
// channel the broker closed on its own (the connection still up) carries the
// broker's reason, e.g. 404 for a missing exchange; a lost connection is
// reported in the error text only.
func (p *publisher) failAll(s *session, closeErr *amqp.Error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	var code uint16
	var text string
	switch {
	case p.c.isClosed():
		err = ErrClosed
	case closeErr != nil && !s.conn.IsClosed():
		err = fmt.Errorf("%w: publish channel closed by the broker", ErrNotConfirmed)
		code, text = uint16(closeErr.Code), closeErr.Reason
	case closeErr != nil:
		err = fmt.Errorf("%w: connection lost: %s", ErrNotConfirmed, closeErr.Reason)
	default:
		err = fmt.Errorf("%w: publish channel closed", ErrNotConfirmed)
	}
	for _, pd := range p.pending {
		pd.err, pd.code, pd.text = err, code, text
		close(pd.done)
	}
	p.pending = map[uint64]*pending{}
	p.byID = map[string][]*pending{}
}
