package worker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/renderfarm/renderfarm/internal/testenv"
)

// publishTask sends a task from Go, as the web tier will, with no result.
func publishTask(t *testing.T, conn *broker.Conn, id, name string, args ...any) {
	t.Helper()
	publishWithHeaders(t, conn, nil, id, name, args...)
}

func publishWithHeaders(t *testing.T, conn *broker.Conn, headers map[string]any, id, name string, args ...any) {
	t.Helper()
	pub, err := celery.Encode(&celery.Message{ID: id, Task: name, Args: args, IgnoreResult: true, Headers: headers})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Publish(context.Background(), "celery", "celery", pub); err != nil {
		t.Fatal(err)
	}
}

func waitActive(t *testing.T, w *Worker, n int) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if active, _ := w.rt.st.counts(); active == n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("never saw %d active tasks", n)
}

func stopAndWait(t *testing.T, tw *testWorker) {
	t.Helper()
	tw.stop()
	select {
	case <-tw.done:
		tw.done <- nil // for Cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop")
	}
}

func TestWarmShutdownFinishesRunningAndHandsBackTheRest(t *testing.T) {
	tw := startWorker(t, func(c *Config) { c.Concurrency = 1; c.Prefetch = 4 })
	for _, id := range []string{"w1", "w2", "w3"} {
		publishTask(t, tw.conn, id, "renderfarm.test.sleep", 1.5)
	}
	waitActive(t, tw.w, 1)
	start := time.Now()
	stopAndWait(t, tw)
	if _, processed := tw.w.rt.st.counts(); processed != 1 {
		t.Errorf("%d tasks finished during the warm shutdown, want the running one", processed)
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Errorf("shutdown took %v: the running task was not waited for", el)
	}
	// The two prefetched tasks are back in the queue, not redelivered-marked.
	n, err := tw.conn.PurgeQueue(context.Background(), "celery")
	if err != nil || n != 2 {
		t.Errorf("queue holds %d messages after shutdown (%v), want the 2 unstarted ones", n, err)
	}
}

func TestColdShutdownRequeuesTheRunningTask(t *testing.T) {
	for _, early := range []bool{false, true} {
		name := "late ack"
		if early {
			name = "early ack"
		}
		t.Run(name, func(t *testing.T) {
			tw := startWorker(t, func(c *Config) { c.Concurrency = 1; c.EarlyAck = early })
			publishTask(t, tw.conn, "c1", "renderfarm.test.sleep", 30.0)
			waitActive(t, tw.w, 1)
			tw.cold() // as if a second signal had come
			stopAndWait(t, tw)
			deadline := time.Now().Add(5 * time.Second)
			for {
				n, err := tw.conn.PurgeQueue(context.Background(), "celery")
				if err == nil && n == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the cancelled task is not back in the queue (%d, %v)", n, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// redeliver has a raw consumer take a message and hand it back n times, as
// n crashed workers would.
func redeliver(t *testing.T, conn *broker.Conn, queue string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := conn.Consume(ctx, broker.ConsumeOptions{Queue: queue, Prefetch: 1})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-ch:
			d.Nack(true)
		case <-time.After(5 * time.Second):
			t.Fatal("nothing to redeliver")
		}
		cancel()
	}
}

func TestPoisonMessagesAreDeadLettered(t *testing.T) {
	for _, quorum := range []bool{false, true} {
		name := "classic"
		if quorum {
			name = "quorum"
		}
		t.Run(name, func(t *testing.T) {
			url := testenv.RabbitMQ(t)
			conn, err := broker.Dial(context.Background(), broker.Config{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			q := celery.Queue{Name: "celery", Quorum: quorum, DeliveryLimit: 20}.WithDefaults()
			if err := conn.Declare(context.Background(), celery.DeadLetterTopology(celery.DefaultDeadLetter)); err != nil {
				t.Fatal(err)
			}
			if err := conn.Declare(context.Background(), q.Topology(celery.DefaultDeadLetter)); err != nil {
				t.Fatal(err)
			}
			if quorum {
				// RabbitMQ counts deliveries in x-delivery-count.
				publishTask(t, conn, "poison-1", "renderfarm.test.add", 1.0, 2.0)
				redeliver(t, conn, "celery", 3)
			} else {
				// Two renderfarm workers already died on it and recounted
				// it; this redelivery is the third.
				publishWithHeaders(t, conn, map[string]any{HeaderRedeliveries: int64(2)}, "poison-1", "renderfarm.test.add", 1.0, 2.0)
				redeliver(t, conn, "celery", 1)
			}

			startWorkerOn(t, url, func(c *Config) {
				c.MaxStarts = 3
				c.Queues = []celery.Queue{{Name: "celery", Quorum: quorum, DeliveryLimit: 20}}
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			dead, err := conn.Consume(ctx, broker.ConsumeOptions{Queue: celery.DefaultDeadLetter, Prefetch: 1})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case d := <-dead:
				d.Ack()
				reason, _ := d.Headers[HeaderDeadReason].(string)
				if d.Headers["id"] != "poison-1" || !strings.Contains(reason, "more than the limit of 3") {
					t.Errorf("dead-lettered %v with reason %q", d.Headers["id"], reason)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("poison message not dead-lettered")
			}
		})
	}
}

// SIGTSTP's Pause stops taking work without stopping the worker; Resume
// takes it again.
func TestPauseAndResume(t *testing.T) {
	tw := startWorker(t, nil)
	tw.w.Pause()
	publishTask(t, tw.conn, "p1", "renderfarm.noop")
	time.Sleep(500 * time.Millisecond)
	if _, processed := tw.w.rt.st.counts(); processed != 0 {
		t.Fatalf("a paused worker ran %d tasks", processed)
	}
	if err := tw.w.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, processed := tw.w.rt.st.counts(); processed == 1 {
			break
		}
		if i > 100 {
			t.Fatal("the task published while paused never ran after Resume")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A broker restart mid-service: the worker reconnects, its queues, delay
// queues and mailbox are declared again, and it goes on serving.
func TestWorkerSurvivesBrokerRestart(t *testing.T) {
	tw := startWorker(t, nil)
	if out := tw.py(t, "send", "renderfarm.test.add", "[1, 2]"); out["result"] != 3.0 {
		t.Fatalf("before the restart: %v", out)
	}
	testenv.StopBroker(t)
	time.Sleep(time.Second)
	testenv.StartBroker(t)
	for i := 0; ; i++ {
		out, err := tw.run("send", "renderfarm.test.add", "[2, 3]", "{}", "{}", "10")
		if err == nil && out["result"] == 5.0 {
			break
		}
		if i > 5 {
			t.Fatalf("after the restart: %v %v", out, err)
		}
		time.Sleep(time.Second)
	}
	if ping := tw.py(t, "control", "ping", tw.w.Hostname(), "2"); !strings.Contains(fmt.Sprint(ping["reply"]), "pong") {
		t.Errorf("remote control after the restart: %v", ping)
	}
}
