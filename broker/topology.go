package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Exchange is an exchange declaration.
type Exchange struct {
	Name, Kind          string
	Durable, AutoDelete bool
	Args                amqp.Table
}

// Queue is a queue declaration. Server-named queues (empty Name) are not
// supported: their name would change on every reconnect.
type Queue struct {
	Name                           string
	Durable, AutoDelete, Exclusive bool
	Args                           amqp.Table
}

// Binding binds Queue to Exchange with routing key Key.
type Binding struct {
	Queue, Exchange, Key string
	Args                 amqp.Table
}

// Topology is a set of declarations, applied exchanges first, then queues,
// then bindings.
type Topology struct {
	Exchanges []Exchange
	Queues    []Queue
	Bindings  []Binding
}

// DeclareError is a declaration the broker refused, most often 406
// PRECONDITION_FAILED because the entity exists with different properties
// (the broker's Reason names the property and both values).
type DeclareError struct {
	Kind   string // "exchange", "queue" or "binding"
	Name   string // exchange or queue name; for a binding "queue <- exchange [key]"
	Want   string // the properties that were requested
	Code   int    // AMQP reply code, e.g. 406
	Reason string // the broker's reply text
	Err    error  // the underlying *amqp.Error (or other error)
}

func (e *DeclareError) Error() string {
	msg := fmt.Sprintf("broker: declare %s %q (%s): ", e.Kind, e.Name, e.Want)
	if e.Code != 0 {
		return msg + fmt.Sprintf("%d %s", e.Code, e.Reason)
	}
	return msg + e.Err.Error()
}

func (e *DeclareError) Unwrap() error { return e.Err }

func newDeclareError(kind, name, want string, err error) *DeclareError {
	de := &DeclareError{Kind: kind, Name: name, Want: want, Err: err}
	var aerr *amqp.Error
	if errors.As(err, &aerr) && aerr != amqp.ErrClosed {
		de.Code, de.Reason = aerr.Code, aerr.Reason
	}
	return de
}

func (x Exchange) describe() string {
	return fmt.Sprintf("kind=%s durable=%t auto_delete=%t args=%v", x.Kind, x.Durable, x.AutoDelete, argsOrNone(x.Args))
}

func (q Queue) describe() string {
	return fmt.Sprintf("durable=%t auto_delete=%t exclusive=%t args=%v", q.Durable, q.AutoDelete, q.Exclusive, argsOrNone(q.Args))
}

func (b Binding) name() string { return fmt.Sprintf("%s <- %s [%s]", b.Queue, b.Exchange, b.Key) }

func argsOrNone(t amqp.Table) any {
	if len(t) == 0 {
		return "none"
	}
	return map[string]any(t)
}

func (t Topology) validate() error {
	for _, x := range t.Exchanges {
		if x.Name == "" {
			return errors.New("broker: declare: the default exchange cannot be declared")
		}
		if x.Kind == "" {
			return fmt.Errorf("broker: declare exchange %q: Kind is required", x.Name)
		}
		if err := x.Args.Validate(); err != nil {
			return fmt.Errorf("broker: declare exchange %q: %w", x.Name, err)
		}
	}
	for _, q := range t.Queues {
		if q.Name == "" {
			return errors.New("broker: declare: server-named queues are not supported (their name changes on reconnect)")
		}
		if err := q.Args.Validate(); err != nil {
			return fmt.Errorf("broker: declare queue %q: %w", q.Name, err)
		}
	}
	for _, b := range t.Bindings {
		if b.Queue == "" || b.Exchange == "" {
			return fmt.Errorf("broker: declare binding %s: queue and exchange are required", b.name())
		}
		if err := b.Args.Validate(); err != nil {
			return fmt.Errorf("broker: declare binding %s: %w", b.name(), err)
		}
	}
	return nil
}

// Declare declares t now and remembers it: after every reconnect the Conn
// declares everything it remembers again before consumers resume, since a
// restarted broker has forgotten non-durable entities. A refused declaration
// is a *DeclareError and is not remembered (what was declared before it in t
// is). Declare waits for a connection if there is none, until ctx ends.
func (c *Conn) Declare(ctx context.Context, t Topology) error {
	if err := t.validate(); err != nil {
		return err
	}
	for {
		s, err := c.waitSession(ctx)
		if err != nil {
			return fmt.Errorf("broker: declare: %w", err)
		}
		c.topoMu.Lock()
		if c.current() != s {
			// Replaced while we waited for the lock; the re-declare did
			// not include t, so declare on the new session.
			c.topoMu.Unlock()
			continue
		}
		down, err := c.topo.declare(s.conn, t, true)
		c.topoMu.Unlock()
		c.logDown(down)
		if err != nil && s.lost() {
			if err := c.awaitLoss(ctx, s); err != nil {
				return fmt.Errorf("broker: declare: %w", err)
			}
			continue
		}
		return err
	}
}

// logDown says which queues a declaration passed over because their node
// is down.
func (c *Conn) logDown(down []error) {
	for _, err := range down {
		c.log.Error("broker: queue unavailable, its cluster node is down; declared the rest", "err", err)
	}
}

// DeleteQueue deletes a queue (with its messages) and forgets its
// declaration and bindings, so a reconnect does not bring it back.
func (c *Conn) DeleteQueue(ctx context.Context, name string) error {
	c.topoMu.Lock()
	c.topo.forgetQueue(name)
	c.topoMu.Unlock()
	err := c.withChannel(ctx, func(ch *amqp.Channel) error {
		_, err := ch.QueueDelete(name, false, false, false)
		return err
	})
	if err != nil {
		return fmt.Errorf("broker: delete queue %q: %w", name, err)
	}
	return nil
}

// PurgeQueue removes the queue's ready messages and returns how many. Unacked
// deliveries are not affected.
func (c *Conn) PurgeQueue(ctx context.Context, name string) (int, error) {
	var n int
	err := c.withChannel(ctx, func(ch *amqp.Channel) error {
		var err error
		n, err = ch.QueuePurge(name, false)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("broker: purge queue %q: %w", name, err)
	}
	return n, nil
}

// withChannel runs f on a throwaway channel: a failed operation closes its
// channel, and that must not take a publisher or consumer down with it. A
// connection lost under f is retried on the next connection, so f must be
// idempotent.
func (c *Conn) withChannel(ctx context.Context, f func(*amqp.Channel) error) error {
	for {
		s, err := c.waitSession(ctx)
		if err != nil {
			return err
		}
		ch, err := s.conn.Channel()
		if err == nil {
			err = f(ch)
			if !ch.IsClosed() {
				_ = ch.Close()
			}
		}
		if err != nil && s.lost() {
			if err := c.awaitLoss(ctx, s); err != nil {
				return err
			}
			continue
		}
		return err
	}
}

// topology is the remembered declarations, latest declaration of a name
// winning, kept in first-declared order. Guarded by Conn.topoMu.
type topology struct {
	exchanges []Exchange
	queues    []Queue
	bindings  []Binding
}

func (t *topology) rememberExchange(x Exchange) {
	if i := slices.IndexFunc(t.exchanges, func(e Exchange) bool { return e.Name == x.Name }); i >= 0 {
		t.exchanges[i] = x
		return
	}
	t.exchanges = append(t.exchanges, x)
}

func (t *topology) rememberQueue(q Queue) {
	if i := slices.IndexFunc(t.queues, func(e Queue) bool { return e.Name == q.Name }); i >= 0 {
		t.queues[i] = q
		return
	}
	t.queues = append(t.queues, q)
}

func (t *topology) rememberBinding(b Binding) {
	key := bindingKey(b)
	if slices.ContainsFunc(t.bindings, func(e Binding) bool { return bindingKey(e) == key }) {
		return
	}
	t.bindings = append(t.bindings, b)
}

// bindingKey identifies a binding as the broker does: by queue, exchange, key
// and arguments (fmt prints maps with sorted keys, so equal tables match).
func bindingKey(b Binding) string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%v", b.Queue, b.Exchange, b.Key, map[string]any(b.Args))
}

func (t *topology) forgetQueue(name string) {
	t.queues = slices.DeleteFunc(t.queues, func(q Queue) bool { return q.Name == name })
	t.bindings = slices.DeleteFunc(t.bindings, func(b Binding) bool { return b.Queue == name })
}

// declare declares tp on a fresh channel of conn, stopping at the first
// refusal (which closes the channel). With remember, every accepted
// declaration is added to t. A durable queue whose cluster node is down
// is not a refusal (see queueDown): it is passed over with its bindings,
// remembered all the same, and returned in down for the caller to log.
func (t *topology) declare(conn *amqp.Connection, tp Topology, remember bool) (down []error, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("broker: declare: open channel: %w", err)
	}
	defer func() {
		if !ch.IsClosed() {
			_ = ch.Close()
		}
	}()
	for _, x := range tp.Exchanges {
		if err := declareExchange(ch, x); err != nil {
			return down, err
		}
		if remember {
			t.rememberExchange(x)
		}
	}
	isDown := map[string]bool{}
	for _, q := range tp.Queues {
		if err := declareQueue(ch, q); err != nil {
			if !queueDown(err) {
				return down, err
			}
			down, isDown[q.Name] = append(down, err), true
			if ch, err = conn.Channel(); err != nil {
				return down, fmt.Errorf("broker: declare: open channel: %w", err)
			}
		}
		if remember {
			t.rememberQueue(q)
		}
	}
	for _, b := range tp.Bindings {
		if !isDown[b.Queue] {
			if err := declareBinding(ch, b); err != nil {
				return down, err
			}
		}
		if remember {
			t.rememberBinding(b)
		}
	}
	return down, nil
}

// queueDown reports a queue declaration refused with 404 NOT_FOUND. A
// declaration creates a queue that does not exist, so RabbitMQ says this
// only of a durable classic queue that exists on a cluster node that is
// down ("home node ... is down or inaccessible"). Retrying cannot fix it
// until that node is back, but nothing else depends on it: failing a
// worker's or web tier's start for it would make that node a single point
// of failure for every restart.
func queueDown(err error) bool {
	var de *DeclareError
	return errors.As(err, &de) && de.Kind == "queue" && de.Code == amqp.NotFound
}

// declareAll re-declares everything remembered after a reconnect. Unlike
// declare it carries on past a refusal (on a new channel), so one entity that
// changed under us does not leave the rest of the topology missing.
func (t *topology) declareAll(conn *amqp.Connection) []error {
	var errs []error
	var ch *amqp.Channel
	defer func() {
		if ch != nil && !ch.IsClosed() {
			_ = ch.Close()
		}
	}()
	do := func(f func(*amqp.Channel) error) bool {
		if ch == nil || ch.IsClosed() {
			var err error
			if ch, err = conn.Channel(); err != nil {
				errs = append(errs, fmt.Errorf("broker: declare: open channel: %w", err))
				return false
			}
		}
		if err := f(ch); err != nil {
			errs = append(errs, err)
			return !conn.IsClosed()
		}
		return true
	}
	for _, x := range t.exchanges {
		if !do(func(ch *amqp.Channel) error { return declareExchange(ch, x) }) {
			return errs
		}
	}
	for _, q := range t.queues {
		if !do(func(ch *amqp.Channel) error { return declareQueue(ch, q) }) {
			return errs
		}
	}
	for _, b := range t.bindings {
		if !do(func(ch *amqp.Channel) error { return declareBinding(ch, b) }) {
			return errs
		}
	}
	return errs
}

func declareExchange(ch *amqp.Channel, x Exchange) error {
	if err := ch.ExchangeDeclare(x.Name, x.Kind, x.Durable, x.AutoDelete, false, false, x.Args); err != nil {
		return newDeclareError("exchange", x.Name, x.describe(), err)
	}
	return nil
}

func declareQueue(ch *amqp.Channel, q Queue) error {
	if _, err := ch.QueueDeclare(q.Name, q.Durable, q.AutoDelete, q.Exclusive, false, q.Args); err != nil {
		return newDeclareError("queue", q.Name, q.describe(), err)
	}
	return nil
}

func declareBinding(ch *amqp.Channel, b Binding) error {
	if err := ch.QueueBind(b.Queue, b.Key, b.Exchange, false, b.Args); err != nil {
		want := "args=" + strings.TrimSpace(fmt.Sprint(argsOrNone(b.Args)))
		return newDeclareError("binding", b.name(), want, err)
	}
	return nil
}
