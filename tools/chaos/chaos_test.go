//go:build chaos

// Package chaos is renderfarm's fault suite (`make chaos`): real worker and
// web processes, versitygw and a RabbitMQ node of its own on 127.0.0.1:5681
// (stopped and started by the suite; the system node on 5672 is never
// touched), one scenario per test, one table row per scenario, printed at
// the end and written to $CHAOS_TABLE when set.
package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/job"
	_ "golang.org/x/image/webp"
)

// nodePort is the private RabbitMQ node's; its distribution port is
// nodePort+20000.
const nodePort = 5681

var (
	nodeOnce sync.Once
	node     *testenv.Node
	nodeT    *testing.T // the node lives as long as TestMain's suite
)

// row is one scenario's line in the table.
type row struct {
	Scenario   string
	Sent       int // confirmed by the web tier (202)
	Completed  int // SUCCESS manifest
	Executions int // renders started, from the workers' logs
	Valid      int // outputs that decode
	Outputs    int // outputs expected
	Lost       int // confirmed but never completed
	Crashes    int // worker exits not caused by the scenario, and panics
	PeakRSSMiB int64
	Recovery   string
	Notes      string
}

var (
	rowsMu sync.Mutex
	rows   []row
)

func record(r row) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	rows = append(rows, r)
}

func TestMain(m *testing.M) {
	code := m.Run()
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | tasks sent | completed | executions | outputs valid | lost | worker crashes | peak RSS | recovery | notes |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d/%d | %d | %d | %d MiB | %s | %s |\n",
			r.Scenario, r.Sent, r.Completed, r.Executions, r.Valid, r.Outputs, r.Lost, r.Crashes, r.PeakRSSMiB, r.Recovery, r.Notes)
	}
	fmt.Print("\n" + b.String())
	if path := os.Getenv("CHAOS_TABLE"); path != "" {
		_ = os.WriteFile(path, []byte(b.String()), 0o644)
	}
	os.Exit(code)
}

// privateNode starts the suite's RabbitMQ node once; it is stopped when
// the test that started it ends, so the scenarios run as subtests of one
// test (TestChaos).
func privateNode(t *testing.T) *testenv.Node {
	nodeOnce.Do(func() { node = testenv.PrivateRabbitMQ(nodeT, nodePort) })
	return node
}

// farm is one scenario's deployment: versitygw behind an outage proxy, a
// web tier and workers, on a queue of the scenario's own.
type farm struct {
	t       *testing.T
	name    string
	queue   string
	s3      testenv.S3Server
	s3Proxy *testenv.Outage
	s3c     *s3.Client // straight to versitygw, for checking
	web     *testenv.Process
	webURL  string
	token   string
	workers []*testenv.Process
	sources []string // task i renders sources[i % len]
	// files is the workers' and web tier's --file-root; with fileEvery > 0
	// every fileEvery-th task writes its outputs there instead of to S3.
	files     string
	fileEvery int
	args      []string
	env       []string

	rssMu   sync.Mutex
	peakRSS int64 // KiB, VmHWM over the workers
	ours    map[*testenv.Process]bool
}

// newFarm deploys a farm of workers with workerArgs added to their flags,
// rendering testdata/photo.jpg.
func newFarm(t *testing.T, name string, workers int, workerArgs ...string) *farm {
	n := privateNode(t)
	f := &farm{t: t, name: name, queue: "chaos-" + name, token: "chaos-token-0123456789abcdef", ours: map[*testenv.Process]bool{},
		sources: []string{"s3://uploads/photo.jpg"}, files: t.TempDir()}
	f.s3 = testenv.S3(t, false)
	f.s3.CreateBucket(t, "uploads")
	f.s3.CreateBucket(t, "renders")
	f.s3c = f.s3.Client(t)
	f.upload("../../testdata/photo.jpg", "photo.jpg")
	f.s3Proxy = testenv.NewOutage(t, strings.TrimPrefix(f.s3.Endpoint, "http://"))
	for _, kv := range f.s3.Env() {
		if strings.HasPrefix(kv, "AWS_ENDPOINT_URL_S3=") {
			kv = "AWS_ENDPOINT_URL_S3=http://" + f.s3Proxy.Addr()
		}
		f.env = append(f.env, kv)
	}
	common := []string{"--journal", "s3://renders/_jobs/", "--buckets", "uploads,renders", "--s3-path-style", "--file-root", f.files}
	f.args = append(append([]string{"--queues", f.queue, "--concurrency", "2", "--prefetch", "4", "--log-level", "debug", "--shutdown-grace", "30s"}, common...), workerArgs...)
	for range workers {
		f.startWorker()
	}
	addr := freeAddr(t)
	f.webURL = "http://" + addr
	f.web = testenv.Start(t, f.env, append([]string{"web", "--broker", n.URL, "--listen", addr, "--tokens", f.token,
		"--queue", f.queue, "--rate", "-1"}, common...)...)
	f.waitReady(60 * time.Second)
	go f.sampleRSS()
	return f
}

func (f *farm) startWorker() *testenv.Process {
	p := testenv.Worker(f.t, privateNode(f.t).URL, f.env, f.args...)
	p.WaitOutput(f.t, "worker ready", 60*time.Second)
	f.rssMu.Lock() // sampleRSS reads the list
	f.workers = append(f.workers, p)
	f.rssMu.Unlock()
	return p
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitReady waits for the web tier's /readyz to answer 200 and returns
// how long that took.
func (f *farm) waitReady(within time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < within {
		if resp, err := http.Get(f.webURL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(start)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.t.Fatalf("the web tier was not ready within %v", within)
	return 0
}

// sampleRSS keeps the largest VmHWM (peak RSS) any worker reached; a
// process's peak is lost when it exits, so it is read while they run.
func (f *farm) sampleRSS() {
	for {
		f.rssMu.Lock()
		workers := slices.Clone(f.workers)
		f.rssMu.Unlock()
		for _, p := range workers {
			kb := procStatus(p.Pid(), "VmHWM:")
			f.rssMu.Lock()
			f.peakRSS = max(f.peakRSS, kb)
			f.rssMu.Unlock()
		}
		if f.t.Context().Err() != nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// upload stores a local file as s3://uploads/name.
func (f *farm) upload(path, name string) {
	data, err := os.ReadFile(path)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.s3c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("uploads"), Key: aws.String(name), Body: bytes.NewReader(data)}); err != nil {
		f.t.Fatal(err)
	}
}

// procStatus reads a "NAME: N kB" field of /proc/pid/status, in KiB (0
// when the process is gone).
func procStatus(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// request is task i's render: four outputs of its source, keyed by
// scenario and index so every task writes its own, in S3 or, one task in
// fileEvery, under the file root.
func (f *farm) request(i int) map[string]any {
	dest := fmt.Sprintf("s3://renders/%s/%d/", f.name, i)
	if f.fileEvery > 0 && i%f.fileEvery == 0 {
		dest = fmt.Sprintf("file://%s/%s/%d/", f.files, f.name, i)
	}
	return map[string]any{"source": f.sources[i%len(f.sources)], "outputs": []any{
		map[string]any{"key": dest + "a.jpg", "width": 160},
		map[string]any{"key": dest + "b.webp", "width": 320, "format": "webp"},
		map[string]any{"key": dest + "c.jpg", "width": 640},
		map[string]any{"key": dest + "d.png", "width": 96, "format": "png"},
	}}
}

const outputsPerTask = 4

// send posts tasks [from, to) in batches and returns the ids the web tier
// confirmed (202) and how many items it refused with 503.
func (f *farm) send(from, to int) (ids []string, unavailable int) {
	for lo := from; lo < to; lo += 50 {
		hi := min(lo+50, to)
		var reqs []any
		for i := lo; i < hi; i++ {
			reqs = append(reqs, f.request(i))
		}
		var out struct {
			Results []struct {
				Status int    `json:"status"`
				ID     string `json:"id"`
			} `json:"results"`
		}
		status, err := f.post("/v1/renders/batch", map[string]any{"requests": reqs}, &out)
		if err != nil {
			f.t.Fatalf("batch post: %v", err)
		}
		if len(out.Results) != hi-lo {
			f.t.Fatalf("batch post answered %d with %d results for %d items", status, len(out.Results), hi-lo)
		}
		for _, r := range out.Results {
			switch r.Status {
			case 202:
				ids = append(ids, r.ID)
			case 503:
				unavailable++
			default:
				f.t.Errorf("a batch item was answered %d", r.Status)
			}
		}
	}
	return ids, unavailable
}

// post sends one JSON request to the web tier and decodes the answer.
func (f *farm) post(path string, body, out any) (int, error) {
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", f.webURL+path, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("answer %d %q: %w", resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode, nil
}

// executions counts renders started, over every worker this scenario ran
// (a killed worker's output is kept): each fetches its source once, which
// the store logs at debug.
func (f *farm) executions() int {
	return f.countLines(`msg="storage get"`, "location=s3://uploads/")
}

// countLines counts the workers' output lines holding both a and b.
func (f *farm) countLines(a, b string) int {
	n := 0
	for _, p := range f.workers {
		for _, line := range strings.Split(p.Output(), "\n") {
			if strings.Contains(line, a) && strings.Contains(line, b) {
				n++
			}
		}
	}
	return n
}

// waitExecutions waits until at least n renders have started.
func (f *farm) waitExecutions(n int, within time.Duration) {
	deadline := time.Now().Add(within)
	for f.executions() < n {
		if time.Now().After(deadline) {
			f.t.Fatalf("only %d of %d executions within %v", f.executions(), n, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sinceNextExecution waits for the execution count to pass from and
// returns how long after t0 it did.
func (f *farm) sinceNextExecution(from int, t0 time.Time, within time.Duration) time.Duration {
	for time.Since(t0) < within {
		if f.executions() > from {
			return time.Since(t0)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return -1
}

// outcome waits until every id has a final manifest (or the time runs
// out), then checks outputs and manifests and fills the row.
func (f *farm) outcome(r *row, ids []string, within time.Duration) {
	r.Sent = len(ids)
	final := map[string]*job.Manifest{}
	deadline := time.Now().Add(within)
	for {
		for _, id := range ids {
			if m := final[id]; m != nil {
				continue
			}
			if m := f.manifest(id); m != nil && (m.Status == "SUCCESS" || m.Status == "FAILURE") {
				final[id] = m
			}
		}
		if len(final) == len(ids) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	failed := 0
	for _, id := range ids {
		m := final[id]
		switch {
		case m == nil:
			r.Lost++
		case m.Status != "SUCCESS":
			failed++
			r.Lost++
		default:
			r.Completed++
			r.Outputs += outputsPerTask
			for _, o := range m.Result.Outputs {
				if f.decodes(o.Key) {
					r.Valid++
				}
			}
		}
	}
	if failed > 0 {
		r.Notes += fmt.Sprintf("%d FAILURE manifests. ", failed)
	}
	// One manifest per task: attempts of a task write the same object.
	if n := f.countManifests(); n != len(ids) {
		r.Notes += fmt.Sprintf("%d manifests for %d tasks. ", n, len(ids))
	}
	r.Executions = f.executions()
	f.outcomeCrashes(r)
}

// outcomeCrashes fills in peak RSS and crashes.
func (f *farm) outcomeCrashes(r *row) {
	f.rssMu.Lock()
	r.PeakRSSMiB = f.peakRSS / 1024
	f.rssMu.Unlock()
	for _, p := range f.workers {
		if strings.Contains(p.Output(), "panic:") {
			r.Crashes++
		}
		select {
		case <-p.Exited():
			if !f.ours[p] {
				r.Crashes++
			}
		default:
		}
	}
}

// waitManifest waits for a task's final manifest (nil if none came).
func (f *farm) waitManifest(id string, within time.Duration) *job.Manifest {
	deadline := time.Now().Add(within)
	for {
		m := f.manifest(id)
		if m != nil && (m.Status == "SUCCESS" || m.Status == "FAILURE") || time.Now().After(deadline) {
			return m
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// manifest reads a task's manifest straight from versitygw (today's
// directory: the suite runs in minutes).
func (f *farm) manifest(id string) *job.Manifest {
	key := strings.TrimPrefix(job.ManifestLocation("s3://renders/_jobs/", id, time.Now()), "s3://renders/")
	out, err := f.s3c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("renders"), Key: aws.String(key)})
	if err != nil {
		return nil
	}
	defer out.Body.Close()
	var m job.Manifest
	if json.NewDecoder(out.Body).Decode(&m) != nil {
		return nil
	}
	return &m
}

// fileOutputs lists the temporary files of storage's atomic writes
// (".NAME.tmp-RANDOM", storage/file.go writeAtomic) left under the file
// root, and counts the other files there: the outputs.
func (f *farm) fileOutputs() (temps []string, outputs int) {
	err := filepath.WalkDir(f.files, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
		case strings.HasPrefix(d.Name(), ".") && strings.Contains(d.Name(), ".tmp-"):
			temps = append(temps, path)
		default:
			outputs++
		}
		return nil
	})
	if err != nil {
		f.t.Errorf("walking the file root: %v", err)
	}
	return temps, outputs
}

func (f *farm) countManifests() int {
	n := 0
	p := s3.NewListObjectsV2Paginator(f.s3c, &s3.ListObjectsV2Input{Bucket: aws.String("renders"), Prefix: aws.String("_jobs/")})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			f.t.Errorf("listing manifests: %v", err)
			return -1
		}
		for _, o := range page.Contents {
			if strings.HasSuffix(aws.ToString(o.Key), ".json") {
				n++
			}
		}
	}
	return n
}

// decodes reports whether the output at key (s3://renders/ or file://)
// is a whole image.
func (f *farm) decodes(key string) bool {
	if path, ok := strings.CutPrefix(key, "file://"); ok {
		file, err := os.Open(path)
		if err != nil {
			return false
		}
		defer file.Close()
		_, _, err = image.Decode(file)
		return err == nil
	}
	k := strings.TrimPrefix(key, "s3://renders/")
	out, err := f.s3c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("renders"), Key: aws.String(k)})
	if err != nil {
		return false
	}
	defer out.Body.Close()
	_, _, err = image.Decode(out.Body)
	return err == nil
}

// TestChaos runs the scenarios in turn on one private RabbitMQ node.
func TestChaos(t *testing.T) {
	nodeT = t
	t.Run("sigkill", scenarioSIGKILL)
	t.Run("rabbitmq-down", scenarioBrokerDown)
	t.Run("s3-down", scenarioS3Down)
	t.Run("sigterm", scenarioSIGTERM)
	t.Run("memory", scenarioMemory)
	t.Run("poison", scenarioPoison)
	t.Run("kill-self", scenarioKillSelf)
}
