package runner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/renderfarm/renderfarm/job"
)

// After real tasks, the series an operator scrapes say what happened: one
// success and one permanent failure, by outcome; every stage timed; bytes
// by scheme; the slots; the dead letter; the broker's confirms; and the
// queue wait of a task that carried its publish time.
func TestMetricsAfterRealTasks(t *testing.T) {
	f := startFarm(t)
	src := f.copyTestdata(t, "photo.jpg")
	dest := "file://" + f.root + "/renders/"
	if out := f.send(t, map[string]any{"source": src, "recipe": "default", "dest": dest + "a/"}); out["state"] != "SUCCESS" {
		t.Fatalf("render: %v", out)
	}
	if out := f.send(t, map[string]any{"source": f.copyTestdata(t, "truncated.jpg"), "recipe": "default", "dest": dest + "b/"}); out["state"] != "FAILURE" {
		t.Fatalf("bad render: %v", out)
	}
	// One through job.Enqueue, which stamps the publish time.
	req, err := job.ParseRequest([]byte(`{"source":"` + src + `","recipe":"default","dest":"` + dest + `c/"}`))
	if err != nil {
		t.Fatal(err)
	}
	id, err := job.Enqueue(context.Background(), f.conn.Publish, "celery", "celery", req)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, func() bool {
		_, err := os.Stat(strings.TrimPrefix(job.ManifestLocation("file://"+f.journal+"/", id, time.Now()), "file://"))
		return err == nil
	})

	photo, _ := os.ReadFile(filepath.Join(f.root, "uploads", "photo.jpg"))
	bad, _ := os.ReadFile(filepath.Join(f.root, "uploads", "truncated.jpg"))
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"succeeded", metric(t, f, "renderfarm_tasks_total", "succeeded", "renderfarm.render"), 2},
		{"failed", metric(t, f, "renderfarm_tasks_total", "failed", "renderfarm.render"), 1},
		{"source bytes", metric(t, f, "renderfarm_task_source_read_bytes_total", "file"), float64(2*len(photo) + len(bad))},
		{"dead-lettered", metric(t, f, "renderfarm_worker_dead_lettered_total", "task_failed"), 1},
		{"starts unrecorded", metric(t, f, "renderfarm_worker_starts_unrecorded_total"), 0},
		{"slots", metric(t, f, "renderfarm_worker_slots"), 2},
		{"slots busy", metric(t, f, "renderfarm_worker_slots_busy"), 0},
		{"reconnects", metric(t, f, "renderfarm_broker_reconnects_total"), 0},
		{"connected", metric(t, f, "renderfarm_broker_connected"), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if n := metric(t, f, "renderfarm_task_output_written_bytes_total", "file"); n < 1000 {
		t.Errorf("output bytes written: %v", n)
	}
	if n := metric(t, f, "renderfarm_broker_publishes_total", "confirmed"); n < 3 {
		t.Errorf("confirmed publishes: %v, want the results and the dead letter at least", n)
	}
	// Histograms: every stage of the two successful renders, the failed
	// one's fetch, queue and manifest; one queue wait (the stamped task).
	counts := histogramCounts(t, f)
	for stage, atLeast := range map[string]uint64{"fetch": 3, "queue": 2, "render": 2, "upload": 2, "manifest": 3} {
		if got := counts["renderfarm_task_stage_duration_seconds/"+stage]; got < atLeast {
			t.Errorf("stage %s observed %d times, want at least %d", stage, got, atLeast)
		}
	}
	if got := counts["renderfarm_task_queue_wait_seconds/"]; got != 1 {
		t.Errorf("queue wait observed %d times, want 1 (only the task with a publish time)", got)
	}
	if got := counts["renderfarm_task_duration_seconds/renderfarm.render"]; got != 3 {
		t.Errorf("task duration observed %d times, want 3", got)
	}
	// The exposition itself, names, help and labels, as Prometheus reads it.
	want := `
# HELP renderfarm_tasks_total Tasks finished, by task name and outcome: succeeded, failed, retried, revoked, rejected (unknown task), dead_lettered (malformed, or over the start or delivery limit).
# TYPE renderfarm_tasks_total counter
renderfarm_tasks_total{outcome="dead_lettered",task="renderfarm.render"} 0
renderfarm_tasks_total{outcome="failed",task="renderfarm.render"} 1
renderfarm_tasks_total{outcome="retried",task="renderfarm.render"} 0
renderfarm_tasks_total{outcome="revoked",task="renderfarm.render"} 0
renderfarm_tasks_total{outcome="succeeded",task="renderfarm.render"} 2
`
	if err := testutil.GatherAndCompare(f.metrics, strings.NewReader(want), "renderfarm_tasks_total"); err != nil {
		t.Error(err)
	}
}

// metric finds the one series of name with these label values (in the
// order of their label names) in the
// farm's registry.
func metric(t *testing.T, f *farm, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := f.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for i, l := range m.GetLabel() {
				if l.GetValue() != labels[i] {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// histogramCounts is the sample count of every histogram series, keyed
// NAME/LABELVALUE (empty when the histogram has no label).
func histogramCounts(t *testing.T, f *farm) map[string]uint64 {
	t.Helper()
	mfs, err := f.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.Histogram == nil {
				continue
			}
			v := ""
			if len(m.GetLabel()) > 0 {
				v = m.GetLabel()[0].GetValue()
			}
			out[mf.GetName()+"/"+v] = m.Histogram.GetSampleCount()
		}
	}
	return out
}

func waitFor(t *testing.T, within time.Duration, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v", within)
		}
	}
}
