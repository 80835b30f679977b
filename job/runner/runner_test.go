package runner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/renderfarm/renderfarm/job"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/render"
	"github.com/renderfarm/renderfarm/storage"
	"github.com/renderfarm/renderfarm/worker"
)

// farm is one worker serving renderfarm.render on a fresh vhost, with file
// storage under root and its journal under journal.
type farm struct {
	url, root, journal string
	conn               *broker.Conn
	metrics            *prometheus.Registry // the worker's, runner's and connection's series
	runner             *Runner
}

func startFarm(t *testing.T) *farm {
	t.Helper()
	f := &farm{root: t.TempDir(), journal: t.TempDir()}
	store, err := storage.New(context.Background(), storage.Config{FileRoots: []string{f.root}})
	if err != nil {
		t.Fatal(err)
	}
	journalStore, err := storage.New(context.Background(), storage.Config{FileRoots: []string{f.journal}})
	if err != nil {
		t.Fatal(err)
	}
	f.serve(t, store, journalStore, "file://"+f.journal+"/")
	return f
}

// serve runs a worker with renderfarm.render on these stores.
func (f *farm) serve(t *testing.T, store, journalStore *storage.Store, journal string) {
	t.Helper()
	f.url = testenv.RabbitMQ(t)
	ctx := context.Background()
	f.metrics = prometheus.NewRegistry()
	conn, err := broker.Dial(ctx, broker.Config{URL: f.url, Metrics: broker.NewMetrics(f.metrics)})
	if err != nil {
		t.Fatal(err)
	}
	f.conn = conn
	engine, err := render.New(render.Config{Limits: render.DefaultLimits(), Slots: 2, VipsThreads: 1, MemoryBudget: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := New(Config{Engine: engine, Store: store, JournalStore: journalStore, Journal: journal,
		Hostname: "renderfarm@test", MaxAttempts: 2, RetryBase: 100 * time.Millisecond, Metrics: NewMetrics(f.metrics)})
	if err != nil {
		t.Fatal(err)
	}
	f.runner = runner
	reg := worker.NewRegistry()
	runner.Register(reg)
	w, err := worker.New(conn, reg, worker.Config{Hostname: "renderfarm@test", Concurrency: 2, ShutdownGrace: 5 * time.Second,
		Registry: f.metrics, Starts: runner.Starts()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx, context.Background()) }()
	t.Cleanup(func() {
		stop()
		<-done
		conn.Close()
	})
}

// send submits a request with the stock Python client, as an app would.
func (f *farm) send(t *testing.T, request any) map[string]any {
	t.Helper()
	return testenv.SendTask(t, f.url, job.TaskName, nil, request, 60)
}

func (f *farm) copyTestdata(t *testing.T, name string) string {
	t.Helper()
	data := testenv.Testdata(t, name)
	p := filepath.Join(f.root, "uploads", name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return "file://" + p
}

func (f *farm) manifest(t *testing.T, id string) job.Manifest {
	t.Helper()
	var m job.Manifest
	p := strings.TrimPrefix(job.ManifestLocation("file://"+f.journal+"/", id, time.Now()), "file://")
	data, err := os.ReadFile(p)
	if err == nil {
		err = json.Unmarshal(data, &m)
	}
	if err != nil {
		t.Fatalf("manifest of %s: %v", id, err)
	}
	return m
}

func TestRenderTaskEndToEnd(t *testing.T) {
	f := startFarm(t)
	src := f.copyTestdata(t, "photo.jpg")
	out := f.send(t, map[string]any{"source": src, "recipe": "default", "dest": "file://" + f.root + "/renders/photo/",
		"cache_control": "public, max-age=31536000", "metadata": map[string]string{"upload": "42"}})
	if out["state"] != "SUCCESS" {
		t.Fatalf("render task: %v", out)
	}
	res, _ := out["result"].(map[string]any)
	source, _ := res["source"].(map[string]any)
	if source["width"] != 1200.0 || source["height"] != 800.0 || source["format"] != "jpeg" {
		t.Errorf("source: %v", source)
	}
	outputs, _ := res["outputs"].([]any)
	if len(outputs) != 3 || res["attempts"] != 1.0 {
		t.Fatalf("result: %v", res)
	}
	for _, o := range outputs {
		o := o.(map[string]any)
		data, err := os.ReadFile(strings.TrimPrefix(o["key"].(string), "file://"))
		if err != nil {
			t.Fatalf("output %v not stored: %v", o["key"], err)
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != o["sha256"] || float64(len(data)) != o["bytes"] {
			t.Errorf("output %v: stored bytes differ from the result's sha256/bytes", o["key"])
		}
	}
	timings, _ := res["timings_ms"].(map[string]any)
	for _, k := range []string{"fetch", "render", "upload", "total"} {
		if _, ok := timings[k].(float64); !ok {
			t.Errorf("timings lack %s: %v", k, timings)
		}
	}
	m := f.manifest(t, out["id"].(string))
	if m.Status != "SUCCESS" || m.Result == nil || len(m.Result.Outputs) != 3 || m.Request == nil || m.Request.Recipe != "default" || m.Worker != "renderfarm@test" {
		t.Errorf("manifest: %+v", m)
	}
}

func TestRenderTaskBadInputsFailClearly(t *testing.T) {
	f := startFarm(t)
	dest := "file://" + f.root + "/renders/x/"
	tests := []struct {
		name    string
		request map[string]any
		code    string
	}{
		{"truncated jpeg", map[string]any{"source": f.copyTestdata(t, "truncated.jpg"), "recipe": "default", "dest": dest}, "corrupt_image"},
		{"empty file", map[string]any{"source": f.copyTestdata(t, "empty.jpg"), "recipe": "default", "dest": dest}, "unsupported_format"},
		{"text as jpeg", map[string]any{"source": f.copyTestdata(t, "text.jpg"), "recipe": "default", "dest": dest}, "unsupported_format"},
		{"svg", map[string]any{"source": f.copyTestdata(t, "image.svg"), "recipe": "default", "dest": dest}, "unsupported_format"},
		{"pixel bomb", map[string]any{"source": f.copyTestdata(t, "bomb.png"), "recipe": "default", "dest": dest}, "too_many_pixels"},
		{"corrupt png", map[string]any{"source": f.copyTestdata(t, "corrupt.png"), "recipe": "default", "dest": dest}, "corrupt_image"},
		{"missing source", map[string]any{"source": "file://" + f.root + "/uploads/nope.jpg", "recipe": "default", "dest": dest}, "not_found"},
		{"traversal key", map[string]any{"source": f.copyTestdata(t, "photo.jpg"), "outputs": []any{map[string]any{"key": "file://" + f.root + "/../escape.jpg", "width": 10}}}, ""},
		{"outside the file roots", map[string]any{"source": "file:///etc/passwd", "recipe": "default", "dest": dest}, "forbidden"},
		{"ssrf", map[string]any{"source": "http://169.254.169.254/latest/meta-data/", "recipe": "default", "dest": dest}, ""},
		{"unknown field", map[string]any{"source": "s3://b/k", "recipe": "default", "dest": dest, "colour": "red"}, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := f.send(t, tt.request)
			msg := fmt.Sprint(out["exc_message"])
			if out["state"] != "FAILURE" || out["exc_type"] != "RenderError" || !strings.Contains(msg, tt.code) {
				t.Errorf("got %v, want FAILURE RenderError mentioning %q", out, tt.code)
			}
			if m := f.manifest(t, out["id"].(string)); m.Status != "FAILURE" || m.Error == nil || !m.Error.Permanent || m.Attempts != 1 {
				t.Errorf("manifest: %+v (error %+v)", m, m.Error)
			}
		})
	}
	// Every one is in the dead-letter queue, and the worker still serves.
	n, err := f.conn.PurgeQueue(context.Background(), celery.DefaultDeadLetter)
	if err != nil || n != len(tests) {
		t.Errorf("dead-letter queue holds %d records (%v), want %d", n, err, len(tests))
	}
	if out := f.send(t, map[string]any{"source": f.copyTestdata(t, "photo.jpg"), "recipe": "default", "dest": dest}); out["state"] != "SUCCESS" {
		t.Errorf("render after the bad ones: %v", out)
	}
}

// The same task with sources, outputs and the journal on S3 (versitygw),
// over plain HTTP and over TLS, where the SDK's checksum handling differs.
func TestRenderTaskOnS3(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[useTLS], func(t *testing.T) {
			srv := testenv.S3(t, useTLS)
			srv.CreateBucket(t, "uploads")
			srv.CreateBucket(t, "renders")
			journal := "s3://renders/_renderfarm/jobs/"
			cfg := storage.Config{
				S3Endpoint: srv.Endpoint, S3Region: srv.Region, S3PathStyle: true, S3CACertPEM: srv.CACertPEM,
				S3Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
			}
			journalStore, err := storage.New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			cfg.AllowedBuckets, cfg.Reserved = []string{"uploads", "renders", "ghost"}, []string{journal}
			store, err := storage.New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			photo := testenv.Testdata(t, "photo.jpg")
			if _, err := store.Put(context.Background(), storage.MustParseLocation("s3://uploads/u/photo.jpg"), photo, storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			f := &farm{}
			f.serve(t, store, journalStore, journal)

			out := f.send(t, map[string]any{"source": "s3://uploads/u/photo.jpg", "recipe": "gallery", "dest": "s3://renders/photo/",
				"cache_control": "public, max-age=60", "content_disposition": "inline", "metadata": map[string]string{"upload": "42"}})
			if out["state"] != "SUCCESS" {
				t.Fatalf("render task: %v", out)
			}
			outputs := out["result"].(map[string]any)["outputs"].([]any)
			if len(outputs) != 8 {
				t.Fatalf("%d outputs, want the gallery's 8", len(outputs))
			}
			first := outputs[0].(map[string]any)
			head, err := srv.Client(t).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("renders"), Key: aws.String("photo/64.webp")})
			if err != nil {
				t.Fatal(err)
			}
			if first["key"] != "s3://renders/photo/64.webp" || aws.ToString(head.ContentType) != "image/webp" ||
				aws.ToString(head.CacheControl) != "public, max-age=60" || head.Metadata["upload"] != "42" || aws.ToString(head.ETag) != first["etag"] {
				t.Errorf("stored object: type %s cache %s meta %v etag %s; result %v", aws.ToString(head.ContentType),
					aws.ToString(head.CacheControl), head.Metadata, aws.ToString(head.ETag), first)
			}
			m, err := journalStore.Get(context.Background(), storage.MustParseLocation(job.ManifestLocation(journal, out["id"].(string), time.Now())), 1<<20)
			if err != nil || !bytes.Contains(m, []byte(`"status": "SUCCESS"`)) {
				t.Errorf("manifest on S3: %v %s", err, m)
			}
			// The journal shares the bucket but is out of reach of requests.
			hostile := f.send(t, map[string]any{"source": "s3://uploads/u/photo.jpg", "outputs": []any{map[string]any{
				"key": "s3://renders/_renderfarm/jobs/" + time.Now().UTC().Format("2006/01/02") + "/" + out["id"].(string) + ".json", "width": 16}}})
			if hostile["state"] != "FAILURE" || !strings.Contains(fmt.Sprint(hostile["exc_message"]), "reserved for the job journal") {
				t.Errorf("an output over a manifest: %v", hostile)
			}
			if again, _ := journalStore.Get(context.Background(), storage.MustParseLocation(job.ManifestLocation(journal, out["id"].(string), time.Now())), 1<<20); !bytes.Equal(again, m) {
				t.Errorf("the manifest changed:\n%s", again)
			}
			// A bucket that is not allowed fails before any request.
			out = f.send(t, map[string]any{"source": "s3://uploads/u/photo.jpg", "recipe": "default", "dest": "s3://elsewhere/x/"})
			if out["state"] != "FAILURE" || !strings.Contains(fmt.Sprint(out["exc_message"]), "forbidden") {
				t.Errorf("disallowed bucket: %v", out)
			}
			// A bucket that is allowed but does not exist is permanent too.
			out = f.send(t, map[string]any{"source": "s3://ghost/u/photo.jpg", "recipe": "default", "dest": "s3://renders/g/"})
			if out["state"] != "FAILURE" || !strings.Contains(fmt.Sprint(out["exc_message"]), "not_found") {
				t.Errorf("missing bucket: %v", out)
			}
			// A missing key is permanent.
			out = f.send(t, map[string]any{"source": "s3://uploads/u/missing.jpg", "recipe": "default", "dest": "s3://renders/m/"})
			if out["state"] != "FAILURE" || !strings.Contains(fmt.Sprint(out["exc_message"]), "not_found") {
				t.Errorf("missing key: %v", out)
			}
		})
	}
}

// The README's render example runs unchanged against the farm.
func TestRenderExample(t *testing.T) {
	f := startFarm(t)
	src := strings.TrimPrefix(f.copyTestdata(t, "photo.jpg"), "file://")
	bad := strings.TrimPrefix(f.copyTestdata(t, "truncated.jpg"), "file://")
	out, err := exec.Command("/usr/bin/python3", "../../examples/python/render_photos.py", f.url, filepath.Join(f.root, "out"), src, bad).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"photo-jpg/thumb.jpg", "200x200", "photo-jpg/large.jpg", "FAILED RenderError: corrupt_image", "2 sources, 1 failed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("example output lacks %q:\n%s", want, out)
		}
	}
}

// The runner refuses a jobs' store through which requests could reach its
// journal, and a journal with no store of its own.
func TestNewKeepsTheJournalApart(t *testing.T) {
	root := t.TempDir()
	engine, err := render.New(render.Config{Limits: render.DefaultLimits(), Slots: 1, VipsThreads: 1, MemoryBudget: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(cfg storage.Config) *storage.Store {
		s, err := storage.New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	journalStore := mk(storage.Config{})
	for _, tc := range []struct {
		name    string
		store   *storage.Store
		journal string
		js      *storage.Store
		ok      bool
	}{
		{"journal inside the file root", mk(storage.Config{FileRoots: []string{root}}), "file://" + root + "/_jobs/", journalStore, false},
		{"file root inside the journal", mk(storage.Config{FileRoots: []string{root}}), "file://" + filepath.Dir(root) + "/", journalStore, false},
		{"carved out", mk(storage.Config{FileRoots: []string{root}, Reserved: []string{"file://" + root + "/_jobs/"}}), "file://" + root + "/_jobs/", journalStore, true},
		{"outside the roots", mk(storage.Config{FileRoots: []string{root}}), "file://" + t.TempDir() + "/", journalStore, true},
		{"any bucket", mk(storage.Config{}), "s3://media/_renderfarm/jobs/", journalStore, false},
		{"reserved in the bucket", mk(storage.Config{Reserved: []string{"s3://media/_renderfarm/"}}), "s3://media/_renderfarm/jobs/", journalStore, true},
		{"bucket not allowed", mk(storage.Config{AllowedBuckets: []string{"renders"}}), "s3://media/_renderfarm/jobs/", journalStore, true},
		{"no journal store", mk(storage.Config{AllowedBuckets: []string{"renders"}}), "s3://media/_renderfarm/jobs/", nil, false},
		{"not a prefix", mk(storage.Config{AllowedBuckets: []string{"renders"}}), "s3://media/_renderfarm/jobs", journalStore, false},
	} {
		_, err := New(Config{Engine: engine, Store: tc.store, JournalStore: tc.js, Journal: tc.journal})
		if (err == nil) != tc.ok {
			t.Errorf("%s: New = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
