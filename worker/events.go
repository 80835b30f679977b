package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
)

// eventQueueSize bounds events waiting to be published. A monitor is a
// nicety: when the broker is slow, events are dropped, never tasks delayed.
const eventQueueSize = 4096

// eventSender publishes Celery events (task-*, worker-*) to the celeryev
// exchange for `celery events` and Flower. Events go out from one
// goroutine so a slow broker never blocks a task; they can be switched on
// and off at run time, as `celery control enable_events` does.
type eventSender struct {
	conn     Publisher
	hostname string
	state    *state
	log      *slog.Logger
	enabled  atomic.Bool

	mu     sync.Mutex // guards closing queue against late sends
	closed bool
	queue  chan celery.Event
	done   chan struct{}
}

func newEventSender(conn Publisher, hostname string, st *state, enabled bool, log *slog.Logger) *eventSender {
	s := &eventSender{conn: conn, hostname: hostname, state: st, log: log,
		queue: make(chan celery.Event, eventQueueSize), done: make(chan struct{})}
	s.enabled.Store(enabled)
	return s
}

// Start begins publishing queued events.
func (s *eventSender) Start() {
	go func() {
		defer close(s.done)
		for ev := range s.queue {
			s.publish(ev)
		}
	}()
}

// Shutdown publishes what is queued (worker-offline last) and stops.
func (s *eventSender) Shutdown(ctx context.Context) {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.queue)
	}
	s.mu.Unlock()
	select {
	case <-s.done:
	case <-ctx.Done():
	}
}

func (s *eventSender) SetEnabled(on bool) { s.enabled.Store(on) }

// send queues an event when events are enabled. As with Celery, a worker
// whose events are off is invisible to monitors until enable_events.
// fields is only called then: reprs of args and results are not free, and
// every task sends several events.
func (s *eventSender) send(typ string, fields func() map[string]any) {
	if !s.enabled.Load() {
		return
	}
	ev := celery.NewEvent(typ, s.hostname, s.state.clock.forward(), time.Now(), fields())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	select {
	case s.queue <- ev:
	default:
		s.log.Debug("event queue full, dropping event", "type", typ)
	}
}

func (s *eventSender) publish(ev celery.Event) {
	key, pub, err := celery.EncodeEvent(ev)
	if err != nil {
		s.log.Warn("cannot encode event", "type", ev["type"], "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = s.conn.Publish(ctx, celery.EventExchange, key, pub)
	// No monitor listening means no queue bound: normal, not an error.
	if err != nil && !errors.Is(err, broker.ErrUnroutable) {
		s.log.Debug("event not published", "type", ev["type"], "err", err)
	}
}

// workerFields are the fields every worker-* event carries.
func (s *eventSender) workerFields(version string) func() map[string]any {
	return func() map[string]any { return s.workerFieldsNow(version) }
}

func (s *eventSender) workerFieldsNow(version string) map[string]any {
	active, processed := s.state.counts()
	return map[string]any{
		"freq":      heartbeatInterval.Seconds(),
		"active":    active,
		"processed": processed,
		"loadavg":   loadavg(),
		"sw_ident":  "renderfarm",
		"sw_ver":    version,
		"sw_sys":    "Linux",
	}
}
