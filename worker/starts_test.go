package worker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/testenv"
)

// memLedger is a StartLedger in memory, for a worker in this process: the
// journal-backed one, across processes, is tested in job/runner.
type memLedger struct {
	mu sync.Mutex
	n  map[string]int
}

func newMemLedger(seed map[string]int) *memLedger {
	l := &memLedger{n: map[string]int{}}
	for k, v := range seed {
		l.n[k] = v
	}
	return l
}

func (l *memLedger) Starts(_ context.Context, key string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[key], nil
}

func (l *memLedger) Record(_ context.Context, key string, n int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n[key] = n
	return nil
}

func (l *memLedger) Clear(_ context.Context, key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.n, key)
	return nil
}

func (l *memLedger) get(key string) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, ok := l.n[key]
	return n, ok
}

// waitLedger waits until key's record is want (-1: no record).
func waitLedger(t *testing.T, l *memLedger, key string, want int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, ok := l.get(key)
		if !ok {
			n = -1
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("start record of %s is %d, want %d", key, n, want)
		}
	}
}

// span is when one handler ran.
type span struct{ from, to time.Time }

// spans records each task's run, sleeping d in between.
type spans struct {
	mu  sync.Mutex
	got map[string]span
}

func (s *spans) register(d time.Duration, ledger *memLedger, seen map[string]int) func(*Registry) {
	return func(r *Registry) {
		r.Register("renderfarm.test.span", func(ctx context.Context, task *Task) (any, error) {
			from := time.Now()
			n, _ := ledger.get(startKey(task.Request))
			s.mu.Lock()
			seen[task.ID] = n
			s.mu.Unlock()
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			s.mu.Lock()
			s.got[task.ID] = span{from, time.Now()}
			s.mu.Unlock()
			return nil, nil
		}, TaskOptions{})
	}
}

// The start of a message that may have started before is in the ledger
// before the handler runs and gone once the task is done; a first
// delivery's is not recorded at all. A task that started before without finishing runs alone: no
// other task shares its worker, so if it kills the worker again nothing
// else is charged with a start.
func TestStartsAreRecordedAndSuspectsRunAlone(t *testing.T) {
	const suspect = "suspect"
	ledger := newMemLedger(map[string]int{suspect + ".0": 1})
	s := &spans{got: map[string]span{}}
	seen := map[string]int{}
	tw := startWorkerWith(t, testenv.RabbitMQ(t), func(c *Config) {
		c.Concurrency, c.Starts = 2, ledger
	}, s.register(300*time.Millisecond, ledger, seen))
	ids := []string{"a", "b", "c", suspect, "d", "e", "f"}
	for _, id := range ids {
		var h map[string]any
		if id == suspect {
			// A copy of a message that started before, as giveBack makes.
			h = map[string]any{hdrStarted: int64(1)}
		}
		publishWithHeaders(t, tw.conn, h, id, "renderfarm.test.span")
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s.mu.Lock()
		n := len(s.got)
		s.mu.Unlock()
		if n == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tasks ran", n, len(ids))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	alone := s.got[suspect]
	for _, id := range ids {
		want := 0 // a first delivery's start is not recorded
		if id == suspect {
			want = 2
		} else if sp := s.got[id]; sp.from.Before(alone.to) && alone.from.Before(sp.to) {
			t.Errorf("task %s ran beside the suspect task (%v-%v, suspect %v-%v)", id, sp.from, sp.to, alone.from, alone.to)
		}
		if seen[id] != want {
			t.Errorf("task %s saw %d starts recorded while it ran, want %d", id, seen[id], want)
		}
		waitLedger(t, ledger, id+".0", -1)
	}
}

// A task cancelled by a cold shutdown goes back to its queue with the
// starts it had before: that start ended, it did not kill the worker.
func TestColdShutdownKeepsEarlierStarts(t *testing.T) {
	const key = "c1.0"
	ledger := newMemLedger(map[string]int{key: 2})
	tw := startWorker(t, func(c *Config) { c.Concurrency, c.Starts = 1, ledger })
	publishWithHeaders(t, tw.conn, map[string]any{hdrStarted: int64(2)}, "c1", "renderfarm.test.sleep", 30.0)
	waitActive(t, tw.w, 1)
	if n, _ := ledger.get(key); n != 3 {
		t.Errorf("while running, the ledger says %d starts, want 3", n)
	}
	tw.cold()
	stopAndWait(t, tw)
	waitLedger(t, ledger, key, 2)
}
