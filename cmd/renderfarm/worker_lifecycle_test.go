package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/job"
)

// noiseJPEG writes a w x h JPEG of noise: no shrink-on-load shortcut and
// nothing for an encoder to squeeze, so each render of it takes a while
// and a batch is still going when the notice comes.
func noiseJPEG(t *testing.T, path string, w, h int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.UintN(256))
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 0xff
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
}

// manifestsBy counts the finished job manifests in the journal by the
// worker that wrote them.
func manifestsBy(t *testing.T, journal string) map[string]int {
	t.Helper()
	by := map[string]int{}
	err := filepath.WalkDir(journal, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var m job.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if m.Status == job.StatusSuccess {
			by[m.Worker]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return by
}

// probes returns a GET of a worker's metrics and health server, which
// answers with the status and body.
func probes(t *testing.T, w *testenv.Process) func(path string) (int, string) {
	t.Helper()
	addr := regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(w.WaitOutput(t, "serving metrics", 30*time.Second))[1]
	return func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

// busy waits until the worker's one slot is taken.
func busy(t *testing.T, get func(string) (int, string)) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, m := get("/metrics"); strings.Contains(m, "renderfarm_worker_slots_busy 1") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker's slot never got busy")
		}
	}
}

// queued is the task queue's messages, ready and unacknowledged.
func queued(t *testing.T, amqpURL, queue string) int {
	t.Helper()
	for _, l := range strings.Split(testenv.RabbitMQCtl(t, "list_queues", "-p", testenv.Vhost(t, amqpURL), "name", "messages"), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == queue {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no queue %s", queue)
	return 0
}

// A spot notice mid-batch: the worker stops taking tasks, /readyz turns
// 503, the render it is running finishes, it exits 0 and completes the
// lifecycle hook; the tasks it had not started stay queued and a worker
// started afterwards renders them. Nothing is lost and nothing is
// rendered twice.
func TestSpotNoticeDrainsWorkerMidBatch(t *testing.T) {
	root := t.TempDir()
	journal := filepath.Join(root, "_jobs")
	if err := os.MkdirAll(filepath.Join(root, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "in", "noise.jpg")
	noiseJPEG(t, src, 2400, 1600)
	flags := []string{"--file-root", root, "--journal", "file://" + journal + "/", "--events=false", "--concurrency", "1", "--prefetch", "1"}

	md := testenv.FakeIMDS(t, "i-0spot", "eu-west-1")
	api := testenv.FakeAutoScaling(t)
	amqpURL := testenv.RabbitMQ(t)
	a := testenv.Worker(t, amqpURL, append(md.Env(), api.Env()...), append(flags, "--hostname", "a@lifecycle",
		"--ec2-lifecycle", "--ec2-poll-interval", "100ms", "--lifecycle-hook", "drain-renders", "--asg-name", "render-workers",
		"--shutdown-grace", "60s")...)
	a.WaitOutput(t, "watching EC2 instance metadata", 30*time.Second)
	get := probes(t, a)
	a.WaitOutput(t, "worker ready", 30*time.Second)

	const batch = 6
	results := make(chan map[string]any, batch)
	for i := range batch {
		req := map[string]any{"source": "file://" + src, "outputs": []any{
			map[string]any{"key": fmt.Sprintf("file://%s/out/%d.webp", root, i), "width": 2000, "format": "webp"}}}
		go func() { results <- testenv.SendTask(t, amqpURL, job.TaskName, nil, req, 180) }()
	}

	// Mid-batch: one render done, the next one running.
	// Counted before the slot is seen busy, so the render running then is
	// not among them.
	var doneBefore int
	for deadline := time.Now().Add(60 * time.Second); doneBefore == 0; time.Sleep(20 * time.Millisecond) {
		doneBefore = manifestsBy(t, journal)["a@lifecycle"]
		if time.Now().After(deadline) {
			t.Fatal("worker a never finished a render")
		}
	}
	busy(t, get)
	md.SetSpotNotice("terminate", time.Now().Add(2*time.Minute))
	noticed := time.Now()
	sawUnready := false
	for {
		if code, _ := get("/readyz"); code == http.StatusServiceUnavailable {
			sawUnready = true
		}
		select {
		case <-a.Exited():
		case <-time.After(20 * time.Millisecond):
			if time.Since(noticed) > 60*time.Second {
				t.Fatal("worker a still running 60s after the spot notice")
			}
			continue
		}
		break
	}
	if err := a.Stop(0); err != nil {
		t.Fatalf("worker a exited with %v after the notice, want 0", err)
	}
	if !sawUnready {
		t.Error("/readyz never answered 503 during the drain")
	}
	out := a.Output()
	if !strings.Contains(out, "the instance is being retired") || strings.Contains(out, "handing back the renders still running") {
		t.Errorf("worker a did not drain warm on the notice:\n%s", out)
	}

	doneByA := manifestsBy(t, journal)["a@lifecycle"]
	t.Logf("worker a: %d renders before the notice, %d in all; drained in %v", doneBefore, doneByA, time.Since(noticed).Round(time.Millisecond))
	if doneByA < doneBefore+1 {
		t.Errorf("worker a finished %d renders, %d before the notice: the one running then did not finish", doneByA, doneBefore)
	}
	if doneByA >= batch {
		t.Fatalf("worker a rendered the whole batch (%d): the notice did not stop it taking tasks", doneByA)
	}
	if n := queued(t, amqpURL, "celery"); n != batch-doneByA {
		t.Errorf("%d messages queued after worker a left, want the %d it had not rendered", n, batch-doneByA)
	}

	reqs := api.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d Auto Scaling requests, want one CompleteLifecycleAction", len(reqs))
	}
	for k, want := range map[string]string{"Action": "CompleteLifecycleAction", "LifecycleHookName": "drain-renders",
		"AutoScalingGroupName": "render-workers", "InstanceId": "i-0spot", "LifecycleActionResult": "CONTINUE"} {
		if got := reqs[0].Form.Get(k); got != want {
			t.Errorf("CompleteLifecycleAction %s=%q, want %q", k, got, want)
		}
	}
	if strings.Index(out, "lifecycle action completed") < strings.Index(out, "worker stopped") {
		t.Errorf("the lifecycle action was completed before the drain ended:\n%s", out)
	}

	// A fresh worker takes the rest.
	testenv.Worker(t, amqpURL, nil, append(flags, "--hostname", "b@lifecycle")...)
	for range batch {
		select {
		case r := <-results:
			if r["state"] != "SUCCESS" {
				t.Errorf("a task of the batch: %v", r)
			}
		case <-time.After(150 * time.Second):
			t.Fatal("the batch did not finish after worker b started")
		}
	}
	by := manifestsBy(t, journal)
	if by["a@lifecycle"] != doneByA || by["a@lifecycle"]+by["b@lifecycle"] != batch {
		t.Errorf("renders by worker: %v; want a's %d and the other %d by b", by, doneByA, batch-doneByA)
	}
}

// A spot notice's deadline bounds the drain: a task that would outlast it
// is handed back before the instance goes, however long --shutdown-grace.
func TestSpotNoticeDeadlineCutsDrainShort(t *testing.T) {
	md := testenv.FakeIMDS(t, "i-0short", "eu-west-1")
	amqpURL := testenv.RabbitMQ(t)
	w := testenv.Worker(t, amqpURL, md.Env(), "--test-tasks", "--events=false", "--concurrency", "1",
		"--ec2-lifecycle", "--ec2-poll-interval", "100ms", "--shutdown-grace", "60s")
	get := probes(t, w)
	w.WaitOutput(t, "worker ready", 30*time.Second)
	go testenv.SendTask(t, amqpURL, "renderfarm.test.sleep", []any{40}, nil, 1)
	busy(t, get)
	// 17 s ahead: the worker keeps 15 s for what follows the drain.
	md.SetSpotNotice("terminate", time.Now().Add(17*time.Second))
	start := time.Now()
	select {
	case <-w.Exited():
	case <-time.After(20 * time.Second):
		t.Fatal("the worker outlived the spot notice's deadline")
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("the worker left after %v: it did not drain until the deadline", el)
	}
	if err := w.Stop(0); err != nil {
		t.Errorf("exit: %v, want 0", err)
	}
	if !strings.Contains(w.Output(), "handing back the renders still running") {
		t.Errorf("no word of cutting the drain short:\n%s", w.Output())
	}
	if n := queued(t, amqpURL, "celery"); n != 1 {
		t.Errorf("%d messages queued, want the cut-short task back", n)
	}
}

// Asked to watch, a worker with no metadata service does not start; the
// lifecycle flags alone are a usage error.
func TestEC2LifecycleStartupErrors(t *testing.T) {
	md := testenv.FakeIMDS(t, "i-0", "eu-west-1")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"no metadata", []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1"}, []string{"--ec2-lifecycle"}, 1, "not reachable"},
		{"hook without the watch", nil, []string{"--lifecycle-hook", "drain"}, exitUsage, "--lifecycle-hook needs --ec2-lifecycle"},
		{"hook without a group", md.Env(), []string{"--ec2-lifecycle", "--lifecycle-hook", "drain"}, 1, "pass --asg-name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testenv.Worker(t, "amqp://guest:guest@127.0.0.1:1/", tc.env, tc.args...)
			select {
			case <-p.Exited():
			case <-time.After(30 * time.Second):
				t.Fatal("still running")
			}
			err := p.Stop(0)
			var code int
			if ee, ok := err.(interface{ ExitCode() int }); ok {
				code = ee.ExitCode()
			}
			if code != tc.code || !strings.Contains(p.Output(), tc.want) {
				t.Errorf("exit %v, want %d with %q:\n%s", err, tc.code, tc.want, p.Output())
			}
		})
	}
}

// A scale-in: the target lifecycle state turns Terminated. The running
// task finishes, the worker exits 0 and completes the hook of the group its
// instance tags name, signed for the region the metadata gives.
func TestAutoScalingTerminationCompletesHook(t *testing.T) {
	md := testenv.FakeIMDS(t, "i-0scalein", "ap-south-1")
	md.SetGroupTag("render-workers")
	api := testenv.FakeAutoScaling(t)
	env := append(append(md.Env(), api.Env()...), "AWS_REGION=", "AWS_DEFAULT_REGION=") // the region from the metadata
	amqpURL := testenv.RabbitMQ(t)
	w := testenv.Worker(t, amqpURL, env, "--test-tasks", "--events=false", "--concurrency", "1",
		"--ec2-lifecycle", "--ec2-poll-interval", "100ms", "--lifecycle-hook", "drain-renders", "--shutdown-grace", "30s")
	get := probes(t, w)
	w.WaitOutput(t, "worker ready", 30*time.Second)
	result := make(chan map[string]any, 1)
	go func() { result <- testenv.SendTask(t, amqpURL, "renderfarm.test.sleep", []any{3}, nil, 60) }()
	busy(t, get)
	md.SetTargetLifecycleState("Terminated")
	select {
	case <-w.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not leave after the group terminated its instance")
	}
	if err := w.Stop(0); err != nil {
		t.Errorf("exit: %v, want 0", err)
	}
	if r := <-result; r["state"] != "SUCCESS" {
		t.Errorf("the task running at the termination: %v", r)
	}
	reqs := api.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d Auto Scaling requests, want one:\n%s", len(reqs), w.Output())
	}
	if g, id := reqs[0].Form.Get("AutoScalingGroupName"), reqs[0].Form.Get("InstanceId"); g != "render-workers" || id != "i-0scalein" {
		t.Errorf("completed group %q instance %q, want render-workers i-0scalein", g, id)
	}
	if !strings.Contains(reqs[0].Authorization, "/ap-south-1/autoscaling/aws4_request") {
		t.Errorf("Authorization %q: not signed for the metadata's region", reqs[0].Authorization)
	}
}
