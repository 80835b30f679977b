package broker

import (
	"context"
	"errors"
	"testing"
	"time"
)

// InspectQueue counts what the broker itself counts, and a missing queue
// is ErrQueueNotFound without costing the connection its consumers.
func TestInspectQueue(t *testing.T) {
	c, u := dialTest(t)
	mustDeclare(t, c, Topology{Queues: []Queue{{Name: "work", Durable: true}, {Name: "other", Durable: true}}})
	ctx := testCtx(t, 30*time.Second)
	for i := 0; i < 7; i++ {
		if err := c.Publish(ctx, "", "work", text("x")); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deliveries := mustConsume(t, c, cctx, ConsumeOptions{Queue: "other"})

	// The broker updates its counts asynchronously; wait until rabbitmqctl
	// agrees with what was published.
	deadline := time.Now().Add(10 * time.Second)
	for queueStats(t, u)["work"].Ready != 7 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, tc := range []struct {
		queue            string
		ready, consumers int
	}{{"work", 7, 0}, {"other", 0, 1}} {
		got, err := c.InspectQueue(ctx, tc.queue)
		if err != nil {
			t.Fatalf("InspectQueue(%s): %v", tc.queue, err)
		}
		if got.Name != tc.queue || got.Ready != tc.ready || got.Consumers != tc.consumers {
			t.Errorf("InspectQueue(%s) = %+v, want ready %d, consumers %d", tc.queue, got, tc.ready, tc.consumers)
		}
	}

	if _, err := c.InspectQueue(ctx, "missing"); !errors.Is(err, ErrQueueNotFound) {
		t.Fatalf("InspectQueue(missing) = %v, want ErrQueueNotFound", err)
	}
	// The 404 closed only the throwaway channel: the consumer still gets
	// messages and publishing still works.
	if err := c.Publish(ctx, "", "other", text("after")); err != nil {
		t.Fatalf("publish after the 404: %v", err)
	}
	d := receive(t, deliveries, 5*time.Second)
	if string(d.Body) != "after" {
		t.Fatalf("got %q", d.Body)
	}
	_ = d.Ack()
}
