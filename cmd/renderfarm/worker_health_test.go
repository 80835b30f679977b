package main

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/testenv"
)

// A worker serves its probes and metrics on --metrics-listen: /readyz is
// 200 once the broker is reached and 503 from the first shutdown signal,
// while running tasks drain; /metrics names the build and shows the render
// engine's budget and libvips' memory.
func TestWorkerHealthAndMetrics(t *testing.T) {
	amqpURL := testenv.RabbitMQ(t)
	w := testenv.Worker(t, amqpURL, nil, "--metrics-listen", "127.0.0.1:0", "--concurrency", "1", "--events=false",
		"--test-tasks", "--shutdown-grace", "20s", "--memory-budget", "1GiB", "--journal", "file://"+t.TempDir()+"/")
	get := probes(t, w)
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, _ := get("/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz not 200 within 30s of the start")
		}
	}
	_, body := get("/metrics")
	for _, want := range []string{
		`renderfarm_build_info{goversion="go1.`,
		`libvips="8.`,
		"renderfarm_render_memory_budget_bytes 1.073741824e+09",
		"renderfarm_render_slots ",
		"renderfarm_render_vips_tracked_memory_bytes ",
		"renderfarm_broker_connected 1",
		"renderfarm_worker_slots 1",
		`renderfarm_broker_publishes_total{result="confirmed"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// A task that sleeps keeps the worker draining after SIGTERM.
	done := make(chan map[string]any, 1)
	go func() { done <- testenv.SendTask(t, amqpURL, "renderfarm.test.sleep", []any{4}, nil, 60) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, body := get("/metrics"); strings.Contains(body, "renderfarm_worker_slots_busy 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sleep task did not start within 30s")
		}
	}
	w.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, _ := get("/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after SIGTERM", code)
		}
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz during the drain: %d", code)
	}
	if out := <-done; out["state"] != "SUCCESS" {
		t.Errorf("the running task did not finish in the drain: %v", out)
	}
}
