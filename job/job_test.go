package job

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
}

func startFarm(t *testing.T) *farm {
	t.Helper()
	f := &farm{url: testenv.RabbitMQ(t), root: t.TempDir(), journal: t.TempDir()}
	ctx := context.Background()
	conn, err := broker.Dial(ctx, broker.Config{URL: f.url})
	if err != nil {
		t.Fatal(err)
	}
	f.conn = conn
	engine, err := render.New(render.Config{Limits: render.DefaultLimits(), Slots: 2, VipsThreads: 1, MemoryBudget: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.New(ctx, storage.Config{FileRoots: []string{f.root}})
	if err != nil {
		t.Fatal(err)
	}
	journalStore, err := storage.New(ctx, storage.Config{FileRoots: []string{f.journal}})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := New(Config{Engine: engine, Store: store, JournalStore: journalStore, Journal: "file://" + f.journal + "/",
		Hostname: "renderfarm@test", MaxAttempts: 2, RetryBase: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	reg := worker.NewRegistry()
	runner.Register(reg)
	w, err := worker.New(conn, reg, worker.Config{Hostname: "renderfarm@test", Concurrency: 2, ShutdownGrace: 5 * time.Second})
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
	return f
}

// send submits a request with the stock Python client, as an app would.
func (f *farm) send(t *testing.T, request any) map[string]any {
	t.Helper()
	kwargs, _ := json.Marshal(request)
	cmd := exec.Command("/usr/bin/python3", "../worker/testdata/celery_client.py", f.url, "send", TaskName, "[]", string(kwargs), "{}", "60")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python client: %v\n%s", err, stderr.String())
	}
	var out map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("client printed %q", stdout.String())
	}
	return out
}

func (f *farm) copyTestdata(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(f.root, "uploads", name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return "file://" + p
}

func (f *farm) manifest(t *testing.T, id string) Manifest {
	t.Helper()
	var m Manifest
	p := strings.TrimPrefix(ManifestLocation("file://"+f.journal+"/", id, time.Now()), "file://")
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
	n, err := f.conn.PurgeQueue(context.Background(), worker.DefaultDeadLetter)
	if err != nil || n != len(tests) {
		t.Errorf("dead-letter queue holds %d records (%v), want %d", n, err, len(tests))
	}
	if out := f.send(t, map[string]any{"source": f.copyTestdata(t, "photo.jpg"), "recipe": "default", "dest": dest}); out["state"] != "SUCCESS" {
		t.Errorf("render after the bad ones: %v", out)
	}
}
