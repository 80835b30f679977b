package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// RegisterTestTasks adds the small tasks the integration tests and the
// Python example drive. renderfarm.noop is always useful (throughput
// benchmarks, smoke checks); the others exist to exercise Celery semantics.
func RegisterTestTasks(r *Registry) {
	r.Register("renderfarm.test.add", func(_ context.Context, t *Task) (any, error) {
		var sum float64
		for _, a := range t.Args {
			n, ok := a.(float64)
			if !ok {
				if i, ok := toFloat(a); ok {
					n = i
				} else {
					return nil, Errorf("TypeError", "add takes numbers, got %v", a)
				}
			}
			sum += n
		}
		if sum == float64(int64(sum)) {
			return int64(sum), nil
		}
		return sum, nil
	}, TaskOptions{})
	r.Register("renderfarm.test.fail", func(_ context.Context, t *Task) (any, error) {
		return nil, Errorf("ValueError", "%v", firstArg(t, "boom"))
	}, TaskOptions{})
	r.Register("renderfarm.test.custom_fail", func(_ context.Context, t *Task) (any, error) {
		return nil, &TaskError{Type: "RenderError", Module: "renderfarm.errors", Message: []any{firstArg(t, "custom")}}
	}, TaskOptions{})
	r.Register("renderfarm.test.sleep", func(ctx context.Context, t *Task) (any, error) {
		secs, _ := toFloat(firstArg(t, 1.0))
		select {
		case <-time.After(time.Duration(secs * float64(time.Second))):
			return secs, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}, TaskOptions{})
	// kill_self kills its own process, as a handler crashing the worker
	// (a fault in a C library) would: the fault suite checks that such a
	// message is dead-lettered after the delivery limit while the other
	// workers keep serving. Registered only with --test-tasks.
	r.Register("renderfarm.test.kill_self", func(context.Context, *Task) (any, error) {
		if err := syscall.Kill(os.Getpid(), syscall.SIGKILL); err != nil {
			return nil, err
		}
		time.Sleep(time.Minute) // SIGKILL cannot be caught; this is not reached
		return nil, errors.New("survived SIGKILL")
	}, TaskOptions{})
	// retry fails until it has been retried kwargs["succeed_after"] times.
	r.Register("renderfarm.test.retry", func(_ context.Context, t *Task) (any, error) {
		after, _ := toFloat(t.Kwargs["succeed_after"])
		if float64(t.Retries) >= after {
			return fmt.Sprintf("succeeded after %d retries", t.Retries), nil
		}
		maxRetries := 3
		if m, ok := toFloat(t.Kwargs["max_retries"]); ok {
			maxRetries = int(m)
		}
		return nil, &Retry{Err: Errorf("ConnectionError", "attempt %d failed", t.Retries+1), Countdown: 100 * time.Millisecond, MaxRetries: &maxRetries}
	}, TaskOptions{})
}

// RegisterNoop adds renderfarm.noop, which returns nothing at once.
func RegisterNoop(r *Registry) {
	r.Register("renderfarm.noop", func(context.Context, *Task) (any, error) { return nil, nil }, TaskOptions{})
}

func firstArg(t *Task, def any) any {
	if len(t.Args) > 0 {
		return t.Args[0]
	}
	return def
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case interface{ Float64() (float64, error) }: // json.Number
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}
