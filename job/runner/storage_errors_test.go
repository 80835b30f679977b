package runner

import (
	"bytes"
	"context"
	"github.com/renderfarm/renderfarm/job"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/renderfarm/renderfarm/metrics"
	"github.com/renderfarm/renderfarm/render"
	"github.com/renderfarm/renderfarm/storage"
	"github.com/renderfarm/renderfarm/worker"
)

// A failed storage attempt is logged once at WARN with its location, error
// code and attempt number, and counted in renderfarm_storage_errors_total.
func TestStorageFailuresAreLoggedAndCounted(t *testing.T) {
	// An S3 endpoint whose server is down: nothing listens on the port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close()

	reg := metrics.NewRegistry()
	m := storage.NewMetrics(reg)
	store, err := storage.New(context.Background(), storage.Config{
		S3Endpoint: endpoint, S3Region: "us-east-1", S3PathStyle: true, Retries: 1, Metrics: m,
		S3Credentials: credentials.NewStaticCredentialsProvider("key", "secret", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	journalDir := t.TempDir()
	journal, err := storage.New(context.Background(), storage.Config{FileRoots: []string{journalDir}, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := render.New(render.Config{Limits: render.DefaultLimits(), Slots: 1, VipsThreads: 1, MemoryBudget: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r, err := New(Config{Engine: engine, Store: store, JournalStore: journal, Journal: "file://" + journalDir + "/",
		Hostname: "renderfarm@test", MaxAttempts: 5, RetryBase: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	task := &worker.Task{ID: "storage-down", Name: job.TaskName, Retries: 2,
		Kwargs: map[string]any{"source": "s3://uploads/u/1.jpg", "recipe": "gallery", "dest": "s3://renders/1/"}}
	if _, err := r.Handle(context.Background(), task); err == nil {
		t.Fatal("a render with its S3 server down succeeded")
	}

	var warns []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, "level=WARN") {
			warns = append(warns, line)
		}
	}
	if len(warns) != 1 {
		t.Fatalf("want one WARN line for the one failed attempt, got %d:\n%s", len(warns), logs.String())
	}
	for _, want := range []string{"storage operation failed", "op=get", "location=s3://uploads/u/1.jpg", "code=unavailable", "attempt=3"} {
		if !strings.Contains(warns[0], want) {
			t.Errorf("the WARN line lacks %q: %s", want, warns[0])
		}
	}
	if n := storageErrors(t, reg, "get", "s3", "unavailable"); n != 1 {
		t.Errorf("renderfarm_storage_errors_total{op=get,scheme=s3,code=unavailable} = %v, want 1", n)
	}
}

// storageErrors reads one series of renderfarm_storage_errors_total from
// what reg exposes.
func storageErrors(t *testing.T, reg *prometheus.Registry, op, scheme, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "renderfarm_storage_errors_total" {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			want := map[string]string{"op": op, "scheme": scheme, "code": code}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
