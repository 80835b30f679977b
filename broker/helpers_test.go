package broker

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/renderfarm/renderfarm/internal/testenv"
)

// tlogWriter sends slog output to t.Log, so a failing test shows what the
// Conn saw. Close waits for every goroutine that logs, and tests close their
// Conn in Cleanup, so nothing logs after the test ends.
type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testConfig reconnects fast: tests restart the broker and should not wait
// for production backoff.
func testConfig(t testing.TB, amqpURL string) Config {
	return Config{
		URL:            amqpURL,
		Name:           "broker-test " + t.Name(),
		Heartbeat:      5 * time.Second,
		ReconnectMin:   50 * time.Millisecond,
		ReconnectMax:   500 * time.Millisecond,
		PublishTimeout: 5 * time.Second,
		Logger:         testLogger(t),
	}
}

// dialTest connects to a fresh vhost and closes the Conn when the test ends.
func dialTest(t testing.TB) (*Conn, string) {
	t.Helper()
	u := testenv.RabbitMQ(t)
	return dialURL(t, u), u
}

func dialURL(t testing.TB, u string) *Conn {
	t.Helper()
	return dialWith(t, testConfig(t, u))
}

// dialWith connects with cfg and closes the Conn when the test ends.
func dialWith(t testing.TB, cfg Config) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type queueCounts = testenv.QueueCount

func queueStats(t testing.TB, amqpURL string) map[string]queueCounts {
	t.Helper()
	return testenv.QueueCounts(t, amqpURL)
}

func mustDeclare(t testing.TB, c *Conn, tp Topology) {
	t.Helper()
	if err := c.Declare(testCtx(t, 10*time.Second), tp); err != nil {
		t.Fatalf("Declare: %v", err)
	}
}

func mustConsume(t testing.TB, c *Conn, ctx context.Context, opts ConsumeOptions) <-chan *Delivery {
	t.Helper()
	ch, err := c.Consume(ctx, opts)
	if err != nil {
		t.Fatalf("Consume(%s): %v", opts.Queue, err)
	}
	return ch
}

func text(body string) amqp.Publishing {
	return amqp.Publishing{ContentType: "text/plain", Body: []byte(body)}
}

// receive waits for one delivery.
func receive(t testing.TB, ch <-chan *Delivery, within time.Duration) *Delivery {
	t.Helper()
	select {
	case d, ok := <-ch:
		if !ok {
			t.Fatal("delivery channel closed, expected a delivery")
		}
		return d
	case <-time.After(within):
		t.Fatalf("no delivery within %v", within)
		return nil
	}
}

// expectNone asserts that nothing arrives for a while.
func expectNone(t testing.TB, ch <-chan *Delivery, wait time.Duration) {
	t.Helper()
	select {
	case d, ok := <-ch:
		if ok {
			t.Fatalf("unexpected delivery %q", d.Body)
		}
		t.Fatal("delivery channel closed unexpectedly")
	case <-time.After(wait):
	}
}

// expectClosed waits for ch to be closed, discarding deliveries.
func expectClosed(t testing.TB, ch <-chan *Delivery, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("delivery channel not closed within %v", within)
		}
	}
}

// waitGoroutines waits until the goroutine count is back to at most want, so
// a leak shows as a failure with the stacks of what is left.
func waitGoroutines(t testing.TB, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutine leak: %d goroutines, want <= %d\n%s", n, want, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
