package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestPublishConsumeRoundTrip(t *testing.T) {
	c, u := dialTest(t)
	mustDeclare(t, c, Topology{
		Exchanges: []Exchange{{Name: "render", Kind: "direct", Durable: true}},
		Queues:    []Queue{{Name: "render.jobs", Durable: true}},
		Bindings:  []Binding{{Queue: "render.jobs", Exchange: "render", Key: "jobs"}},
	})
	deliveries := mustConsume(t, c, testCtx(t, 30*time.Second), ConsumeOptions{Queue: "render.jobs", Prefetch: 10})

	msg := amqp.Publishing{
		ContentType:   "application/json",
		DeliveryMode:  amqp.Persistent,
		CorrelationId: "task-1",
		ReplyTo:       "client-oid",
		Headers:       amqp.Table{"task": "render.thumbnail", "retries": int32(2)},
		Body:          []byte(`[[], {}, {}]`),
	}
	if err := c.Publish(testCtx(t, 5*time.Second), "render", "jobs", msg); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	d := receive(t, deliveries, 5*time.Second)
	if string(d.Body) != string(msg.Body) || d.CorrelationId != "task-1" || d.ReplyTo != "client-oid" ||
		d.Headers["task"] != "render.thumbnail" || d.Exchange != "render" || d.RoutingKey != "jobs" ||
		d.DeliveryMode != amqp.Persistent {
		t.Fatalf("delivery does not match the publish: %+v", d.Delivery)
	}
	if d.MessageId == "" {
		t.Error("Publish did not set a message id")
	}
	if err := d.Ack(); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := d.Ack(); !errors.Is(err, ErrAlreadySettled) {
		t.Fatalf("second Ack = %v, want ErrAlreadySettled", err)
	}
	// The double ack was not sent (it would have closed the channel): the
	// consumer still works.
	if err := c.Publish(testCtx(t, 5*time.Second), "render", "jobs", text("second")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if d := receive(t, deliveries, 5*time.Second); string(d.Body) != "second" || d.Ack() != nil {
		t.Fatalf("second delivery %q not received/acked", d.Body)
	}
	waitQueue(t, u, "render.jobs", queueCounts{})
}

// waitQueue polls the broker until the queue has the given counts (acks are
// asynchronous, so the broker may lag the client by a moment).
func waitQueue(t *testing.T, u, queue string, want queueCounts) {
	t.Helper()
	var got queueCounts
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = queueStats(t, u)[queue]; got == want {
			return
		}
	}
	t.Fatalf("queue %s: ready/unacked = %+v, want %+v", queue, got, want)
}

func TestPublishFailures(t *testing.T) {
	c, _ := dialTest(t)
	mustDeclare(t, c, Topology{
		Exchanges: []Exchange{{Name: "lonely", Kind: "direct"}},
		Queues: []Queue{
			{Name: "ok"},
			{Name: "tiny", Args: amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"}},
		},
	})
	deliveries := mustConsume(t, c, testCtx(t, 30*time.Second), ConsumeOptions{Queue: "ok", Prefetch: 10})
	// Fill "tiny" so that the next publish to it is refused.
	if err := c.Publish(testCtx(t, 5*time.Second), "", "tiny", text("fill")); err != nil {
		t.Fatalf("filling tiny: %v", err)
	}

	tests := []struct {
		name          string
		exchange, key string
		msg           amqp.Publishing
		want          error
		code          uint16
	}{
		{"no queue for key on default exchange", "", "no.such.queue", text("x"), ErrUnroutable, 312},
		{"exchange without bindings", "lonely", "any", text("x"), ErrUnroutable, 312},
		{"caller's own message id", "", "no.such.queue", amqp.Publishing{MessageId: "task-42", Body: []byte("x")}, ErrUnroutable, 312},
		{"missing exchange closes the channel", "no-such-exchange", "k", text("x"), ErrNotConfirmed, 404},
		{"queue full with reject-publish", "", "tiny", text("x"), ErrNacked, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Publish(testCtx(t, 5*time.Second), tt.exchange, tt.key, tt.msg)
			var perr *PublishError
			if !errors.As(err, &perr) || !errors.Is(err, tt.want) {
				t.Fatalf("Publish = %v, want a *PublishError wrapping %v", err, tt.want)
			}
			if perr.ReplyCode != tt.code || perr.Exchange != tt.exchange || perr.Key != tt.key {
				t.Fatalf("PublishError = %+v, want code %d for %q/%q", perr, tt.code, tt.exchange, tt.key)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.key)) {
				t.Errorf("error %q does not name the routing key", err)
			}
			// The Conn keeps working: a fresh publish channel if the
			// failure closed the old one.
			body := fmt.Sprintf("after-%d", i)
			if err := c.Publish(testCtx(t, 5*time.Second), "", "ok", text(body)); err != nil {
				t.Fatalf("Publish after failure: %v", err)
			}
			if d := receive(t, deliveries, 5*time.Second); string(d.Body) != body {
				t.Fatalf("got %q, want %q", d.Body, body)
			} else if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPublishContextAlreadyDone(t *testing.T) {
	c, u := dialTest(t)
	mustDeclare(t, c, Topology{Queues: []Queue{{Name: "q"}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.Publish(ctx, "", "q", text("x"))
	if !errors.Is(err, ErrNotConfirmed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled ctx = %v, want ErrNotConfirmed and context.Canceled", err)
	}
	if got := queueStats(t, u)["q"]; got.Ready != 0 {
		t.Fatalf("a publish with a cancelled ctx reached the queue: %+v", got)
	}
}

func TestPublishConcurrentNoneLost(t *testing.T) {
	const publishers, perPublisher = 8, 250
	c, _ := dialTest(t)
	mustDeclare(t, c, Topology{Queues: []Queue{{Name: "bulk", Durable: true}}})
	deliveries := mustConsume(t, c, testCtx(t, 60*time.Second), ConsumeOptions{Queue: "bulk", Prefetch: 500})

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, publishers*perPublisher)
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := testCtx(t, 30*time.Second)
			for i := range perPublisher {
				msg := text(fmt.Sprintf("%d-%d", p, i))
				msg.DeliveryMode = amqp.Persistent
				if err := c.Publish(ctx, "", "bulk", msg); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Errorf("Publish: %v", err)
	}
	t.Logf("%d confirmed publishes from %d goroutines in %v (%.0f msgs/s)",
		publishers*perPublisher, publishers, elapsed.Round(time.Millisecond), float64(publishers*perPublisher)/elapsed.Seconds())

	seen := map[string]bool{}
	for len(seen) < publishers*perPublisher {
		d := receive(t, deliveries, 10*time.Second)
		if seen[string(d.Body)] {
			t.Fatalf("duplicate delivery %q", d.Body)
		}
		seen[string(d.Body)] = true
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	expectNone(t, deliveries, 200*time.Millisecond)
}

// BenchmarkPublishConfirmed measures confirmed-publish throughput with N
// concurrent publishers sharing one Conn. Run with
//
//	go test ./broker -run '^$' -bench PublishConfirmed -benchtime 20000x
func BenchmarkPublishConfirmed(b *testing.B) {
	c, _ := dialTest(b)
	// Bounded queues (drop-head) so the benchmark does not fill memory.
	limit := amqp.Table{"x-max-length": int32(20000)}
	mustDeclare(b, c, Topology{Queues: []Queue{
		{Name: "bench.transient", Args: limit},
		{Name: "bench.persistent", Durable: true, Args: limit},
	}})
	body := make([]byte, 512) // about a Celery task message
	for _, mode := range []struct {
		name     string
		queue    string
		delivery uint8
	}{
		{"transient", "bench.transient", amqp.Transient},
		{"persistent", "bench.persistent", amqp.Persistent},
	} {
		for _, publishers := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/publishers=%d", mode.name, publishers), func(b *testing.B) {
				ctx := context.Background()
				var next atomic.Int64
				var failed atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for range publishers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(b.N) {
							msg := amqp.Publishing{ContentType: "application/json", DeliveryMode: mode.delivery, Body: body}
							if err := c.Publish(ctx, "", mode.queue, msg); err != nil {
								failed.Add(1)
							}
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				if n := failed.Load(); n > 0 {
					b.Fatalf("%d publishes failed", n)
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			})
		}
	}
}
