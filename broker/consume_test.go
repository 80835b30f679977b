package broker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/renderfarm/renderfarm/internal/testenv"
)

func TestPrefetchPerConsumer(t *testing.T) {
	c, u := dialTest(t)
	tests := []struct {
		name  string
		queue Queue
		stats bool // quorum queue counters lag by seconds: only check classic
	}{
		{"classic", Queue{Name: "prefetch.classic", Durable: true}, true},
		// Quorum queues refuse global QoS (540 NOT_IMPLEMENTED): consuming
		// one at all shows basic.qos went out with global=false.
		{"quorum", Queue{Name: "prefetch.quorum", Durable: true, Args: amqp.Table{"x-queue-type": "quorum"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustDeclare(t, c, Topology{Queues: []Queue{tt.queue}})
			for i := range 5 {
				if err := c.Publish(testCtx(t, 5*time.Second), "", tt.queue.Name, text(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			deliveries := mustConsume(t, c, ctx, ConsumeOptions{Queue: tt.queue.Name, Prefetch: 2})
			first := receive(t, deliveries, 5*time.Second)
			receive(t, deliveries, 5*time.Second)
			expectNone(t, deliveries, 500*time.Millisecond) // exactly 2 without acks
			if tt.stats {
				waitQueue(t, u, tt.queue.Name, queueCounts{Ready: 3, Unacked: 2})
			}
			if err := first.Ack(); err != nil {
				t.Fatal(err)
			}
			receive(t, deliveries, 5*time.Second) // one ack frees one slot
			expectNone(t, deliveries, 300*time.Millisecond)
		})
	}
}

func TestConsumeErrors(t *testing.T) {
	c, _ := dialTest(t)
	mustDeclare(t, c, Topology{Queues: []Queue{{Name: "taken"}}})
	mustConsume(t, c, testCtx(t, 30*time.Second), ConsumeOptions{Queue: "taken", Exclusive: true})
	tests := []struct {
		name string
		opts ConsumeOptions
		want string
	}{
		{"missing queue", ConsumeOptions{Queue: "no-such-queue"}, "404"},
		{"exclusive consumer elsewhere", ConsumeOptions{Queue: "taken"}, "403"},
		{"no queue name", ConsumeOptions{}, "Queue is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := c.Consume(testCtx(t, 5*time.Second), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Consume = %v, %v; want an error containing %q", ch, err, tt.want)
			}
		})
	}
	// Failed subscriptions used their own channels: the Conn is fine.
	if err := c.Healthy(testCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("Healthy after failed consumes: %v", err)
	}
}

func TestConsumerCancelKeepsHandedOutDeliveries(t *testing.T) {
	c, u := dialTest(t)
	mustDeclare(t, c, Topology{Queues: []Queue{{Name: "work", Durable: true}}})
	for i := range 5 {
		if err := c.Publish(testCtx(t, 5*time.Second), "", "work", text(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	deliveries := mustConsume(t, c, ctx, ConsumeOptions{Queue: "work", Prefetch: 2})
	held := []*Delivery{receive(t, deliveries, 5*time.Second), receive(t, deliveries, 5*time.Second)}

	cancel()
	expectClosed(t, deliveries, 5*time.Second)
	// basic.cancel stopped new deliveries, but what the caller holds is still
	// its to settle on the still-open channel: no ErrStaleDelivery, no requeue.
	waitQueue(t, u, "work", queueCounts{Ready: 3, Unacked: 2})
	if err := held[0].Ack(); err != nil {
		t.Fatalf("Ack after cancel: %v", err)
	}
	if err := held[1].Nack(false); err != nil {
		t.Fatalf("Nack after cancel: %v", err)
	}
	waitQueue(t, u, "work", queueCounts{Ready: 3, Unacked: 0})
}

func TestConsumerResubscribesAfterBrokerCancel(t *testing.T) {
	c, u := dialTest(t)
	q := Topology{Queues: []Queue{{Name: "volatile"}}}
	mustDeclare(t, c, q)
	deliveries := mustConsume(t, c, testCtx(t, 60*time.Second), ConsumeOptions{Queue: "volatile", Prefetch: 1})

	// Deleting the queue behind the Conn's back makes the broker cancel the
	// consumer (basic.cancel) while the connection stays up.
	testenv.RabbitMQCtl(t, "delete_queue", "-p", testenv.Vhost(t, u), "volatile")
	expectNone(t, deliveries, 300*time.Millisecond) // the Go channel stays open
	mustDeclare(t, c, q)
	// The consumer comes back by itself (with backoff) once the queue exists.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := c.Publish(testCtx(t, 5*time.Second), "", "volatile", text("back")); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-deliveries:
			if string(d.Body) != "back" || d.Ack() != nil {
				t.Fatalf("unexpected delivery %q", d.Body)
			}
			return
		case <-time.After(500 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("consumer did not re-subscribe after the queue came back")
			}
		}
	}
}

// A task that holds a low delivery tag must not stall the acks of the ones
// finishing after it (an ack-batching scheme that waits for a contiguous
// run would): with prefetch 4 and the first delivery held, the other 19
// still flow; and once everything is acked, nothing is left unacknowledged.
func TestAcksNeverStallBehindAHeldDelivery(t *testing.T) {
	c, u := dialTest(t)
	mustDeclare(t, c, Topology{Queues: []Queue{{Name: "coalesce", Durable: true}}})
	for i := range 20 {
		if err := c.Publish(testCtx(t, 5*time.Second), "", "coalesce", text(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deliveries := mustConsume(t, c, ctx, ConsumeOptions{Queue: "coalesce", Prefetch: 4})
	held := receive(t, deliveries, 5*time.Second)
	for range 19 {
		if err := receive(t, deliveries, 5*time.Second).Ack(); err != nil {
			t.Fatal(err)
		}
	}
	waitQueue(t, u, "coalesce", queueCounts{Ready: 0, Unacked: 1})
	if err := held.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := held.Ack(); err != ErrAlreadySettled {
		t.Errorf("second ack: %v, want ErrAlreadySettled", err)
	}
	waitQueue(t, u, "coalesce", queueCounts{Ready: 0, Unacked: 0})
}
