package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrClosed means the Conn was closed by Close, or closed itself after the
// broker refused the login of its first connection (Open).
var ErrClosed = errors.New("broker: connection closed")

// ErrNotConnected is what Healthy and PublishNow report between a connection
// loss and the reconnect; other operations wait for the reconnect instead.
var ErrNotConnected = errors.New("broker: not connected")

// Conn keeps one AMQP connection alive: it reconnects with backoff after a
// broker restart or network loss, re-declares the topology it was given, and
// restores consumers on new channels. Safe for concurrent use.
type Conn struct {
	cfg Config
	log *slog.Logger
	// urls are the cluster's nodes (Config.URL as ParseURLs reads it),
	// tried in turn.
	urls []string

	// ctx is cancelled by Close; every goroutine the Conn starts watches it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	// closeErr is why a Conn from Open closed itself (a refused login or
	// topology).
	closeErr error
	sess     *session      // nil while disconnected
	node     string        // URL of the last session installed (redacted)
	ready    chan struct{} // closed when sess becomes non-nil
	subs     []chan struct{}

	// topoMu orders Declare against the re-declare after a reconnect, so a
	// declaration is either part of the re-declare or made on the new
	// connection, never lost in between.
	topoMu sync.Mutex
	topo   topology

	pub     atomic.Pointer[publisher]
	pubLock chan struct{} // one goroutine at a time opens the publish channel

	idPrefix string
	idSeq    atomic.Uint64

	closeOnce sync.Once
}

// session is one AMQP connection; a reconnect creates a new one. Channels and
// deliveries are only meaningful within their session.
type session struct {
	conn   *amqp.Connection
	gen    uint64
	node   int           // index in Conn.urls of the node it is connected to
	done   chan struct{} // closed when the connection is known lost
	closes chan *amqp.Error
	blocks chan amqp.Blocking
}

func (s *session) lost() bool {
	select {
	case <-s.done:
		return true
	default:
		return s.conn.IsClosed()
	}
}

// Dial connects to the broker. It blocks until the first connection succeeds
// or ctx ends, retrying with backoff meanwhile; an invalid URL or a refused
// login (403 ACCESS_REFUSED: bad credentials, no access to the vhost) is
// returned at once since retrying cannot fix it. ctx bounds only this first
// connection: the Conn lives until Close.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	c, err := newConn(cfg)
	if err != nil {
		return nil, err
	}
	s, err := c.connectFirst(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.wg.Add(1)
	go c.supervise(s)
	return c, nil
}

// Open is Dial for a server that must answer while the broker is away: it
// returns at once and makes the first connection in the background, as it
// reconnects after a loss. Until then Healthy and PublishNow fail with
// ErrNotConnected and everything else waits for the connection. What
// retrying cannot fix (a refused login, a refused Config.Topology) closes
// the Conn: what waits then fails with ErrClosed and that reason, and so
// does WaitConnected. Only an invalid Config is returned at once.
func Open(cfg Config) (*Conn, error) {
	c, err := newConn(cfg)
	if err != nil {
		return nil, err
	}
	c.wg.Add(1)
	go func() {
		s, err := c.connectFirst(c.ctx)
		if err != nil {
			if c.ctx.Err() == nil {
				c.log.Error("broker: giving up", "err", err)
				c.mu.Lock()
				c.closed, c.closeErr = true, err
				c.mu.Unlock()
				c.cancel()
			}
			c.wg.Done()
			return
		}
		c.supervise(s) // calls wg.Done
	}()
	return c, nil
}

// declareFirst declares Config.Topology on s, the first connection.
func (c *Conn) declareFirst(s *session) error {
	t := c.cfg.Topology
	if len(t.Exchanges)+len(t.Queues)+len(t.Bindings) == 0 {
		return nil
	}
	c.topoMu.Lock()
	defer c.topoMu.Unlock()
	down, err := c.topo.declare(s.conn, t, true)
	c.logDown(down)
	return err
}

// WaitConnected waits until the Conn is connected, its Config.Topology
// declared, or until ctx ends; for a Conn from Open that gave up, it
// returns why.
func (c *Conn) WaitConnected(ctx context.Context) error {
	_, err := c.waitSession(ctx)
	return err
}

func newConn(cfg Config) (*Conn, error) {
	cfg = cfg.withDefaults()
	urls, err := ParseURLs(cfg.URL)
	if err != nil {
		return nil, err
	}
	if err := cfg.Topology.validate(); err != nil {
		return nil, err
	}
	var idb [6]byte
	_, _ = rand.Read(idb[:])
	cctx, cancel := context.WithCancel(context.Background())
	c := &Conn{
		cfg:      cfg,
		urls:     urls,
		node:     redactURL(urls[0]),
		log:      cfg.Logger.With("component", "broker", "conn", cfg.Name),
		ctx:      cctx,
		cancel:   cancel,
		ready:    make(chan struct{}),
		pubLock:  make(chan struct{}, 1),
		idPrefix: hex.EncodeToString(idb[:]),
	}
	cfg.Metrics.watch(c)
	return c, nil
}

// connectFirst dials until the first connection is made, declares
// Config.Topology on it and installs it, or until ctx ends or a node
// refuses the login or the topology (the nodes of a cluster share users
// and definitions, so the others would refuse it too).
func (c *Conn) connectFirst(ctx context.Context) (*session, error) {
	var warned bool
	var lastErr error // the last real failure, not the ctx ending mid-attempt
	pace := pacer{cfg: c.cfg}
	for round := 0; ; round++ {
		conn, node, reached, err := c.dialRound(ctx, 0, true)
		if err == nil {
			s := c.newSession(conn, 1, node)
			if err = c.declareFirst(s); err == nil {
				c.install(s)
				c.log.Info("broker: connected", "url", redactURL(c.urls[node]))
				return s, nil
			}
			if !conn.IsClosed() {
				c.shutdownSession(s)
				return nil, err // refused: the same declaration will be refused again
			}
			c.drainDead(s) // lost while declaring: try again
			reached = true
		}
		if ctx.Err() != nil {
			return nil, c.dialCtxError(ctx.Err(), lastErr)
		}
		lastErr = err
		if isFatalDialError(err) {
			return nil, fmt.Errorf("broker: dial %s: %w", redactURL(c.urls[node]), err)
		}
		if !warned {
			c.log.Warn("broker: cannot connect yet, retrying", "url", c.describe(), "err", err)
			warned = true
		} else {
			c.log.Debug("broker: dial round failed", "round", round+1, "err", err)
		}
		if serr := sleepCtx(ctx, pace.next(reached)); serr != nil {
			return nil, c.dialCtxError(serr, lastErr)
		}
	}
}

// dialRound tries each node once, in list order from node from, and
// returns the first connection made and its node. A node that is down
// costs a refused connect, so the next one is tried at once; the pacing
// between rounds is the caller's (reached: whether any attempt got a TCP
// connection, see pacer). With fatalStops a refused login ends the round
// at once; otherwise the round goes on to the other nodes. err is the
// last attempt's failure and node its node.
func (c *Conn) dialRound(ctx context.Context, from int, fatalStops bool) (conn *amqp.Connection, node int, reached bool, err error) {
	for k := range c.urls {
		node = (from + k) % len(c.urls)
		var r bool
		conn, r, err = c.dialOnce(ctx, c.urls[node])
		reached = reached || r
		if err == nil {
			return conn, node, reached, nil
		}
		if ctx.Err() != nil || (fatalStops && isFatalDialError(err)) {
			return nil, node, reached, err
		}
		if len(c.urls) > 1 {
			c.log.Debug("broker: node unreachable, trying the next", "url", redactURL(c.urls[node]), "err", err)
		}
	}
	return nil, node, reached, err
}

// describe is the node list for logs, passwords hidden.
func (c *Conn) describe() string {
	r := make([]string, len(c.urls))
	for i, u := range c.urls {
		r[i] = redactURL(u)
	}
	return strings.Join(r, ";")
}

func (c *Conn) dialCtxError(ctxErr, lastErr error) error {
	if lastErr == nil {
		return fmt.Errorf("broker: dial %s: %w", c.describe(), ctxErr)
	}
	return fmt.Errorf("broker: dial %s: %w (last error: %v)", c.describe(), ctxErr, lastErr)
}

// isFatalDialError reports errors that no amount of retrying fixes: a
// refused login (403: ErrCredentials, ErrSASL) and, since amqp091-go 1.11
// passes the server's own reason on, an unknown vhost (530 NOT_ALLOWED;
// older versions reported it as a 403 too).
func isFatalDialError(err error) bool {
	var aerr *amqp.Error
	return errors.As(err, &aerr) && (aerr.Code == amqp.AccessRefused || aerr.Code == amqp.NotAllowed)
}

// dialOnce makes one connection attempt that ctx can abort at any point.
// amqp091-go's handshake does not take a context, so cancellation is applied
// as a socket deadline. reached reports whether the TCP connection was
// made, which is what a failed attempt cost the broker (see pacer).
func (c *Conn) dialOnce(ctx context.Context, rawURL string) (conn *amqp.Connection, reached bool, err error) {
	var (
		mu      sync.Mutex
		netConn net.Conn
	)
	props := amqp.NewConnectionProperties()
	if c.cfg.Name != "" {
		props["connection_name"] = c.cfg.Name
	}
	acfg := amqp.Config{
		Heartbeat:  c.cfg.Heartbeat,
		Properties: props,
		Locale:     "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: c.cfg.DialTimeout}
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// amqp091-go clears this deadline once the handshake is done.
			_ = nc.SetDeadline(time.Now().Add(c.cfg.DialTimeout))
			mu.Lock()
			netConn = nc
			mu.Unlock()
			return nc, nil
		},
	}
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if netConn != nil {
			_ = netConn.SetDeadline(time.Unix(1, 0))
		}
	})
	conn, err = amqp.DialConfig(rawURL, acfg)
	stop()
	mu.Lock()
	reached = netConn != nil
	mu.Unlock()
	if err != nil {
		// A failed handshake leaves amqp091-go's reader goroutine on an open
		// socket; closing it is what lets that goroutine exit.
		mu.Lock()
		if netConn != nil {
			_ = netConn.Close()
		}
		mu.Unlock()
		if ctx.Err() != nil {
			return nil, reached, ctx.Err()
		}
		return nil, reached, err
	}
	if ctx.Err() != nil {
		_ = conn.Close()
		return nil, reached, ctx.Err()
	}
	return conn, reached, nil
}

func (c *Conn) newSession(conn *amqp.Connection, gen uint64, node int) *session {
	return &session{
		conn:   conn,
		gen:    gen,
		node:   node,
		done:   make(chan struct{}),
		closes: conn.NotifyClose(make(chan *amqp.Error, 1)),
		blocks: conn.NotifyBlocked(make(chan amqp.Blocking, 8)),
	}
}

// install makes s the current session and wakes everyone waiting for one.
func (c *Conn) install(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sess = s
	c.node = redactURL(c.urls[s.node])
	close(c.ready)
}

// Node is the URL of the node the Conn is connected to, or was last (the
// first of the list before any connection), password hidden: the one of
// a cluster's nodes that logs and `celery inspect stats` name.
func (c *Conn) Node() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.node
}

// markLost retires s: waiters block until the next install.
func (c *Conn) markLost(s *session) {
	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
		c.ready = make(chan struct{})
	}
	c.mu.Unlock()
	close(s.done)
}

// current returns the live session or nil.
func (c *Conn) current() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// waitSession returns the current session, waiting for a reconnect if there
// is none, until ctx ends or the Conn closes.
func (c *Conn) waitSession(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		closed, s, ready := c.closed, c.sess, c.ready
		c.mu.Unlock()
		if closed {
			return nil, c.closedError()
		}
		if s != nil {
			return s, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, c.closedError()
		}
	}
}

// closedError is ErrClosed, with the reason when the Conn closed itself.
func (c *Conn) closedError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeErr != nil {
		return fmt.Errorf("%w: %w", ErrClosed, c.closeErr)
	}
	return ErrClosed
}

// awaitLoss waits until the supervisor has retired s, so a retry after an
// operation failed on a dying connection does not spin on that same session.
func (c *Conn) awaitLoss(ctx context.Context, s *session) error {
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// goTracked runs f in a goroutine that Close waits for. It refuses once the
// Conn is closing: WaitGroup.Add must not race with Wait.
func (c *Conn) goTracked(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

func (c *Conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// supervise owns the connection's lifecycle: it watches s, and on loss
// reconnects, re-declares the topology and installs the new session.
func (c *Conn) supervise(s *session) {
	defer c.wg.Done()
	for {
		reason, ok := c.watch(s)
		if !ok {
			return
		}
		c.markLost(s)
		c.log.Warn("broker: connection lost, reconnecting", "url", redactURL(c.urls[s.node]), "err", reason)
		start := time.Now()
		next, attempts, err := c.reconnect(s)
		if err != nil {
			return
		}
		c.log.Info("broker: reconnected", "url", redactURL(c.urls[next.node]), "downtime", time.Since(start).Round(time.Millisecond), "attempts", attempts)
		c.cfg.Metrics.reconnected()
		c.notifyReconnect()
		s = next
	}
}

// watch blocks until s's connection is lost (ok=true) or the Conn is closed
// (ok=false, after closing the connection). It drains connection.blocked
// notifications meanwhile: amqp091-go sends them from its reader goroutine.
func (c *Conn) watch(s *session) (reason error, ok bool) {
	for {
		select {
		case e, open := <-s.closes:
			if !open || e == nil {
				return errors.New("connection closed"), true
			}
			return e, true
		case b, open := <-s.blocks:
			if !open {
				s.blocks = nil
				continue
			}
			if b.Active {
				c.log.Warn("broker: connection blocked by the broker (resource alarm); publishes will stall", "reason", b.Reason)
			} else {
				c.log.Info("broker: connection unblocked")
			}
		case <-c.ctx.Done():
			c.shutdownSession(s)
			return nil, false
		}
	}
}

// shutdownSession closes s's connection, draining its notifications while
// amqp091-go shuts down (its close handshake needs the reader goroutine,
// which would block on an unread notification channel).
func (c *Conn) shutdownSession(s *session) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A deadline so that Close never hangs on a dead socket.
		_ = s.conn.CloseDeadline(time.Now().Add(5 * time.Second))
	}()
	for {
		select {
		case <-done:
			close(s.done)
			return
		case _, open := <-s.closes:
			if !open {
				s.closes = nil
			}
		case _, open := <-s.blocks:
			if !open {
				s.blocks = nil
			}
		}
	}
}

// reconnect dials until it succeeds or the Conn closes, re-declares the
// remembered topology and installs the new session. It starts with the
// node after lost's, round-robin as kombu fails over: lost's node has
// just gone, and every other node of a cluster serves the same queues.
// Attempts log at debug: the loss and the recovery are each logged once
// by supervise.
func (c *Conn) reconnect(lost *session) (*session, int, error) {
	pace := pacer{cfg: c.cfg}
	from := (lost.node + 1) % len(c.urls)
	// A short first wait: a broker restart closes every client at once,
	// and they should not all come back in the same millisecond.
	wait := backoff(c.cfg.ReconnectMin, c.cfg.ReconnectMax, 0)
	for attempt := 0; ; attempt++ {
		if err := sleepCtx(c.ctx, wait); err != nil {
			return nil, attempt, err
		}
		conn, node, reached, err := c.dialRound(c.ctx, from, false)
		if err != nil {
			if c.ctx.Err() != nil {
				return nil, attempt + 1, c.ctx.Err()
			}
			c.log.Debug("broker: reconnect attempt failed", "attempt", attempt+1, "err", err)
			wait = pace.next(reached)
			continue
		}
		s := c.newSession(conn, lost.gen+1, node)
		c.topoMu.Lock()
		errs := c.topo.declareAll(conn)
		if conn.IsClosed() {
			c.topoMu.Unlock()
			c.log.Debug("broker: connection lost while re-declaring topology", "attempt", attempt+1, "url", redactURL(c.urls[node]))
			c.drainDead(s)
			from = (node + 1) % len(c.urls)
			wait = pace.next(true)
			continue
		}
		for _, err := range errs {
			// The broker now refuses a declaration it accepted before
			// (someone re-declared it differently, or, in a cluster, a
			// classic durable queue whose node is down). Everything else
			// still works, so stay connected and say so loudly.
			c.log.Error("broker: re-declaring topology after reconnect", "url", redactURL(c.urls[node]), "err", err)
		}
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			c.topoMu.Unlock()
			c.shutdownSession(s)
			return nil, attempt + 1, ErrClosed
		}
		c.install(s)
		c.topoMu.Unlock()
		return s, attempt + 1, nil
	}
}

// drainDead empties the notification channels of a session that died before
// it was installed, so amqp091-go's shutdown is not left blocked.
func (c *Conn) drainDead(s *session) {
	for range s.closes {
	}
	for range s.blocks {
	}
}

// NotifyReconnect returns a channel that receives a value after each
// successful reconnect (not after the first connection). It is buffered and
// never blocks the Conn, so a slow reader sees at most one pending signal for
// several reconnects. It is closed when the Conn is closed.
func (c *Conn) NotifyReconnect() <-chan struct{} {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		close(ch)
		return ch
	}
	c.subs = append(c.subs, ch)
	return ch
}

func (c *Conn) notifyReconnect() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Healthy reports whether the broker is usable right now: connected, and a
// publish-confirm round trip completes (a tiny non-mandatory message to the
// default exchange with a routing key no queue has, which the broker drops and
// acks). It does not wait for a reconnect. Meant for readiness probes.
func (c *Conn) Healthy(ctx context.Context) error {
	if c.isClosed() {
		return ErrClosed
	}
	if c.current() == nil {
		return ErrNotConnected
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.PublishTimeout)
		defer cancel()
	}
	key := "renderfarm.healthcheck." + c.nextID()
	return c.publish(ctx, "", key, false, false, amqp.Publishing{})
}

// Close closes consumers, channels and the connection, and waits for every
// goroutine the Conn started. Publishes still waiting fail with ErrClosed and
// consumer channels are closed; deliveries not yet acked are redelivered by
// the broker. Idempotent.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.mu.Lock()
		for _, ch := range c.subs {
			close(ch)
		}
		c.subs = nil
		c.mu.Unlock()
		c.log.Info("broker: closed")
	})
	return nil
}

// nextID returns a process-unique message id: a random per-Conn prefix and a
// counter, cheap enough for every publish.
func (c *Conn) nextID() string {
	return c.idPrefix + "-" + strconv.FormatUint(c.idSeq.Add(1), 36)
}
