package worker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/renderfarm/renderfarm/internal/testenv"
)

// executions counts how often each task id started.
type executions struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *executions) add(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n[id]++
}

// register adds renderfarm.test.counted_sleep, which counts its runs and
// sleeps for d.
func (e *executions) register(d time.Duration) func(*Registry) {
	return func(r *Registry) {
		r.Register("renderfarm.test.counted_sleep", func(ctx context.Context, task *Task) (any, error) {
			e.add(task.ID)
			select {
			case <-time.After(d):
				return nil, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}, TaskOptions{})
	}
}

func (e *executions) counts() (distinct, total int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range e.n {
		distinct++
		total += n
	}
	return distinct, total
}

// Deliveries prefetched before a connection loss were requeued by the
// broker when it lost the connection; the worker must drop them, not run
// them as slots free up (they would all run again after the reconnect).
// Only the task running at the moment of the loss may run twice: its ack
// can no longer be sent.
func TestPrefetchedDeliveriesDieWithTheirConnection(t *testing.T) {
	url, outage := testenv.RabbitMQOutage(t)
	const tasks, concurrency = 8, 1
	ex := &executions{n: map[string]int{}}
	tw := startWorkerWith(t, url, func(c *Config) { c.Concurrency = concurrency; c.Prefetch = 4 }, ex.register(time.Second))
	for i := range tasks {
		publishTask(t, tw.conn, fmt.Sprintf("outage-%d", i), "renderfarm.test.counted_sleep")
	}
	waitActive(t, tw.w, 1)
	// The worker holds one running task and up to three prefetched ones.
	outage.Cut()
	time.Sleep(2500 * time.Millisecond) // the running task finishes into the outage
	outage.Restore()

	deadline := time.Now().Add(90 * time.Second)
	for {
		if d, _ := ex.counts(); d == tasks {
			break
		}
		if time.Now().After(deadline) {
			d, n := ex.counts()
			t.Fatalf("after the outage only %d of %d tasks ran (%d executions)", d, tasks, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Let anything still queued or held come out before counting.
	waitActive(t, tw.w, 0)
	time.Sleep(2 * time.Second)
	_, total := ex.counts()
	t.Logf("%d tasks, %d executions", tasks, total)
	if total > tasks+concurrency {
		t.Errorf("%d executions for %d tasks: more than the %d running at the loss ran twice", total, tasks, concurrency)
	}
}

// A task that finishes while the broker is unreachable must not keep its
// slot while its result waits for the broker: the slot is the render
// admission, and the result of a delivery that died is stored by the
// task's next run anyway.
func TestResultStoreDuringAnOutageFreesTheSlot(t *testing.T) {
	url, outage := testenv.RabbitMQOutage(t)
	ex := &executions{n: map[string]int{}}
	tw := startWorkerWith(t, url, func(c *Config) { c.Concurrency = 1; c.Prefetch = 1 }, ex.register(1500*time.Millisecond))
	// A result is wanted: the RPC backend publishes it to reply_to.
	pub, err := celery.Encode(&celery.Message{ID: "result-in-outage", Task: "renderfarm.test.counted_sleep", ReplyTo: "result-in-outage-replies"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.conn.Publish(context.Background(), "celery", "celery", pub); err != nil {
		t.Fatal(err)
	}
	waitActive(t, tw.w, 1)
	outage.Cut()
	defer outage.Restore()
	// The handler ends about 1.5 s after it started; the broker stays
	// unreachable for 8 s, and the slot must be free well before that.
	deadline := time.Now().Add(6 * time.Second)
	for len(tw.w.consumer.slots) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slot is still held while the result waits for the broker")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, n := ex.counts(); n != 1 {
		t.Fatalf("%d executions before the slot came free, want 1", n)
	}
}

// A task whose channel died while it ran must not also schedule its own
// retry: the broker redelivers the original, and a retry would be a
// second copy of the task.
func TestNoRetryFromADeadDelivery(t *testing.T) {
	url, outage := testenv.RabbitMQOutage(t)
	ex := &executions{n: map[string]int{}}
	var first sync.Once
	tw := startWorkerWith(t, url, func(c *Config) { c.Concurrency = 1; c.Prefetch = 1 }, func(r *Registry) {
		r.Register("renderfarm.test.retry_once", func(ctx context.Context, task *Task) (any, error) {
			ex.add(task.ID)
			retry := false
			first.Do(func() { retry = true })
			time.Sleep(1500 * time.Millisecond)
			if retry {
				maxRetries := 3
				return nil, &Retry{Err: Errorf("ConnectionError", "transient"), Countdown: 100 * time.Millisecond, MaxRetries: &maxRetries}
			}
			return nil, nil
		}, TaskOptions{})
	})
	publishTask(t, tw.conn, "retry-in-outage", "renderfarm.test.retry_once")
	waitActive(t, tw.w, 1)
	outage.Cut()
	time.Sleep(3 * time.Second) // the handler asks for its retry during the outage
	outage.Restore()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, n := ex.counts(); n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the task never ran again after the outage")
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitActive(t, tw.w, 0)
	time.Sleep(3 * time.Second) // room for a retry copy to show up
	if _, n := ex.counts(); n != 2 {
		t.Errorf("%d executions: want the interrupted one and the redelivery, no retry copy", n)
	}
}
