package worker

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
)

// request is one delivery on its way through the worker.
type request struct {
	msg      *celery.Message
	d        *broker.Delivery
	queue    celery.Queue
	received time.Time
	started  time.Time
	acked    bool
	cancel   context.CancelCauseFunc // set while the handler runs

	// The start ledger's view (countsStarts): key, whether this start is
	// recorded (the message may have started before), the starts
	// recorded before it, and whether it must run alone.
	key     string
	counted bool
	prior   int
	alone   bool
}

// state is what the duties share: the Lamport clock, the requests the
// worker holds, counters for stats and heartbeats, and the revoked set.
type state struct {
	clock   lamport
	start   time.Time
	revoked *revokedSet

	mu        sync.Mutex
	reserved  map[*request]struct{} // received, waiting for a slot
	scheduled map[*request]struct{} // received, waiting for their eta
	active    map[*request]struct{} // running
	total     map[string]int        // finished, by task name
	processed int
}

func newState(revoked *revokedSet) *state {
	return &state{
		start:     time.Now(),
		revoked:   revoked,
		reserved:  map[*request]struct{}{},
		scheduled: map[*request]struct{}{},
		active:    map[*request]struct{}{},
		total:     map[string]int{},
	}
}

func (s *state) move(r *request, from, to map[*request]struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if from != nil {
		delete(from, r)
	}
	if to != nil {
		to[r] = struct{}{}
	}
}

func (s *state) finish(r *request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.active, r)
	delete(s.reserved, r)
	delete(s.scheduled, r)
	s.total[r.msg.Task]++
	s.processed++
}

// begin marks r running: its cancel function and start time are set and
// it moves from reserved to active, in one step for inspect's readers.
func (s *state) begin(r *request, cancel context.CancelCauseFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.cancel, r.started = cancel, time.Now()
	delete(s.reserved, r)
	s.active[r] = struct{}{}
}

// totals is a copy of the finished counts, by task name.
func (s *state) totals() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]any, len(s.total))
	for k, v := range s.total {
		out[k] = v
	}
	return out
}

// collect maps f over one of the request sets (reserved, scheduled,
// active) under the lock; f must not call back into s.
func (s *state) collect(set map[*request]struct{}, f func(*request) any) []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []any{}
	for r := range set {
		out = append(out, f(r))
	}
	return out
}

func (s *state) counts() (active, processed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active), s.processed
}

// terminate cancels the running task with this id, for revoke(terminate).
func (s *state) terminate(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	for r := range s.active {
		if r.msg.ID == id && r.cancel != nil {
			r.cancel(errTerminated)
			found = true
		}
	}
	return found
}

// lamport is Celery's logical clock: every event and control reply carries
// it, and it moves past any clock value seen from other nodes.
type lamport struct{ v atomic.Uint64 }

func (c *lamport) forward() uint64 { return c.v.Add(1) }

func (c *lamport) adjust(other uint64) uint64 {
	for {
		cur := c.v.Load()
		next := max(cur, other) + 1
		if c.v.CompareAndSwap(cur, next) {
			return next
		}
	}
}

var pid = os.Getpid()
