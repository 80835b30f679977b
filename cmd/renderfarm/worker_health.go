package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/metrics"
	"github.com/renderfarm/renderfarm/render"
)

// workerHealth answers a worker's probes. /healthz is 200 while the
// process serves at all; /readyz is 200 only while the broker connection
// is up and no shutdown has begun, so a load balancer or an orchestrator
// stops counting on a worker that is draining or cut off.
type workerHealth struct {
	conn     atomic.Pointer[broker.Conn]
	stopping context.Context // ends at the first shutdown signal
}

func (h *workerHealth) ready(ctx context.Context) error {
	if h.stopping.Err() != nil {
		return errors.New("shutting down")
	}
	conn := h.conn.Load()
	if conn == nil {
		return errors.New("connecting to the broker")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return conn.Healthy(ctx)
}

// serveWorkerHealth serves /metrics, /healthz and /readyz on addr until
// the returned stop is called. The listener is bound before returning, so
// a taken port fails the start.
func serveWorkerHealth(addr string, reg *prometheus.Registry, h *workerHealth, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := h.ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// registerEngineMetrics shows the render engine's admission and libvips'
// own memory accounting.
func registerEngineMetrics(reg prometheus.Registerer, e *render.Engine) {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metrics.Namespace, Subsystem: "render", Name: name, Help: help}, f)
	}
	reg.MustRegister(
		gauge("slots", "Renders this worker runs at once.", func() float64 { return float64(e.Usage().Slots) }),
		gauge("slots_busy", "Renders running now.", func() float64 { return float64(e.Usage().Running) }),
		gauge("memory_budget_bytes", "Memory all running renders may hold together.", func() float64 { return float64(e.Usage().Budget) }),
		gauge("memory_reserved_bytes", "Memory the running renders' estimates hold against the budget.", func() float64 { return float64(e.Usage().Reserved) }),
		gauge("vips_tracked_memory_bytes", "Memory libvips itself has allocated and not freed.", func() float64 { b, _ := render.VipsMemory(); return float64(b) }),
		gauge("vips_allocations", "Live allocations libvips tracks.", func() float64 { _, n := render.VipsMemory(); return float64(n) }),
	)
}
