package fleet

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/renderfarm/renderfarm/internal/testenv"
)

func dial(t *testing.T, amqpURL string) *broker.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, broker.Config{URL: amqpURL, Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// waitPong pings node until it answers (a worker takes a moment to start).
func waitPong(t *testing.T, c *Control, node string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		rs, err := Ask[OK](context.Background(), c, "ping", nil, CallOptions{Destination: []string{node}, Timeout: 500 * time.Millisecond})
		if err == nil && len(rs) == 1 && rs[0].Value.OK == "pong" {
			return
		}
	}
	t.Fatalf("%s never answered ping", node)
}

func sendTask(t *testing.T, conn *broker.Conn, queue, task string, args ...any) string {
	t.Helper()
	id := uuid.NewString()
	pub, err := celery.Encode(&celery.Message{Protocol: 2, ID: id, Task: task, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Publish(context.Background(), queue, queue, pub); err != nil {
		t.Fatal(err)
	}
	return id
}

// The inspect commands against our worker read what it is doing: its
// slots, its tasks, a running task by id; a destination narrows the
// broadcast, and the limit ends the wait early.
func TestControlAgainstOurWorker(t *testing.T) {
	u := testenv.RabbitMQ(t)
	testenv.Worker(t, u, nil, "--hostname", "go1@fleet", "--test-tasks", "--concurrency", "3", "--journal", "file://"+t.TempDir()+"/")
	conn := dial(t, u)
	c := NewControl(conn)
	waitPong(t, c, "go1@fleet", 30*time.Second)
	ctx := context.Background()

	stats, err := Ask[Stats](ctx, c, "stats", nil, CallOptions{Timeout: time.Second})
	if err != nil || len(stats) != 1 || stats[0].Node != "go1@fleet" || stats[0].Err != nil {
		t.Fatalf("stats: %v %+v", err, stats)
	}
	if got := stats[0].Value.Pool.MaxConcurrency; got != 3 {
		t.Errorf("stats pool max-concurrency = %d, want 3", got)
	}
	reg, err := Ask[[]string](ctx, c, "registered", nil, CallOptions{})
	if err != nil || len(reg) != 1 || !slices.Contains(reg[0].Value, "renderfarm.test.sleep") {
		t.Fatalf("registered: %v %+v", err, reg)
	}

	id := sendTask(t, conn, "celery", "renderfarm.test.sleep", 30.0)
	var active []NodeReply[[]TaskInfo]
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if active, err = Ask[[]TaskInfo](ctx, c, "active", nil, CallOptions{Destination: []string{"go1@fleet"}}); err == nil && len(active) == 1 && len(active[0].Value) == 1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(active) != 1 || len(active[0].Value) != 1 || active[0].Value[0].ID != id || active[0].Value[0].Name != "renderfarm.test.sleep" {
		t.Fatalf("active: %+v, want task %s", active, id)
	}
	rev, err := c.Revoke(ctx, []string{id}, true, CallOptions{})
	if err != nil || len(rev) != 1 || rev[0].Value.OK == "" {
		t.Fatalf("revoke: %v %+v", err, rev)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		active, _ = Ask[[]TaskInfo](ctx, c, "active", nil, CallOptions{Destination: []string{"go1@fleet"}})
		if len(active) == 1 && len(active[0].Value) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoke --terminate left %+v running", active)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A destination with its one reply ends the call at once; one that
	// names nobody waits the whole timeout and answers nothing.
	start := time.Now()
	if rs, _ := c.Call(ctx, "ping", nil, CallOptions{Destination: []string{"go1@fleet"}, Timeout: 5 * time.Second}); len(rs) != 1 || time.Since(start) > 3*time.Second {
		t.Errorf("ping go1@fleet: %d replies after %v; want 1, well before the 5 s timeout", len(rs), time.Since(start))
	}
	start = time.Now()
	if rs, _ := c.Call(ctx, "ping", nil, CallOptions{Destination: []string{"nobody@fleet"}, Timeout: 700 * time.Millisecond}); len(rs) != 0 || time.Since(start) < 700*time.Millisecond {
		t.Errorf("ping nobody: %d replies after %v", len(rs), time.Since(start))
	}
	var unknown []NodeReply[OK]
	if unknown, err = Ask[OK](ctx, c, "no_such_command", nil, CallOptions{}); err != nil || len(unknown) != 1 || unknown[0].Value.Error == "" {
		t.Errorf("an unknown command: %v %+v, want the worker's error", err, unknown)
	}
}

// The same client reads a stock Python Celery worker, and the snapshot
// merges its heartbeats with its stats; its throughput shows once tasks
// finish between two of its beats.
func TestFleetReadsAPythonWorker(t *testing.T) {
	u := testenv.RabbitMQ(t)
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	testenv.PythonWorker(t, u, dir, "fleet_app", "py1@fleet", "-c", "2", "-P", "threads")
	conn := dial(t, u)
	c := NewControl(conn)
	waitPong(t, c, "py1@fleet", 60*time.Second)
	ctx := context.Background()

	reg, err := Ask[[]string](ctx, c, "registered", nil, CallOptions{})
	if err != nil || len(reg) != 1 || !slices.Contains(reg[0].Value, "fleet.sleep") {
		t.Fatalf("registered: %v %+v", err, reg)
	}
	hb := NewHeartbeats(conn, time.Minute)
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer hb.Stop(ctx)
	for i := 0; i < 20; i++ {
		sendTask(t, conn, "celery", "fleet.sleep", 0.2)
	}
	deadline := time.Now().Add(30 * time.Second)
	for hb.Throughput().PerInstance == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	tp := hb.Throughput()
	// Two threads of 0.2 s tasks: at most 10 a second.
	if tp.Measured != 1 || tp.PerInstance <= 0 || tp.PerInstance > 10.5 {
		t.Fatalf("throughput %+v, want one worker at up to 10 tasks/s", tp)
	}

	snap, err := Take(ctx, conn, SnapshotOptions{Queues: []string{"celery"}, DeadLetter: "renderfarm.dead", Timeout: time.Second, Heartbeats: hb})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Workers) != 1 {
		t.Fatalf("workers %+v", snap.Workers)
	}
	w := snap.Workers[0]
	if w.Name != "py1@fleet" || !w.Online || !w.Answered || w.SlotsTotal != 2 || w.LastHeartbeat == nil || w.Version == "" || w.TasksDone == 0 {
		t.Errorf("worker %+v", w)
	}
	if len(snap.Queues) != 1 || snap.Queues[0].Consumers != 1 || snap.DeadLetter == nil || !snap.DeadLetter.Missing {
		t.Errorf("queues %+v, dead letter %+v", snap.Queues, snap.DeadLetter)
	}
	b, _ := json.Marshal(snap)
	t.Logf("%s", b)
}
