package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/render"
	"github.com/renderfarm/renderfarm/worker"
	"github.com/urfave/cli/v2"
)

// dlqFarm is a vhost whose workers dead-letter what they cannot run, and
// the directory their renders read (in/) and write (out/).
type dlqFarm struct {
	url, root string
	conn      *broker.Conn
	flags     []string // the workers' file root and journal
}

func newDLQFarm(t *testing.T) *dlqFarm {
	t.Helper()
	f := &dlqFarm{url: testenv.RabbitMQ(t), root: t.TempDir()}
	f.flags = []string{"--file-root", f.root, "--journal", "file://" + f.root + "/_jobs/"}
	var err error
	if f.conn, err = broker.Dial(context.Background(), broker.Config{URL: f.url}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.conn.Close() })
	// Declared as the workers declare them, so messages can be sent
	// before a worker is up.
	for _, tp := range []broker.Topology{celery.Queue{Name: "celery"}.Topology(celery.DefaultDeadLetter), celery.DeadLetterTopology(celery.DefaultDeadLetter)} {
		if err := f.conn.Declare(context.Background(), tp); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *dlqFarm) startWorker(t *testing.T) *testenv.Process {
	return testenv.Worker(t, f.url, nil, append([]string{"--concurrency", "1", "--events=false"}, f.flags...)...)
}

func (f *dlqFarm) request(name string) *job.Request {
	return &job.Request{Request: render.Request{Source: "file://" + f.root + "/in/" + name, Recipe: "default", Dest: "file://" + f.root + "/out/" + name + "/"}}
}

// render enqueues a render of in/NAME, as the web tier does, with extra
// headers on the message; it returns the task id.
func (f *dlqFarm) render(t *testing.T, name string, headers amqp.Table) string {
	t.Helper()
	publish := func(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
		for k, v := range headers {
			msg.Headers[k] = v
		}
		return f.conn.Publish(ctx, exchange, key, msg)
	}
	id, err := job.Enqueue(context.Background(), publish, "celery", "celery", f.request(name))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// upload puts the source in/NAME in place.
func (f *dlqFarm) upload(t *testing.T, name string) {
	t.Helper()
	photo, err := os.ReadFile("../../testdata/photo.jpg")
	if err == nil {
		err = os.MkdirAll(filepath.Join(f.root, "in"), 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(f.root, "in", name), photo, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// rendered reports whether out/NAME/ holds outputs.
func (f *dlqFarm) rendered(name string) bool {
	entries, _ := os.ReadDir(filepath.Join(f.root, "out", name))
	return len(entries) > 0
}

// dlq runs `renderfarm dlq ARGS... --broker URL` in-process.
func (f *dlqFarm) dlq(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return run(t, append(append([]string{"dlq"}, args...), "--broker", f.url)...)
}

// deadLetters lists the dead-letter queue with `dlq ls --output json`.
func (f *dlqFarm) deadLetters(t *testing.T) []deadLetter {
	t.Helper()
	out, err := f.dlq(t, "ls", "--output", "json")
	if err != nil {
		t.Fatalf("dlq ls: %v\n%s", err, out)
	}
	var msgs []deadLetter
	if err := json.Unmarshal([]byte(out), &msgs); err != nil {
		t.Fatalf("dlq ls --output json: %v\n%s", err, out)
	}
	return msgs
}

// waitDead waits until the dead-letter queue holds n messages.
func (f *dlqFarm) waitDead(t *testing.T, n int) []deadLetter {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		msgs := f.deadLetters(t)
		if len(msgs) == n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead-letter queue holds %d messages, want %d: %+v", len(msgs), n, msgs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// queued is the task ids in queue, in order, read without taking them,
// and the headers of each.
func (f *dlqFarm) queued(t *testing.T, queue string) (ids []string, headers []amqp.Table) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := f.conn.Browse(ctx, queue)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for {
		d, ok, err := b.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return ids, headers
		}
		m, err := celery.Decode(d)
		if err != nil {
			t.Fatalf("%s holds an undecodable message: %v", queue, err)
		}
		ids, headers = append(ids, m.ID), append(headers, d.Headers)
	}
}

func byID(msgs []deadLetter) map[string]deadLetter {
	m := map[string]deadLetter{}
	for _, d := range msgs {
		m[d.ID] = d
	}
	return m
}

// Dead letters made as users make them (a render whose source is
// missing, sent by a Python app or by the web tier's path; a malformed
// message from a broken client) are listed with reason and count, shown
// in full, replayed by id or by filter back to the work queue where a
// worker runs them once the source exists, and purged only with --yes.
func TestDLQBrowseShowReplayPurge(t *testing.T) {
	f := newDLQFarm(t)
	w := f.startWorker(t)

	a := sendTask(t, f.url, f.request("a.jpg"))
	if a["state"] != "FAILURE" {
		t.Fatalf("a render of a missing source: %v", a)
	}
	idA := a["id"].(string)
	idB := f.render(t, "b.jpg", amqp.Table{worker.HeaderRedeliveries: int64(2)})
	bad := amqp.Publishing{ContentType: "application/json", Headers: amqp.Table{"task": job.TaskName, "id": "bad-json"}, Body: []byte(`[[], {"source": `)}
	if err := f.conn.Publish(context.Background(), "celery", "celery", bad); err != nil {
		t.Fatal(err)
	}
	msgs := f.waitDead(t, 3)
	if err := w.Stop(30 * time.Second); err != nil {
		t.Fatalf("worker: %v", err)
	}

	// ls: reason, origin, count and request of each, in the order they
	// were dead-lettered, and again in the same order: browsing moves
	// nothing.
	got := byID(msgs)
	for id, name := range map[string]string{idA: "a.jpg", idB: "b.jpg"} {
		m := got[id]
		if m.Task != job.TaskName || m.Queue != "celery" || !strings.Contains(m.Reason, "not_found") || m.Kwargs["source"] != f.request(name).Source {
			t.Errorf("dead letter %s: %+v", id, m)
		}
	}
	if got[idA].Redeliveries != 0 || got[idB].Redeliveries != 2 {
		t.Errorf("redeliveries: %s has %d, want 0; %s has %d, want 2", idA, got[idA].Redeliveries, idB, got[idB].Redeliveries)
	}
	if m := got["bad-json"]; !strings.Contains(m.Reason, "malformed") || m.Malformed == "" || m.Task != job.TaskName {
		t.Errorf("the malformed message: %+v", m)
	}
	order := func(msgs []deadLetter) (ids []string) {
		for _, m := range msgs {
			ids = append(ids, m.ID)
		}
		return ids
	}
	// (The worker dead-letters a malformed message as it arrives, and a
	// render when it has failed, so b and bad-json may come either way.)
	if first, again := order(msgs), order(f.deadLetters(t)); !slices.Equal(first, again) || first[0] != idA {
		t.Errorf("dead-letter order: %v, then %v; want the same twice, %s first", first, again, idA)
	}
	table, err := f.dlq(t, "ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"REASON", "REDELIVERIES", idA, idB, "bad-json", "not_found", "malformed", "{'source': 'file://" + f.root} {
		if !strings.Contains(table, want) {
			t.Errorf("dlq ls lacks %q:\n%s", want, table)
		}
	}
	if only := f.dlqJSON(t, "ls", "--reason", "malformed"); len(only) != 1 || only[0].ID != "bad-json" {
		t.Errorf("ls --reason malformed: %+v", only)
	}

	// show: the request in full, and the body of what does not decode.
	out, err := f.dlq(t, "show", idA)
	if err != nil || !strings.Contains(out, `"source": "file://`+f.root+`/in/a.jpg"`) || !strings.Contains(out, "not_found") {
		t.Errorf("dlq show %s: %v\n%s", idA, err, out)
	}
	if shown := f.dlqJSON(t, "show", "bad-json"); len(shown) != 1 || shown[0].Body != `[[], {"source": ` || shown[0].Headers["task"] != job.TaskName {
		t.Errorf("dlq show bad-json: %+v", shown)
	}
	if out, err := f.dlq(t, "show", "no-such-id"); exitCode(err) != exitNotFound {
		t.Errorf("show of an unknown id: exit %d (%v)\n%s", exitCode(err), err, out)
	}
	if out, err := f.dlq(t, "replay", "no-such-id"); exitCode(err) != exitNotFound {
		t.Errorf("replay of an unknown id: exit %d (%v)\n%s", exitCode(err), err, out)
	}
	if _, err := f.dlq(t, "replay"); exitCode(err) != exitUsage {
		t.Errorf("replay with neither ids nor --all: exit %d, want %d", exitCode(err), exitUsage)
	}

	// replay by id, then by filter: exactly the selected ones move, with
	// no dead-letter headers and no redelivery count.
	if out, err := f.dlq(t, "replay", idA); err != nil || !strings.Contains(out, "replayed") {
		t.Fatalf("dlq replay %s: %v\n%s", idA, err, out)
	}
	if n := testenv.QueueMessages(t, f.url); n["celery"] != 1 || n[celery.DefaultDeadLetter] != 2 {
		t.Errorf("after replaying one: %v, want 1 in celery and 2 dead", n)
	}
	var results []replayed
	out, err = f.dlq(t, "replay", "--all", "--reason", "not_found", "--output", "json")
	if err != nil || json.Unmarshal([]byte(out), &results) != nil || len(results) != 1 || results[0].ID != idB || !results[0].Replayed || results[0].Queue != "celery" {
		t.Fatalf("dlq replay --all --reason not_found: %v\n%s", err, out)
	}
	if n := testenv.QueueMessages(t, f.url); n["celery"] != 2 || n[celery.DefaultDeadLetter] != 1 {
		t.Errorf("after replaying both: %v, want 2 in celery and 1 dead", n)
	}
	ids, headers := f.queued(t, "celery")
	if !slices.Equal(ids, []string{idA, idB}) {
		t.Errorf("the work queue holds %v, want %s and %s", ids, idA, idB)
	}
	for i, h := range headers {
		for _, k := range append(worker.ReplayDropsHeaders(), broker.RabbitMQHeaders()...) {
			if _, ok := h[k]; ok {
				t.Errorf("replayed %s still has header %s", ids[i], k)
			}
		}
	}
	if left := f.deadLetters(t); len(left) != 1 || left[0].ID != "bad-json" {
		t.Errorf("still dead-lettered: %+v, want bad-json alone", left)
	}

	// With the sources in place a worker runs both: two results, none
	// dead-lettered again.
	f.upload(t, "a.jpg")
	f.upload(t, "b.jpg")
	f.startWorker(t)
	deadline := time.Now().Add(60 * time.Second)
	for !f.rendered("a.jpg") || !f.rendered("b.jpg") || testenv.QueueMessages(t, f.url)["celery"] != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("replayed renders not done: a %v, b %v, queues %v", f.rendered("a.jpg"), f.rendered("b.jpg"), testenv.QueueMessages(t, f.url))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := testenv.QueueMessages(t, f.url)[celery.DefaultDeadLetter]; n != 1 {
		t.Errorf("%d dead letters after the replayed renders ran, want the malformed one alone", n)
	}

	// purge: refused without a terminal to ask on, unless --yes.
	if out, err := f.dlq(t, "purge"); exitCode(err) != exitUsage || !strings.Contains(err.Error(), "--yes") {
		t.Errorf("purge without --yes: exit %d (%v)\n%s", exitCode(err), err, out)
	}
	if n := testenv.QueueMessages(t, f.url)[celery.DefaultDeadLetter]; n != 1 {
		t.Errorf("purge without --yes left %d dead letters, want 1", n)
	}
	// On a terminal it asks: no keeps them, yes purges.
	for _, answer := range []struct {
		text string
		exit int
		left int
	}{{"n", exitFailure, 1}, {"y", 0, 0}} {
		out, err := onTerminal(t, answer.text+"\n", "dlq", "purge", "--broker", f.url)
		if exitCode(err) != answer.exit || !strings.Contains(out, "[y/N]") {
			t.Errorf("purge answered %q: exit %d (%v)\n%s", answer.text, exitCode(err), err, out)
		}
		if n := testenv.QueueMessages(t, f.url)[celery.DefaultDeadLetter]; n != answer.left {
			t.Errorf("purge answered %q left %d dead letters, want %d", answer.text, n, answer.left)
		}
	}
	var purged struct {
		Queue  string
		Purged *int
	}
	if out, err := f.dlq(t, "purge", "--yes", "--output", "json"); err != nil || json.Unmarshal([]byte(out), &purged) != nil ||
		purged.Queue != celery.DefaultDeadLetter || purged.Purged == nil || *purged.Purged != 0 {
		t.Errorf("purge --yes --output json: %v\n%s", err, out)
	}
}

// onTerminal runs the renderfarm binary with a pseudo-terminal on stdin
// (util-linux script) and types input into it.
func onTerminal(t *testing.T, input string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("no script(1) to give the command a terminal")
	}
	line := testenv.Renderfarm(t)
	for _, a := range args {
		line += " '" + a + "'"
	}
	cmd := exec.Command("script", "-q", "-e", "-c", line, "/dev/null")
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), cli.Exit(string(out), ee.ExitCode())
	}
	return string(out), err
}

func (f *dlqFarm) dlqJSON(t *testing.T, args ...string) []deadLetter {
	t.Helper()
	out, err := f.dlq(t, append(args, "--output", "json")...)
	if err != nil {
		t.Fatalf("dlq %v: %v\n%s", args, err, out)
	}
	var msgs []deadLetter
	if err := json.Unmarshal([]byte(out), &msgs); err != nil {
		t.Fatalf("dlq %v --output json: %v\n%s", args, err, out)
	}
	return msgs
}

// Killed between a republish and its ack, replay loses nothing: the
// messages it had taken are in the work queue, the one in flight is in
// both queues, the rest are still dead-lettered; replaying again empties
// the dead-letter queue and a worker runs every render.
func TestDLQReplayKilledHalfwayLosesNothing(t *testing.T) {
	f := newDLQFarm(t)
	w := f.startWorker(t)
	names := []string{"1.jpg", "2.jpg", "3.jpg"}
	for _, name := range names {
		f.render(t, name, nil)
	}
	dead := f.waitDead(t, 3)
	if err := w.Stop(30 * time.Second); err != nil {
		t.Fatalf("worker: %v", err)
	}
	var ids []string
	for _, m := range dead {
		ids = append(ids, m.ID)
	}

	p := testenv.Start(t, []string{testHaltEnv + "=2"}, "dlq", "replay", "--all", "--broker", f.url)
	p.WaitOutput(t, "halted between republish and ack", 30*time.Second)
	p.Signal(syscall.SIGKILL)
	<-p.Exited()

	queued, _ := f.queued(t, "celery")
	var stillDead []string
	for _, m := range f.deadLetters(t) {
		stillDead = append(stillDead, m.ID)
	}
	if !slices.Equal(queued, ids[:2]) || !slices.Equal(stillDead, ids[1:]) {
		t.Fatalf("after the kill: work queue %v, dead letters %v; want %v and %v", queued, stillDead, ids[:2], ids[1:])
	}

	out, err := f.dlq(t, "replay", "--all")
	if err != nil {
		t.Fatalf("replaying the rest: %v\n%s", err, out)
	}
	queued, _ = f.queued(t, "celery")
	if want := append(ids[:2:2], ids[1:]...); !slices.Equal(queued, want) {
		t.Errorf("work queue %v, want %v (the one in flight twice)", queued, want)
	}
	if n := testenv.QueueMessages(t, f.url)[celery.DefaultDeadLetter]; n != 0 {
		t.Errorf("%d dead letters left", n)
	}
	for _, name := range names {
		f.upload(t, name)
	}
	f.startWorker(t)
	deadline := time.Now().Add(60 * time.Second)
	for _, name := range names {
		for !f.rendered(name) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not rendered after the replays; queues %v", name, testenv.QueueMessages(t, f.url))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// A replay that fails (its origin queue is gone) leaves that message
// dead-lettered and the exit status says some failed; the others move.
func TestDLQReplayPartialFailureKeepsTheFailed(t *testing.T) {
	f := newDLQFarm(t)
	w := testenv.Worker(t, f.url, nil, append([]string{"--queues", "celery,other", "--events=false"}, f.flags...)...)
	w.WaitOutput(t, "worker ready", 30*time.Second)
	for _, q := range []string{"celery", "other"} {
		bad := amqp.Publishing{ContentType: "application/x-foo", Headers: amqp.Table{"task": job.TaskName, "id": "from-" + q}, Body: []byte("?")}
		if err := f.conn.Publish(context.Background(), q, q, bad); err != nil {
			t.Fatal(err)
		}
	}
	f.waitDead(t, 2)
	if err := w.Stop(30 * time.Second); err != nil {
		t.Fatalf("worker: %v", err)
	}
	if err := f.conn.DeleteQueue(context.Background(), "other"); err != nil {
		t.Fatal(err)
	}
	out, err := f.dlq(t, "replay", "--all", "--output", "json")
	var results []replayed
	if exitCode(err) != exitPartial || json.Unmarshal([]byte(out), &results) != nil || len(results) != 2 {
		t.Fatalf("replay with one origin gone: exit %d (%v)\n%s", exitCode(err), err, out)
	}
	for _, r := range results {
		if ok := r.ID == "from-celery"; r.Replayed != ok || !ok && !strings.Contains(r.Error, "unroutable") {
			t.Errorf("result %+v", r)
		}
	}
	if n := testenv.QueueMessages(t, f.url); n["celery"] != 1 || n[celery.DefaultDeadLetter] != 1 {
		t.Errorf("queues after a partial replay: %v, want 1 in celery and 1 dead", n)
	}
	if left := f.deadLetters(t); len(left) != 1 || left[0].ID != "from-other" {
		t.Errorf("still dead-lettered: %+v, want from-other", left)
	}
}

// What ls shows and where replay sends a message, for each way a message
// reaches the dead-letter queue: set aside by a worker, dead-lettered by
// RabbitMQ itself (a quorum queue's delivery limit), or a body that is not
// a task at all.
func TestReadDeadLetter(t *testing.T) {
	task, err := celery.Encode(&celery.Message{ID: "t-1", Task: job.TaskName, Args: []any{}, Kwargs: map[string]any{"source": "s3://u/a.jpg"}})
	if err != nil {
		t.Fatal(err)
	}
	withHeaders := func(h amqp.Table) amqp.Delivery {
		d := amqp.Delivery{Headers: amqp.Table{}, ContentType: task.ContentType, ContentEncoding: task.ContentEncoding, Body: task.Body}
		for k, v := range task.Headers {
			d.Headers[k] = v
		}
		for k, v := range h {
			d.Headers[k] = v
		}
		return d
	}
	renders := celery.Queue{Name: "renders", Exchange: "media", RoutingKey: "r"}
	for _, tc := range []struct {
		name              string
		d                 amqp.Delivery
		id, reason, queue string
		redeliveries      int64
		malformed         bool
		key               string // where replay sends it, by the default exchange
	}{
		{name: "by a worker", d: withHeaders(amqp.Table{worker.HeaderDeadReason: "not_found: x", worker.HeaderDeadQueue: "celery", worker.HeaderRedeliveries: int32(3)}),
			id: "t-1", reason: "not_found: x", queue: "celery", redeliveries: 3, key: "celery"},
		{name: "by a quorum queue", d: withHeaders(amqp.Table{"x-first-death-reason": "delivery_limit", "x-first-death-queue": "renders", "x-delivery-count": int64(5)}),
			id: "t-1", reason: "delivery_limit", queue: "renders", redeliveries: 5, key: "renders"},
		{name: "not a task", d: amqp.Delivery{ContentType: "text/plain", MessageId: "m-9", Body: []byte("hello"), Headers: amqp.Table{worker.HeaderDeadReason: "malformed message"}},
			id: "m-9", reason: "malformed message", malformed: true, key: "celery"},
		{name: "no id anywhere", d: amqp.Delivery{Body: []byte("hello")}, id: "sha256:2cf24dba5fb0a30e", malformed: true, key: "celery"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := readDeadLetter(tc.d)
			if m.ID != tc.id || m.Reason != tc.reason || m.Queue != tc.queue || m.Redeliveries != tc.redeliveries || (m.Malformed != "") != tc.malformed {
				t.Errorf("read %+v", m)
			}
			if !tc.malformed && (m.Task != job.TaskName || m.Kwargs["source"] != "s3://u/a.jpg" || !strings.Contains(m.request(), "'source': 's3://u/a.jpg'")) {
				t.Errorf("request: task %q, kwargs %v, shown as %s", m.Task, m.Kwargs, m.request())
			}
			if ex, key := m.route(nil, "celery"); ex != "" || key != tc.key {
				t.Errorf("replayed to %q/%q, want the default exchange with key %q", ex, key, tc.key)
			}
			if ex, key := m.route(&renders, "celery"); ex != "media" || key != "r" {
				t.Errorf("with --queue renders:media:r, replayed to %q/%q", ex, key)
			}
		})
	}
}
