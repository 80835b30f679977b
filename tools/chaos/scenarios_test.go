//go:build chaos

package chaos

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/job"
)

const (
	batch = 200
	// concurrency is each worker's --concurrency: the most renders one
	// worker has running when a fault strikes.
	concurrency = 2
	drainWithin = 5 * time.Minute
)

// finish records r however the scenario ends, marked when it failed.
func finish(t *testing.T, r *row) {
	if t.Failed() {
		r.Notes += "SCENARIO FAILED (see log). "
	}
	record(*r)
}

// checkCommon applies what every scenario promises.
func checkCommon(t *testing.T, r *row) {
	if r.Lost != 0 {
		t.Errorf("%d confirmed tasks never completed", r.Lost)
	}
	if r.Valid != r.Outputs {
		t.Errorf("%d of %d outputs decode", r.Valid, r.Outputs)
	}
	if r.Crashes != 0 {
		t.Errorf("%d worker crashes", r.Crashes)
	}
}

func secs(d time.Duration) string {
	if d < 0 {
		return "not recovered"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// midBatch deploys a farm of two workers, posts the batch (one task in
// fileEvery writing to the file root, none when 0) and returns once a
// fifth of it has started.
func midBatch(t *testing.T, name string, fileEvery int) (*farm, []string) {
	f := newFarm(t, name, 2)
	f.fileEvery = fileEvery
	ids, _ := f.send(0, batch)
	f.waitExecutions(batch/5, 3*time.Minute)
	return f, ids
}

// signalWorker sends sig to the second worker, a fault of the scenario's
// own making (not counted as a crash).
func (f *farm) signalWorker(sig syscall.Signal) *testenv.Process {
	victim := f.workers[1]
	f.ours[victim] = true
	victim.Signal(sig)
	return victim
}

// SIGKILL one of two workers mid-batch: its unacked deliveries go back to
// the queue and the other worker renders them; only the renders it had
// running may run twice. A quarter of the tasks write file:// outputs, to
// check what a kill leaves on disk.
func scenarioSIGKILL(t *testing.T) {
	const fileEvery = 4
	r := &row{Scenario: "SIGKILL one of two workers mid-batch"}
	defer finish(t, r)
	f, ids := midBatch(t, "sigkill", fileEvery)
	from := f.executions()
	f.signalWorker(syscall.SIGKILL)
	t0 := time.Now()
	rec := f.sinceNextExecution(from, t0, time.Minute)
	r.Recovery = secs(rec) + " to the next render start"
	f.outcome(r, ids, drainWithin)
	checkCommon(t, r)
	if r.Executions > r.Sent+concurrency {
		t.Errorf("%d executions for %d tasks: more than the killed worker's %d running renders ran twice", r.Executions, r.Sent, concurrency)
	}
	// A file:// output is written to a dot-prefixed temporary file in its
	// directory and renamed over the target, so a finished write leaves
	// none and a failed one removes its own. Only a SIGKILL between create
	// and rename leaves one behind, and a render writes its outputs one at
	// a time: at most one per render running on the killed worker. The
	// retry writes the output itself, which outcome has decoded above.
	temps, outputs := f.fileOutputs()
	fileTasks := (batch + fileEvery - 1) / fileEvery
	r.Notes += fmt.Sprintf("%d tasks wrote %d file:// outputs; %d temporary files left (at most %d allowed: the killed worker's running renders). ",
		fileTasks, outputs, len(temps), concurrency)
	if outputs != fileTasks*outputsPerTask {
		t.Errorf("%d files under the file root, want the %d outputs of %d tasks", outputs, fileTasks*outputsPerTask, fileTasks)
	}
	if len(temps) > concurrency {
		t.Errorf("%d temporary files left under the file root, more than the %d renders the SIGKILL caught: %v", len(temps), concurrency, temps)
	}
}

// RabbitMQ stopped 20 s mid-batch: the web tier answers 503 while it is
// down and 202 after; workers and the web tier come back by themselves
// within about 2 s of the broker; every confirmed task completes; only
// the renders running at the loss may run twice.
func scenarioBrokerDown(t *testing.T) {
	r := &row{Scenario: "RabbitMQ stopped 20 s mid-batch"}
	defer finish(t, r)
	f := newFarm(t, "rabbitmq-down", 2)
	n := privateNode(t)
	ids, _ := f.send(0, batch/2)
	f.waitExecutions(batch/10, 3*time.Minute)
	n.Stop(t)
	down := time.Now()
	probes, refused := 0, 0
	for k := 0; time.Since(down) < 20*time.Second; k++ {
		var out struct {
			ID string `json:"id"`
		}
		status, err := f.post("/v1/renders", f.request(batch+k), &out)
		probes++
		switch {
		case err != nil:
			t.Errorf("a render posted while RabbitMQ was down: %v", err)
		case status == 503:
			refused++
		case status == 202:
			t.Errorf("a render posted while RabbitMQ was down was accepted")
			ids = append(ids, out.ID)
		}
		time.Sleep(2 * time.Second)
	}
	// The broker is back when its port accepts connections, which may be
	// before rabbitmqctl await_startup returns.
	upc := make(chan time.Time, 1)
	go func() {
		for {
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", nodePort), time.Second); err == nil {
				c.Close()
				upc <- time.Now()
				return
			}
			time.Sleep(25 * time.Millisecond)
		}
	}()
	n.Start(t)
	up := <-upc
	// Recovery: the last of the workers and the web tier to come back.
	var workersBack time.Time
	for deadline := time.Now().Add(2 * time.Minute); workersBack.IsZero() && time.Now().Before(deadline); {
		all := true
		for _, p := range f.workers {
			if !strings.Contains(p.Output(), "broker: reconnected") {
				all = false
			}
		}
		if all {
			workersBack = time.Now()
		}
		time.Sleep(25 * time.Millisecond)
	}
	f.waitReady(2 * time.Minute)
	webBack := time.Now()
	workerRec, webRec := workersBack.Sub(up), webBack.Sub(up)
	if workersBack.IsZero() {
		workerRec = -1
	}
	r.Recovery = fmt.Sprintf("workers %s, web %s after the port reopened", secs(workerRec), secs(webRec))
	more, unavailable := f.send(batch/2, batch)
	ids = append(ids, more...)
	r.Notes += fmt.Sprintf("down %.0f s in all (20 s stopped + node boot); %d/%d posts during the outage got 503; %d/%d after got 202. ",
		up.Sub(down).Seconds(), refused, probes, len(more), batch-batch/2)
	f.outcome(r, ids, drainWithin)
	checkCommon(t, r)
	if refused != probes {
		t.Errorf("%d of %d posts during the outage were not 503", probes-refused, probes)
	}
	if unavailable > 0 {
		t.Errorf("%d posts after the broker's return got 503", unavailable)
	}
	if workerRec < 0 || workerRec > 5*time.Second || webRec > 5*time.Second {
		t.Errorf("recovery %s: want within about 2 s", r.Recovery)
	}
	if r.Executions > r.Sent+2*concurrency {
		t.Errorf("%d executions for %d tasks: more than the %d renders running at the loss ran twice", r.Executions, r.Sent, 2*concurrency)
	}
}

// The S3 server unreachable for 30 s mid-batch: renders fail their
// storage attempts and are retried; every task completes, none fails.
func scenarioS3Down(t *testing.T) {
	r := &row{Scenario: "S3 server down 30 s mid-batch"}
	defer finish(t, r)
	f, ids := midBatch(t, "s3-down", 0)
	f.s3Proxy.Cut()
	time.Sleep(30 * time.Second)
	f.s3Proxy.Restore()
	t0 := time.Now()
	from := f.okPuts()
	for time.Since(t0) < 2*time.Minute && f.okPuts() == from {
		time.Sleep(50 * time.Millisecond)
	}
	rec := time.Since(t0)
	if f.okPuts() == from {
		rec = -1
	}
	r.Recovery = secs(rec) + " to the next stored output"
	warns := 0
	for _, p := range f.workers {
		warns += strings.Count(p.Output(), `msg="storage operation failed"`)
	}
	r.Notes += fmt.Sprintf("%d storage WARN lines. ", warns)
	f.outcome(r, ids, drainWithin)
	checkCommon(t, r)
	if warns == 0 {
		t.Error("an S3 outage mid-batch logged no failed storage attempt")
	}
}

// okPuts counts outputs stored, from the workers' debug logs.
func (f *farm) okPuts() int { return f.countLines(`msg="storage put"`, "err=<nil>") }

// SIGTERM one of two workers mid-batch: a warm shutdown lets its running
// renders finish within the grace and hands the rest back; nothing is
// lost or repeated.
func scenarioSIGTERM(t *testing.T) {
	r := &row{Scenario: "SIGTERM one of two workers mid-batch"}
	defer finish(t, r)
	f, ids := midBatch(t, "sigterm", 0)
	victim := f.signalWorker(syscall.SIGTERM)
	t0 := time.Now()
	select {
	case <-victim.Exited():
	case <-time.After(45 * time.Second):
		t.Error("the worker was still running 45 s after SIGTERM (grace 30 s)")
	}
	took := time.Since(t0)
	if err := victim.Stop(time.Second); err != nil {
		t.Errorf("warm shutdown: %v", err)
		r.Crashes++
	}
	r.Recovery = fmt.Sprintf("worker exited %.1f s after SIGTERM", took.Seconds())
	f.outcome(r, ids, drainWithin)
	checkCommon(t, r)
	if r.Executions != r.Sent {
		t.Errorf("%d executions for %d tasks: a warm shutdown must not repeat any", r.Executions, r.Sent)
	}
}

// Memory: a stream of 47 MP JPEGs, baseline and progressive, through one
// worker with a 1 GiB render budget: peak RSS stays within the budget plus
// a stated overhead (the Go runtime, libvips' caches and buffers, encoded
// sources and outputs held outside the admission).
func scenarioMemory(t *testing.T) {
	const (
		tasks    = 30
		budget   = 1 << 10 // MiB
		overhead = 512     // MiB
	)
	r := &row{Scenario: fmt.Sprintf("%d x 47 MP JPEGs (half progressive), 1 GiB budget", tasks)}
	defer finish(t, r)
	f := newFarm(t, "memory", 1, "--memory-budget", "1GiB")
	dir := t.TempDir()
	big, prog := filepath.Join(dir, "big.jpg"), filepath.Join(dir, "big-prog.jpg")
	// 8400 x 5600 from the test photo; photographs of that size are larger
	// files, but decoding costs the same per pixel.
	for _, args := range [][]string{
		{"resize", "../../testdata/photo.jpg", big, "7"},
		{"jpegsave", big, prog, "--interlace"},
	} {
		if out, err := exec.Command("vips", args...).CombinedOutput(); err != nil {
			t.Fatalf("vips %v: %v\n%s", args, err, out)
		}
	}
	f.upload(big, "big.jpg")
	f.upload(prog, "big-prog.jpg")
	f.sources = []string{"s3://uploads/big.jpg", "s3://uploads/big-prog.jpg"}
	ids, _ := f.send(0, tasks)
	f.outcome(r, ids, drainWithin)
	r.Recovery = "n/a"
	r.Notes += fmt.Sprintf("budget %d MiB + stated overhead %d MiB. ", budget, overhead)
	checkCommon(t, r)
	if r.PeakRSSMiB > budget+overhead {
		t.Errorf("peak RSS %d MiB over the %d MiB budget plus %d MiB overhead", r.PeakRSSMiB, budget, overhead)
	}
}

// rawChannel is a plain amqp091-go channel on the private node, for
// publishing what no well-behaved client sends and reading dead letters.
func (f *farm) rawChannel() *amqp.Channel {
	conn, err := amqp.Dial(privateNode(f.t).URL)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		f.t.Fatal(err)
	}
	return ch
}

// Malformed messages and hostile input: zero crashes, and each ends as a
// FAILURE manifest or a dead-letter record with a reason. The malformed
// messages are published on the wire as a broken client would; the
// hostile images go through the web tier like any upload, and through the
// stock Python Celery client with hostile paths, malformed requests and
// an unknown task name (celeryHostile).
func scenarioPoison(t *testing.T) {
	r := &row{Scenario: "malformed messages and hostile input (raw AMQP, web tier, Celery client)"}
	defer finish(t, r)
	f := newFarm(t, "poison", 2)
	ch := f.rawChannel()
	task := amqp.Table{"task": "renderfarm.render", "id": "chaos-poison-badreq", "lang": "py"}
	malformed := []amqp.Publishing{
		{ContentType: "application/json", Headers: amqp.Table{"task": "renderfarm.render", "id": "chaos-poison-json", "lang": "py"}, Body: []byte("{{{")},
		{ContentType: "application/x-python-serialize", Headers: amqp.Table{"task": "renderfarm.render", "id": "chaos-poison-pickle", "lang": "py"}, Body: []byte("\x80\x04K\x01.")},
		{ContentType: "application/json", Body: []byte("[]")}, // no task header, not a v1 body
		// A well-formed message whose request is not one (source is a number).
		{ContentType: "application/json", Headers: task, Body: []byte(`[[], {"source": 5, "recipe": "gallery", "dest": "s3://renders/x/"}, {}]`)},
	}
	for _, p := range malformed {
		p.DeliveryMode = amqp.Persistent
		if err := ch.PublishWithContext(t.Context(), "", f.queue, false, false, p); err != nil {
			t.Fatal(err)
		}
	}
	hostile := []string{"truncated.jpg", "corrupt.png", "empty.jpg", "image.svg", "bomb.png"}
	for _, name := range hostile {
		f.upload("../../testdata/"+name, name)
	}
	f.sources = nil
	for _, name := range hostile {
		f.sources = append(f.sources, "s3://uploads/"+name)
	}
	ids, _ := f.send(0, len(hostile))
	celeryDead, celeryRenderErrors, celeryOK := f.celeryHostile()
	r.Sent = len(malformed) + len(ids) + len(celeryHostile(f))
	// Malformed requests to the web tier are refused before anything is
	// published: 400 with the field at fault.
	badHTTP := []any{
		"not an object",
		map[string]any{"recipe": "gallery", "dest": "s3://renders/x/"},
		map[string]any{"source": "s3://uploads/photo.jpg", "outputs": []any{map[string]any{"key": "s3://renders/x/a.jpg", "width": 0}}},
		map[string]any{"source": "file:///etc/passwd", "recipe": "gallery", "dest": "s3://renders/x/"},
		map[string]any{"source": "https://169.254.169.254/latest/meta-data/", "recipe": "gallery", "dest": "s3://renders/x/"},
	}
	refused := 0
	for _, body := range badHTTP {
		var out struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		status, err := f.post("/v1/renders", body, &out)
		if err == nil && status == 400 && out.Error.Code != "" {
			refused++
		} else {
			t.Errorf("a malformed request %v was answered %d (%v), want 400 with an error code", body, status, err)
		}
	}
	r.Notes += fmt.Sprintf("%d/%d malformed HTTP requests refused with 400. ", refused, len(badHTTP))
	r.Notes += fmt.Sprintf("%d hostile tasks through the Python Celery client: %d answered RenderError FAILURE with the expected code (and dead-lettered), %d NotRegistered. ",
		len(celeryHostile(f)), celeryRenderErrors, celeryOK)

	// Dead-letter records of this scenario's queue, with their reasons.
	want := len(malformed) + len(ids) + celeryDead // every permanent failure is dead-lettered too
	var reasons []string
	for deadline := time.Now().Add(2 * time.Minute); len(reasons) < want && time.Now().Before(deadline); {
		d, ok, err := ch.Get("renderfarm.dead", false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if d.Headers["x-renderfarm-dead-queue"] == f.queue {
			reasons = append(reasons, fmt.Sprint(d.Headers["x-renderfarm-dead-reason"]))
		}
		_ = d.Ack(false)
	}
	for _, reason := range reasons {
		if strings.TrimSpace(reason) == "" || reason == "<nil>" {
			t.Error("a dead-letter record without a reason")
		}
	}
	// Every hostile image: a FAILURE manifest with an error code.
	failures, codes := 0, map[string]int{}
	for _, id := range append([]string{"chaos-poison-badreq"}, ids...) {
		m := f.waitManifest(id, time.Minute)
		if m != nil && m.Status == "FAILURE" && m.Error != nil && m.Error.Code != "" {
			failures++
			codes[m.Error.Code]++
		} else {
			t.Errorf("task %s: manifest %+v, want FAILURE with an error code", id, m)
		}
	}
	// Completed: ended as a dead-letter record with a reason, or (an
	// unknown task, rejected without one) as a FAILURE its client received.
	r.Completed = len(reasons) + celeryOK
	r.Lost = max(0, want-len(reasons))
	r.Executions = f.executions()
	f.outcomeCrashes(r)
	r.Recovery = "n/a"
	r.Notes += fmt.Sprintf("completed = dead-letter records with a reason (%d of %d) + Celery FAILUREs not dead-lettered (%d); %d FAILURE manifests with codes %v. ",
		len(reasons), want, celeryOK, failures, codes)
	if r.Lost != 0 {
		t.Errorf("%d of %d messages left no dead-letter record", r.Lost, want)
	}
	if r.Crashes != 0 {
		t.Errorf("%d worker crashes", r.Crashes)
	}
}

// hostileTask is what a buggy or hostile Python app may send through the
// stock Celery client, and the FAILURE its client must receive.
type hostileTask struct {
	name    string
	task    string
	args    []any
	kwargs  map[string]any
	excType string
	// code starts a RenderError's message ("code: detail"); for another
	// exception, text its message must contain.
	code string
	// deadLetter: the worker also records it in renderfarm.dead (every
	// render that fails for good); an unknown task is only rejected.
	deadLetter bool
}

// celeryHostile are the hostile tasks of the poison scenario: hostile
// images from the web tier's corpus (uploaded by then), paths outside the
// file root and into the journal, malformed request shapes, and a task
// name no worker knows.
func celeryHostile(f *farm) []hostileTask {
	out := func(key string) []any { return []any{map[string]any{"key": key, "width": 64}} }
	dest := "s3://renders/poison/celery/"
	render := func(name string, kwargs map[string]any, code string) hostileTask {
		return hostileTask{name: name, task: job.TaskName, kwargs: kwargs, excType: "RenderError", code: code, deadLetter: true}
	}
	return []hostileTask{
		render("corrupt image", map[string]any{"source": "s3://uploads/corrupt.png", "outputs": out(dest + "corrupt.jpg")}, "corrupt_image"),
		render("truncated image", map[string]any{"source": "s3://uploads/truncated.jpg", "outputs": out(dest + "truncated.jpg")}, "corrupt_image"),
		render("image bomb", map[string]any{"source": "s3://uploads/bomb.png", "outputs": out(dest + "bomb.jpg")}, "too_many_pixels"),
		render("source outside the file root", map[string]any{"source": "file:///etc/passwd", "outputs": out(dest + "passwd.jpg")}, "forbidden"),
		render("output escaping the file root", map[string]any{"source": "s3://uploads/photo.jpg", "outputs": out("file://" + f.files + "/../escape.jpg")}, "invalid_location"),
		render("output through a symlink out of the file root", map[string]any{"source": "s3://uploads/photo.jpg", "outputs": out("file://" + f.files + "/elsewhere/escape.jpg")}, "forbidden"),
		render("output into the journal", map[string]any{"source": "s3://uploads/photo.jpg", "outputs": out("s3://renders/_jobs/evil.jpg")}, "forbidden"),
		{name: "two positional arguments", task: job.TaskName, args: []any{"s3://uploads/photo.jpg", dest}, excType: "RenderError", code: "invalid_request", deadLetter: true},
		render("source a number, outputs a string", map[string]any{"source": 5, "outputs": "all"}, "invalid_request"),
		{name: "unknown task name", task: "renderfarm.no_such_task", kwargs: map[string]any{}, excType: "NotRegistered", code: "renderfarm.no_such_task"},
	}
}

// celeryHostile sends the hostile tasks through the Python Celery client,
// all at once, and checks the FAILURE each client received. It returns
// how many the worker must also dead-letter, how many of those got the
// right FAILURE, and how many ended as the right FAILURE alone.
func (f *farm) celeryHostile() (deadLetters, deadLetterFailures, failureOnly int) {
	tasks := celeryHostile(f)
	// A link inside the root to a directory outside it, as a careless
	// deploy may leave: the path is the root's, the write must not be.
	outside := f.t.TempDir()
	if err := os.Symlink(outside, filepath.Join(f.files, "elsewhere")); err != nil {
		f.t.Fatal(err)
	}
	results := make([]map[string]any, len(tasks))
	var wg sync.WaitGroup
	for i, h := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = testenv.SendTaskWith(f.t, privateNode(f.t).URL, h.task, h.args, h.kwargs, map[string]any{"queue": f.queue}, 120)
		}()
	}
	wg.Wait()
	for i, h := range tasks {
		if h.deadLetter {
			deadLetters++
		}
		res := results[i]
		msg := fmt.Sprint(res["exc_message"])
		ok := res["state"] == "FAILURE" && res["exc_type"] == h.excType
		if h.excType == "RenderError" {
			ok = ok && strings.HasPrefix(msg, h.code+": ")
		} else {
			ok = ok && strings.Contains(msg, h.code)
		}
		if !ok {
			f.t.Errorf("Celery task %q: the client got %v, want FAILURE %s (%s)", h.name, res, h.excType, h.code)
			continue
		}
		f.t.Logf("Celery task %q: %s: %s", h.name, h.excType, msg)
		if h.deadLetter {
			deadLetterFailures++
		} else {
			failureOnly++
		}
	}
	for _, escaped := range []string{filepath.Join(filepath.Dir(f.files), "escape.jpg"), filepath.Join(outside, "escape.jpg")} {
		if _, err := os.Stat(escaped); !errors.Is(err, fs.ErrNotExist) {
			f.t.Errorf("an output escaped the file root to %s: %v", escaped, err)
		}
	}
	return deadLetters, deadLetterFailures, failureOnly
}

// A handler that kills its own process: the message is dead-lettered once
// its handler has started --max-starts times after its first delivery
// (so it killed --max-starts+1 workers), the workers it killed are
// restarted (as systemd would), and the other tasks complete, those it
// took down with it (running beside it or prefetched) included.
func scenarioKillSelf(t *testing.T) {
	const limit, renders = 3, 60
	r := &row{Scenario: "a handler that kills its own process"}
	defer finish(t, r)
	f := newFarm(t, "kill-self", 2, "--test-tasks", "--max-starts", strconv.Itoa(limit))
	ch := f.rawChannel()
	ids, _ := f.send(0, renders/2)
	kill := amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent,
		Headers: amqp.Table{"task": "renderfarm.test.kill_self", "id": "chaos-kill-self", "lang": "py"}, Body: []byte(`[[], {}, {}]`)}
	if err := ch.PublishWithContext(t.Context(), "", f.queue, false, false, kill); err != nil {
		t.Fatal(err)
	}
	more, _ := f.send(renders/2, renders)
	ids = append(ids, more...)

	// Supervise: restart every worker the task killed, until its
	// dead-letter record appears.
	deaths, reason := 0, ""
	// reap counts the workers the task killed (SIGKILL; any other exit
	// stays a crash) and restarts them while the task is live.
	reap := func(restart bool) {
		for _, p := range f.workers {
			if !f.ours[p] && p.KilledBy(syscall.SIGKILL) {
				f.ours[p] = true // the scenario's own fault, not a crash
				deaths++
				if restart {
					f.startWorker()
				}
			}
		}
	}
	for deadline := time.Now().Add(4 * time.Minute); reason == "" && time.Now().Before(deadline); {
		reap(true)
		if d, ok, err := ch.Get("renderfarm.dead", false); err != nil {
			t.Fatal(err)
		} else if ok {
			if d.Headers["x-renderfarm-dead-queue"] == f.queue {
				reason = fmt.Sprint(d.Headers["x-renderfarm-dead-reason"])
			}
			_ = d.Ack(false)
			continue
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The last worker the task killed may be seen to exit after another
	// worker has already dead-lettered the redelivered task.
	for settle := time.Now().Add(3 * time.Second); time.Now().Before(settle); time.Sleep(100 * time.Millisecond) {
		reap(false)
	}
	r.Recovery = "n/a"
	r.Notes += fmt.Sprintf("the handler killed %d workers (each restarted); dead-letter reason: %q. ", deaths, reason)
	f.outcome(r, ids, drainWithin)
	checkCommon(t, r)
	if reason == "" {
		t.Error("the self-killing task was never dead-lettered")
	}
	if deaths != limit+1 {
		t.Errorf("the self-killing task killed %d workers, want %d: the limit of %d starts after its unrecorded first", deaths, limit+1, limit)
	}
}
