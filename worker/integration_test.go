package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/renderfarm/renderfarm/broker/celery"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/internal/testenv"
)

// testWorker is a worker with the test tasks on a fresh vhost, running in
// this process, driven by the real Python Celery client.
type testWorker struct {
	url  string
	conn *broker.Conn
	w    *Worker
	done chan error
	stop context.CancelFunc // warm shutdown
	cold context.CancelFunc // cuts the warm shutdown short
}

func startWorker(t *testing.T, tune func(*Config)) *testWorker {
	t.Helper()
	return startWorkerOn(t, testenv.RabbitMQ(t), tune)
}

// startWorkerOn starts a worker on a vhost the test has prepared.
func startWorkerOn(t *testing.T, url string, tune func(*Config)) *testWorker {
	t.Helper()
	return startWorkerWith(t, url, tune, nil)
}

// startWorkerWith is startWorkerOn with tasks of the test's own added.
func startWorkerWith(t *testing.T, url string, tune func(*Config), register func(*Registry)) *testWorker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, broker.Config{URL: url, Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry()
	RegisterNoop(reg)
	RegisterTestTasks(reg)
	if register != nil {
		register(reg)
	}
	cfg := Config{
		Hostname:      "renderfarm@" + strings.ReplaceAll(t.Name(), "/", "-"),
		Concurrency:   2,
		Events:        true,
		ShutdownGrace: 5 * time.Second,
		RevokedFile:   filepath.Join(t.TempDir(), "revoked.tsv"),
	}
	if tune != nil {
		tune(&cfg)
	}
	w, err := New(conn, reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	coldCtx, cold := context.WithCancel(context.Background())
	tw := &testWorker{url: url, conn: conn, w: w, done: make(chan error, 1), stop: stop, cold: cold}
	go func() { tw.done <- w.Run(runCtx, coldCtx) }()
	t.Cleanup(func() {
		stop()
		defer cold()
		select {
		case <-tw.done:
		case <-time.After(20 * time.Second):
			t.Error("worker did not stop")
		}
		conn.Close()
	})
	// Ready when it answers a ping.
	for i := 0; ; i++ {
		out := tw.py(t, "control", "ping", w.Hostname(), "1")
		if fmt.Sprint(out["reply"]) != "[]" {
			break
		}
		if i > 20 {
			t.Fatalf("worker never answered ping: %v", out)
		}
	}
	return tw
}

// py runs the Python Celery client and decodes its JSON answer.
func (tw *testWorker) py(t *testing.T, args ...string) map[string]any {
	t.Helper()
	out, err := tw.run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// background runs the client without waiting, for work that must be in
// flight while the test does something else.
func (tw *testWorker) background(args ...string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := tw.run(args...)
		done <- err
	}()
	return done
}

func (tw *testWorker) run(args ...string) (map[string]any, error) {
	cmd := exec.Command("/usr/bin/python3", append([]string{"testdata/celery_client.py", tw.url}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("python client %v: %v\n%s", args, err, stderr.String())
	}
	var out map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("python client %v printed %q: %v", args, stdout.String(), err)
	}
	return out, nil
}

func TestCeleryClientOutcomes(t *testing.T) {
	tw := startWorker(t, nil)
	tests := []struct {
		name string
		args []string
		want map[string]any
	}{
		{"value", []string{"send", "renderfarm.test.add", "[2, 3]"}, map[string]any{"state": "SUCCESS", "result": 5.0}},
		{"kwargs and floats", []string{"send", "renderfarm.test.add", "[1.5, 2.25]"}, map[string]any{"state": "SUCCESS", "result": 3.75}},
		{"builtin failure", []string{"send", "renderfarm.test.fail", `["bad input"]`},
			map[string]any{"state": "FAILURE", "exc_type": "ValueError", "exc_module": "builtins", "exc_message": "bad input"}},
		{"custom exception", []string{"send", "renderfarm.test.custom_fail", `["no such recipe"]`},
			map[string]any{"state": "FAILURE", "exc_type": "RenderError", "exc_message": "no such recipe"}},
		{"unknown task", []string{"send", "renderfarm.test.nope", "[]"},
			map[string]any{"state": "FAILURE", "exc_type": "NotRegistered", "exc_message": "'renderfarm.test.nope'"}},
		{"protocol v1", []string{"v1:send", "renderfarm.test.add", "[40, 2]"}, map[string]any{"state": "SUCCESS", "result": 42.0}},
		{"retries then succeeds", []string{"send", "renderfarm.test.retry", "[]", `{"succeed_after": 2}`},
			map[string]any{"state": "SUCCESS", "result": "succeeded after 2 retries"}},
		{"retries exhausted", []string{"send", "renderfarm.test.retry", "[]", `{"succeed_after": 9, "max_retries": 1}`},
			map[string]any{"state": "FAILURE", "exc_type": "ConnectionError", "exc_message": "attempt 2 failed"}},
		{"hard time limit", []string{"send", "renderfarm.test.sleep", "[10]", "{}", `{"time_limit": 1}`},
			map[string]any{"state": "FAILURE", "exc_type": "TimeLimitExceeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tw.py(t, tt.args...)
			for k, v := range tt.want {
				if out[k] != v {
					t.Errorf("%s = %v, want %v (whole outcome %v)", k, out[k], v, out)
				}
			}
		})
	}
}

func TestCountdownIsParkedNotHeld(t *testing.T) {
	tw := startWorker(t, nil)
	out := tw.py(t, "send", "renderfarm.test.add", "[1, 2]", "{}", `{"countdown": 4}`)
	if out["state"] != "SUCCESS" || out["result"] != 3.0 {
		t.Fatalf("countdown task: %v", out)
	}
	if el := out["elapsed"].(float64); el < 3.9 {
		t.Errorf("ran after %.1fs, before its countdown of 4s", el)
	}
	// The wait was spent in a delay queue, so the worker held no unacked
	// delivery long enough to meet RabbitMQ's consumer_timeout.
	list := testenv.RabbitMQCtl(t, "list_queues", "-p", testenv.Vhost(t, tw.url), "name", "messages")
	if !strings.Contains(list, "renderfarm.delay.celery.1s") {
		t.Errorf("no delay queue declared:\n%s", list)
	}
}

func TestExpiredTaskIsRevoked(t *testing.T) {
	tw := startWorker(t, func(c *Config) { c.Concurrency = 1 })
	// Occupy the only slot, so the next task waits past its expiry.
	busy := tw.background("send", "renderfarm.test.sleep", "[2]")
	defer func() { <-busy }()
	time.Sleep(500 * time.Millisecond)
	out := tw.py(t, "send", "renderfarm.test.add", "[1, 1]", "{}", `{"expires_in": 1}`)
	if out["state"] != "REVOKED" || out["exc_type"] != "TaskRevokedError" || !strings.Contains(fmt.Sprint(out["exc_message"]), "expired") {
		t.Errorf("expired task: %v", out)
	}
}

func TestLinksAndChains(t *testing.T) {
	tw := startWorker(t, nil)
	out := tw.py(t, "link")
	first, _ := out["first"].(map[string]any)
	cb, _ := out["callback"].(map[string]any)
	if first["result"] != 5.0 || cb["state"] != "SUCCESS" || cb["result"] != 15.0 {
		t.Errorf("link: %v", out)
	}
	out = tw.py(t, "chain")
	if out["state"] != "SUCCESS" || out["result"] != 10.0 {
		t.Errorf("chain (1+2)+3+4: %v", out)
	}
}

func TestRevoke(t *testing.T) {
	tw := startWorker(t, nil)
	out := tw.py(t, "revoke_running")
	if out["state"] != "REVOKED" || out["exc_type"] != "TaskRevokedError" {
		t.Errorf("revoke(terminate=True) of a running task: %v", out)
	}
	out = tw.py(t, "revoke_waiting")
	if out["state"] != "REVOKED" || out["exc_type"] != "TaskRevokedError" {
		t.Errorf("revoke of a task waiting for its countdown: %v", out)
	}
	// Revoked ids are on disk for the next worker.
	ids := tw.w.rt.st.revoked.list()
	reopened, err := openRevoked(tw.w.rt.cfg.RevokedFile)
	if err != nil || len(reopened.list()) != len(ids) || len(ids) != 2 {
		t.Errorf("persisted revoked ids: %v, reopened %v (%v)", ids, reopened.list(), err)
	}
}

func TestInspect(t *testing.T) {
	tw := startWorker(t, nil)
	host := tw.w.Hostname()
	tw.py(t, "send", "renderfarm.test.add", "[1, 1]")

	ping := tw.py(t, "inspect", "ping")["reply"].(map[string]any)
	if fmt.Sprint(ping[host]) != "map[ok:pong]" {
		t.Errorf("inspect ping: %v", ping)
	}
	stats := tw.py(t, "inspect", "stats")["reply"].(map[string]any)[host].(map[string]any)
	if total := stats["total"].(map[string]any); total["renderfarm.test.add"] != 1.0 {
		t.Errorf("inspect stats total: %v", stats["total"])
	}
	if stats["prefetch_count"] != 8.0 || stats["pool"].(map[string]any)["max-concurrency"] != 2.0 {
		t.Errorf("inspect stats: %v", stats)
	}
	reg := fmt.Sprint(tw.py(t, "inspect", "registered")["reply"].(map[string]any)[host])
	for _, name := range []string{"renderfarm.noop", "renderfarm.test.add", "renderfarm.test.sleep"} {
		if !strings.Contains(reg, name) {
			t.Errorf("inspect registered lacks %s: %s", name, reg)
		}
	}
	busy := tw.background("send", "renderfarm.test.sleep", "[3]")
	defer func() { <-busy }()
	var active []any
	for i := 0; i < 20 && len(active) == 0; i++ {
		time.Sleep(200 * time.Millisecond)
		active, _ = tw.py(t, "inspect", "active")["reply"].(map[string]any)[host].([]any)
	}
	if len(active) != 1 || active[0].(map[string]any)["name"] != "renderfarm.test.sleep" {
		t.Errorf("inspect active: %v", active)
	}
}

func TestEventsShowTheWorkerAlive(t *testing.T) {
	tw := startWorker(t, nil)
	out := tw.py(t, "events", "6")
	w, _ := out["workers"].(map[string]any)[tw.w.Hostname()].(map[string]any)
	if w == nil || w["alive"] != true || w["sw_ident"] != "renderfarm" || w["freq"] != 2.0 {
		t.Errorf("events State worker: %v (all: %v)", w, out)
	}
	types := fmt.Sprint(out["event_types"])
	for _, typ := range []string{"worker-heartbeat", "task-received", "task-started", "task-succeeded"} {
		if !strings.Contains(types, typ) {
			t.Errorf("no %s event seen: %s", typ, types)
		}
	}
	task, _ := out["task"].(map[string]any)
	if task["state"] != "SUCCESS" || task["name"] != "renderfarm.test.add" {
		t.Errorf("events State task: %v", task)
	}
}

func TestControlShutdown(t *testing.T) {
	tw := startWorker(t, nil)
	tw.py(t, "shutdown", tw.w.Hostname())
	select {
	case err := <-tw.done:
		if err != nil {
			t.Errorf("worker stopped with %v", err)
		}
		tw.done <- nil // for Cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("worker still running after celery control shutdown")
	}
}

func TestMalformedMessagesAreDeadLettered(t *testing.T) {
	tw := startWorker(t, nil)
	ctx := context.Background()
	bad := []struct {
		name string
		pub  amqp.Publishing
	}{
		{"bad json", amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", Headers: amqp.Table{"task": "renderfarm.test.add", "id": "bad-json"}, Body: []byte(`[[1, 2], {}`)}},
		{"two-element body", amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", Headers: amqp.Table{"task": "renderfarm.test.add", "id": "short"}, Body: []byte(`[[1, 2], {}]`)}},
		{"unknown content type", amqp.Publishing{ContentType: "application/x-foo", Headers: amqp.Table{"task": "renderfarm.test.add", "id": "foo"}, Body: []byte(`xx`)}},
		{"pickle", amqp.Publishing{ContentType: "application/x-python-serialize", ContentEncoding: "binary", Headers: amqp.Table{"task": "renderfarm.test.add", "id": "pickle"}, Body: []byte("\x80\x04\x95")}},
	}
	for _, b := range bad {
		if err := tw.conn.Publish(ctx, "celery", "celery", b.pub); err != nil {
			t.Fatalf("publishing %s: %v", b.name, err)
		}
	}
	// The worker carries on.
	if out := tw.py(t, "send", "renderfarm.test.add", "[2, 2]"); out["result"] != 4.0 {
		t.Fatalf("task after malformed messages: %v", out)
	}
	// Each is in the dead-letter queue with its reason.
	msgs := make(chan *broker.Delivery, 10)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := tw.conn.Consume(cctx, broker.ConsumeOptions{Queue: celery.DefaultDeadLetter, Prefetch: 10})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for d := range ch {
			msgs <- d
		}
	}()
	reasons := map[string]string{}
	for len(reasons) < len(bad) {
		select {
		case d := <-msgs:
			d.Ack()
			reasons[fmt.Sprint(d.Headers["id"])] = fmt.Sprint(d.Headers[HeaderDeadReason])
		case <-time.After(10 * time.Second):
			t.Fatalf("dead-lettered so far: %v", reasons)
		}
	}
	for id, want := range map[string]string{"bad-json": "JSON", "short": "2", "foo": "content_type", "pickle": "pickle"} {
		if !strings.Contains(strings.ToLower(reasons[id]), strings.ToLower(want)) {
			t.Errorf("%s dead-lettered with reason %q, want it to mention %q", id, reasons[id], want)
		}
	}
}

// The README's Python example runs unchanged against a Go worker.
func TestPythonExample(t *testing.T) {
	tw := startWorker(t, nil)
	cmd := exec.Command("/usr/bin/python3", "../examples/python/hello_renderfarm.py", tw.url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"workers: " + tw.w.Hostname(), "add(2, 3) = 5", "fail raised ValueError: that went wrong", "chain = 6", "after a 3 s countdown: 42"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("example output lacks %q:\n%s", want, out)
		}
	}
}
