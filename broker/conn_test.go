package broker

import (
	"context"
	"errors"
	"net/url"
	"runtime"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/renderfarm/renderfarm/internal/testenv"
)

func TestDialErrors(t *testing.T) {
	u := testenv.RabbitMQ(t)
	withUser := func(user, pass string) string {
		p, _ := url.Parse(u)
		p.User = url.UserPassword(user, pass)
		return p.String()
	}
	tests := []struct {
		name    string
		url     string
		ctx     time.Duration
		within  time.Duration // fatal errors come back at once, not at ctx's end
		code    int           // expected *amqp.Error code, 0 for none
		wantCtx bool
	}{
		{name: "invalid scheme", url: "http://127.0.0.1:5672/", ctx: 30 * time.Second, within: time.Second},
		{name: "bad password", url: withUser("guest", "wrong"), ctx: 30 * time.Second, within: 5 * time.Second, code: amqp.AccessRefused},
		{name: "unknown vhost", url: "amqp://guest:guest@127.0.0.1:5672/no-such-vhost", ctx: 30 * time.Second, within: 5 * time.Second, code: amqp.NotAllowed},
		{name: "nothing listening", url: "amqp://guest:guest@127.0.0.1:1/", ctx: 700 * time.Millisecond, within: 3 * time.Second, wantCtx: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			c, err := Dial(testCtx(t, tt.ctx), testConfig(t, tt.url))
			elapsed := time.Since(start)
			if err == nil {
				_ = c.Close()
				t.Fatal("Dial succeeded")
			}
			if elapsed > tt.within {
				t.Fatalf("Dial took %v (ctx %v) to fail: %v", elapsed, tt.ctx, err)
			}
			var aerr *amqp.Error
			if tt.code != 0 && (!errors.As(err, &aerr) || aerr.Code != tt.code) {
				t.Fatalf("Dial = %v, want amqp error code %d", err, tt.code)
			}
			if tt.wantCtx && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Dial = %v, want context.DeadlineExceeded", err)
			}
			t.Logf("Dial failed after %v: %v", elapsed.Round(time.Millisecond), err)
		})
	}
}

func TestCloseReleasesEverything(t *testing.T) {
	u := testenv.RabbitMQ(t)
	base := runtime.NumGoroutine()

	c, err := Dial(testCtx(t, 10*time.Second), testConfig(t, u))
	if err != nil {
		t.Fatal(err)
	}
	mustDeclare(t, c, Topology{Queues: []Queue{{Name: "a"}, {Name: "b"}}})
	reconnects := c.NotifyReconnect()
	da := mustConsume(t, c, context.Background(), ConsumeOptions{Queue: "a", Prefetch: 5})
	db := mustConsume(t, c, context.Background(), ConsumeOptions{Queue: "b"})
	for range 3 {
		if err := c.Publish(testCtx(t, 5*time.Second), "", "a", text("x")); err != nil {
			t.Fatal(err)
		}
	}
	held := receive(t, da, 5*time.Second)

	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	expectClosed(t, da, 5*time.Second)
	expectClosed(t, db, 5*time.Second)
	if _, ok := <-reconnects; ok {
		t.Fatal("NotifyReconnect channel not closed by Close")
	}
	if err := held.Ack(); !errors.Is(err, ErrStaleDelivery) {
		t.Fatalf("Ack after Close = %v, want ErrStaleDelivery", err)
	}
	ctx := testCtx(t, 5*time.Second)
	if err := c.Publish(ctx, "", "a", text("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := c.Declare(ctx, Topology{Queues: []Queue{{Name: "c"}}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Declare after Close = %v, want ErrClosed", err)
	}
	if _, err := c.Consume(ctx, ConsumeOptions{Queue: "a"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Consume after Close = %v, want ErrClosed", err)
	}
	if err := c.Healthy(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Healthy after Close = %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	waitGoroutines(t, base, 5*time.Second)
}

// TestBrokerOutage restarts the broker application under a working Conn.
func TestBrokerOutage(t *testing.T) {
	c, u := dialTest(t)
	topo := Topology{
		// Non-durable: gone after the restart until re-declared.
		Exchanges: []Exchange{{Name: "events", Kind: "fanout"}},
		Queues:    []Queue{{Name: "tasks", Durable: true}, {Name: "events.listener"}},
		Bindings:  []Binding{{Queue: "events.listener", Exchange: "events"}},
	}
	mustDeclare(t, c, topo)
	reconnected := c.NotifyReconnect()
	tasks := mustConsume(t, c, testCtx(t, 5*time.Minute), ConsumeOptions{Queue: "tasks", Prefetch: 10})
	events := mustConsume(t, c, testCtx(t, 5*time.Minute), ConsumeOptions{Queue: "events.listener", Prefetch: 10})

	persistent := func(body string) amqp.Publishing {
		m := text(body)
		m.DeliveryMode = amqp.Persistent
		return m
	}
	if err := c.Publish(testCtx(t, 5*time.Second), "", "tasks", persistent("before")); err != nil {
		t.Fatal(err)
	}
	before := receive(t, tasks, 5*time.Second) // held unacked across the outage

	// A publisher that keeps going through the outage: every call must end
	// by its deadline, and fail only with ErrNotConfirmed.
	stopBackground := make(chan struct{})
	var bg sync.WaitGroup
	var bgOK, bgFailed int
	var stopOnce sync.Once
	stopBG := func() {
		stopOnce.Do(func() { close(stopBackground) })
		bg.Wait()
	}
	t.Cleanup(stopBG) // also on a Fatal: t.Errorf must not run after the test
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stopBackground:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			start := time.Now()
			err := c.Publish(ctx, "", "events.listener", text("background"))
			cancel()
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Publish took %v with a 1s ctx", d)
			}
			switch {
			case err == nil:
				bgOK++
			case errors.Is(err, ErrNotConfirmed) || errors.Is(err, ErrUnroutable):
				// Unroutable: the publish reached the restarted broker
				// before the topology was re-declared.
				bgFailed++
			default:
				t.Errorf("background Publish: unexpected error %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	testenv.StopBroker(t)

	start := time.Now()
	err := c.Publish(testCtx(t, 500*time.Millisecond), "", "tasks", persistent("lost"))
	// ErrNotConfirmed either way: by the deadline (waiting for the
	// reconnect), or sooner if it went out on the dying connection.
	if !errors.Is(err, ErrNotConfirmed) || time.Since(start) > 2*time.Second {
		t.Fatalf("Publish during the outage = %v after %v, want ErrNotConfirmed by its deadline", err, time.Since(start))
	}
	if err := c.Healthy(testCtx(t, 5*time.Second)); err == nil {
		t.Fatal("Healthy during the outage = nil")
	}
	// PublishNow does not wait for the reconnect: once the loss is seen it
	// fails with ErrNotConnected well before its 5s deadline.
	for deadline := time.Now().Add(5 * time.Second); ; {
		start := time.Now()
		err := c.PublishNow(testCtx(t, 5*time.Second), "", "tasks", persistent("now"))
		if errors.Is(err, ErrNotConnected) && errors.Is(err, ErrNotConfirmed) {
			if d := time.Since(start); d > time.Second {
				t.Fatalf("PublishNow during the outage took %v, want an immediate ErrNotConnected", d)
			}
			break
		}
		if err == nil || time.Now().After(deadline) {
			t.Fatalf("PublishNow during the outage = %v, want ErrNotConnected", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A publish whose ctx outlives the outage waits for the reconnect.
	waited := make(chan error, 1)
	go func() { waited <- c.Publish(testCtx(t, 30*time.Second), "", "tasks", persistent("during")) }()

	testenv.StartBroker(t)
	select {
	case <-reconnected:
	case <-time.After(15 * time.Second):
		t.Fatal("no reconnect within 15s of the broker restart")
	}
	if err := <-waited; err != nil {
		t.Fatalf("Publish waiting through the outage: %v", err)
	}
	stopBG()
	t.Logf("background publisher: %d confirmed, %d failed during the outage", bgOK, bgFailed)

	// The delivery from before the outage belongs to a dead channel.
	if err := before.Ack(); !errors.Is(err, ErrStaleDelivery) {
		t.Fatalf("Ack of a pre-outage delivery = %v, want ErrStaleDelivery", err)
	}
	if err := before.Delivery.Ack(false); !errors.Is(err, ErrStaleDelivery) {
		t.Fatalf("embedded amqp.Delivery.Ack of a pre-outage delivery = %v, want ErrStaleDelivery", err)
	}
	// The same consumer channel gets the redelivery and the new message.
	got := map[string]bool{}
	for range 2 {
		d := receive(t, tasks, 10*time.Second)
		got[string(d.Body)] = true
		if err := d.Ack(); err != nil {
			t.Fatalf("Ack after reconnect: %v", err)
		}
	}
	if !got["before"] || !got["during"] {
		t.Fatalf("after the restart got %v, want the redelivered \"before\" and \"during\"", got)
	}
	waitQueue(t, u, "tasks", queueCounts{})

	// The non-durable exchange, queue and binding are back, and the other
	// consumer is re-established on them.
	if err := c.Publish(testCtx(t, 5*time.Second), "events", "", text("after")); err != nil {
		t.Fatalf("Publish to the re-declared exchange: %v", err)
	}
	for {
		d := receive(t, events, 10*time.Second)
		// Background messages handed out just before the outage are stale.
		if err := d.Ack(); err != nil && !errors.Is(err, ErrStaleDelivery) {
			t.Fatal(err)
		}
		if string(d.Body) == "after" {
			break
		}
	}
	if err := c.Healthy(testCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("Healthy after the restart: %v", err)
	}
}

// A Conn from Open is usable before the broker is: probes and PublishNow
// say "not connected" at once, and once the broker answers it connects by
// itself, its Config.Topology in place before anything can publish.
func TestOpenBeforeTheBroker(t *testing.T) {
	u, up := testenv.LateRabbitMQ(t)
	cfg := testConfig(t, u)
	cfg.Topology = Topology{Queues: []Queue{{Name: "q"}}}
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })

	if err := c.Healthy(testCtx(t, time.Second)); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Healthy before the broker is up: %v, want ErrNotConnected", err)
	}
	if err := c.PublishNow(testCtx(t, time.Second), "", "q", text("early")); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("PublishNow before the broker is up: %v, want ErrNotConnected", err)
	}
	connected := make(chan error, 1)
	go func() { connected <- c.WaitConnected(testCtx(t, 30*time.Second)) }()
	select {
	case err := <-connected:
		t.Fatalf("WaitConnected returned before the broker was up: %v", err)
	case <-time.After(300 * time.Millisecond):
	}

	up()
	if err := <-connected; err != nil {
		t.Fatalf("WaitConnected once the broker is up: %v", err)
	}
	// Mandatory: unroutable unless q was declared before the Conn counted
	// as connected.
	if err := c.PublishNow(testCtx(t, 5*time.Second), "", "q", text("on time")); err != nil {
		t.Fatalf("PublishNow once connected: %v", err)
	}
	if err := c.Healthy(testCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("Healthy once connected: %v", err)
	}
}

// What retrying cannot fix is not retried for ever: the Conn closes
// itself, and whatever waits for it learns why.
func TestOpenGivesUpOnWhatRetryingCannotFix(t *testing.T) {
	u := testenv.RabbitMQ(t)
	mustDeclare(t, dialURL(t, u), Topology{Queues: []Queue{{Name: "classic", Durable: true}}})
	wrongPassword, _ := url.Parse(u)
	wrongPassword.User = url.UserPassword("guest", "wrong")
	for _, tc := range []struct {
		name string
		url  string
		topo Topology
		code int
	}{
		{"refused login", wrongPassword.String(), Topology{}, amqp.AccessRefused},
		{"queue declared otherwise", u, Topology{Queues: []Queue{{Name: "classic", Durable: true, Args: amqp.Table{"x-queue-type": "quorum"}}}}, amqp.PreconditionFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, tc.url)
			cfg.Topology = tc.topo
			c, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			err = c.WaitConnected(testCtx(t, 10*time.Second))
			var aerr *amqp.Error
			if !errors.Is(err, ErrClosed) || !errors.As(err, &aerr) || aerr.Code != tc.code {
				t.Fatalf("WaitConnected: %v, want ErrClosed with %d", err, tc.code)
			}
			if err := c.Declare(testCtx(t, time.Second), Topology{Queues: []Queue{{Name: "other"}}}); !errors.Is(err, ErrClosed) {
				t.Fatalf("Declare after giving up: %v, want ErrClosed", err)
			}
		})
	}
	if _, err := Open(testConfig(t, "http://127.0.0.1/")); err == nil {
		t.Fatal("Open took an http:// URL")
	}
}
