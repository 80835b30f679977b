package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/job"
)

// A task whose handler kills its own worker process is dead-lettered once
// it has started --max-starts times after its first delivery, while the renders it took down with
// it each time (running beside it, or prefetched by the worker it killed)
// complete: a redelivery caused by someone else's crash is not held against
// them. Real worker processes, restarted as systemd would, on one queue:
// classic, and quorum with RabbitMQ's delivery limit as the backstop.
func TestSelfKillingTaskTakesNoInnocentRenderWithIt(t *testing.T) {
	for _, queue := range []struct {
		name string
		args []string
	}{
		{"classic", nil},
		{"quorum", []string{"--quorum", "--delivery-limit", "20"}},
	} {
		t.Run(queue.name, func(t *testing.T) { selfKill(t, queue.args) })
	}
}

func selfKill(t *testing.T, queueArgs []string) {
	const limit, renders = 3, 12
	url := testenv.RabbitMQ(t)
	root, journalDir := t.TempDir(), t.TempDir()
	journal := "file://" + journalDir + "/"
	photo := filepath.Join(root, "uploads", "photo.jpg")
	if err := os.MkdirAll(filepath.Dir(photo), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(photo, testenv.Testdata(t, "photo.jpg"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Two slots, and a prefetch that holds every task, so each crash
	// returns innocent renders with the poison task, running and unstarted.
	args := []string{"--test-tasks", "--concurrency", "2", "--prefetch", strconv.Itoa(renders + 1),
		"--max-starts", strconv.Itoa(limit), "--file-root", root, "--journal", journal}
	args = append(args, queueArgs...)
	start := func() *testenv.Process {
		p := testenv.Worker(t, url, nil, args...)
		p.WaitOutput(t, "worker ready", 60*time.Second)
		return p
	}
	w := start()

	ctx := context.Background()
	conn, err := broker.Dial(ctx, broker.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Renders slow enough that one is running when the poison task starts.
	send := func(i int) string {
		req, err := job.ParseRequest(fmt.Appendf(nil, `{"source": "file://%s", "outputs": [
			{"key": "file://%s/out/%d/a.webp", "width": 1200, "format": "webp"},
			{"key": "file://%s/out/%d/b.png", "width": 1000, "format": "png"}]}`, photo, root, i, root, i))
		if err != nil {
			t.Fatal(err)
		}
		id, err := job.Enqueue(ctx, conn.Publish, "celery", "celery", req)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ids := []string{send(0)}
	poison, err := celery.Encode(&celery.Message{ID: "kill-self", Task: "renderfarm.test.kill_self", Args: []any{}, IgnoreResult: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Publish(ctx, "celery", "celery", poison); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < renders; i++ {
		ids = append(ids, send(i))
	}

	dead := make(chan *broker.Delivery, renders+1)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deliveries, err := conn.Consume(cctx, broker.ConsumeOptions{Queue: celery.DefaultDeadLetter, Prefetch: renders + 1})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for d := range deliveries {
			d.Ack()
			dead <- d
		}
	}()

	// Supervise: restart the worker each time the task kills it, until
	// the poison task is dead-lettered and every render has its manifest.
	deaths, reason, deadIDs := 0, "", []string{}
	done := map[string]*job.Manifest{}
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); {
		select {
		case <-w.Exited():
			deaths++
			w = start()
			continue
		case d := <-dead:
			deadIDs = append(deadIDs, fmt.Sprint(d.Headers["id"]))
			if d.Headers["id"] == "kill-self" {
				reason = fmt.Sprint(d.Headers["x-renderfarm-dead-reason"])
			}
			continue
		case <-time.After(100 * time.Millisecond):
		}
		for _, id := range ids {
			if done[id] == nil {
				done[id] = finalManifest(journal, id)
			}
		}
		if reason != "" && len(doneIDs(done)) == len(ids) {
			break
		}
	}
	if want := fmt.Sprintf("started %d times", limit); !strings.Contains(reason, want) {
		t.Errorf("the poison task's dead-letter reason is %q, want it to say %q", reason, want)
	}
	if deaths != limit+1 { // the first start is not recorded
		t.Errorf("the poison task killed %d workers, want the limit plus its unrecorded first start, %d", deaths, limit+1)
	}
	if len(deadIDs) != 1 {
		t.Errorf("dead-lettered %v, want the poison task alone", deadIDs)
	}
	for _, id := range ids {
		if m := done[id]; m == nil || m.Status != job.StatusSuccess {
			t.Errorf("render %s: manifest %+v, want SUCCESS", id, m)
		}
	}
	// Every start record was settled: none is left behind in the journal.
	// Dot-files are the atomic write's temporaries, which a SIGKILL in the
	// middle of recording a start leaves as it would for any file write;
	// they are not records.
	if left, _ := filepath.Glob(filepath.Join(journalDir, "starts", "[!.]*")); len(left) != 0 {
		t.Errorf("start records left in the journal: %v", left)
	}
}

// finalManifest reads a task's manifest from a file:// journal: nil until
// it is SUCCESS or FAILURE.
func finalManifest(journal, id string) *job.Manifest {
	data, err := os.ReadFile(strings.TrimPrefix(job.ManifestLocation(journal, id, time.Now()), "file://"))
	if err != nil {
		return nil
	}
	var m job.Manifest
	if json.Unmarshal(data, &m) != nil || (m.Status != job.StatusSuccess && m.Status != job.StatusFailure) {
		return nil
	}
	return &m
}

func doneIDs(done map[string]*job.Manifest) []string {
	var out []string
	for id, m := range done {
		if m != nil {
			out = append(out, id)
		}
	}
	return out
}

// A render the worker dead-letters at the start limit gets a FAILURE
// manifest saying why, so the web tier reports it failed instead of
// pending forever, and its start record is cleared.
func TestRenderAtTheStartLimitGetsAFailureManifest(t *testing.T) {
	f := startFarm(t)
	ctx := context.Background()
	const id = "0191e5d2-0000-7000-8000-00000000dead"
	key := id + ".0"
	if err := f.runner.Starts().Record(ctx, key, 5); err != nil { // the default limit
		t.Fatal(err)
	}
	pub, err := celery.Encode(&celery.Message{ID: id, Task: job.TaskName, Args: []any{}, IgnoreResult: true, Kwargs: map[string]any{
		"source": f.copyTestdata(t, "photo.jpg"), "recipe": "default", "dest": "file://" + f.root + "/renders/dead/"}})
	if err != nil {
		t.Fatal(err)
	}
	// As a copy of a message that started before (handed back by a worker
	// shutting down): RabbitMQ delivers it as new, the mark says to look.
	pub.Headers["x-renderfarm-started"] = int64(5)
	// Declared as the worker does, which may not have got that far yet.
	for _, top := range []broker.Topology{celery.DeadLetterTopology(celery.DefaultDeadLetter), celery.Queue{Name: "celery"}.Topology(celery.DefaultDeadLetter)} {
		if err := f.conn.Declare(ctx, top); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.conn.Publish(ctx, "celery", "celery", pub); err != nil {
		t.Fatal(err)
	}
	var m *job.Manifest
	for deadline := time.Now().Add(20 * time.Second); m == nil && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		m = finalManifest("file://"+f.journal+"/", id)
	}
	if m == nil || m.Status != job.StatusFailure || m.Error == nil || m.Error.Code != "worker_lost" || !m.Error.Permanent ||
		!strings.Contains(m.Error.Message, "started 5 times") || m.Request == nil {
		t.Fatalf("manifest %+v (error %+v), want FAILURE worker_lost saying it started 5 times, with the request", m, m.Error)
	}
	if _, err := os.Stat(filepath.Join(f.root, "renders", "dead")); err == nil {
		t.Error("the dead-lettered render ran")
	}
	if n, _ := f.runner.Starts().Starts(ctx, key); n != 0 {
		t.Errorf("start record still says %d after the dead-lettering", n)
	}
	if n, err := f.conn.PurgeQueue(ctx, celery.DefaultDeadLetter); err != nil || n != 1 {
		t.Errorf("dead-letter queue holds %d (%v), want the render", n, err)
	}
}
