package worker

import (
	"context"
	"fmt"
	"github.com/renderfarm/renderfarm/broker/celery"
	"sync"
	"time"
)

// Worker is one Celery-compatible worker: a consumer, a heartbeat, an event
// sender and a control server over one broker connection.
type Worker struct {
	rt        *deps
	consumer  *consumer
	heartbeat *heartbeat
	control   *controlServer

	shutdownOnce sync.Once
	requested    chan struct{} // closed by remote control's shutdown
}

// New assembles a worker; nothing runs until Run.
func New(conn Broker, reg *Registry, cfg Config) (*Worker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	revoked, err := openRevoked(cfg.RevokedFile)
	if err != nil {
		return nil, err
	}
	st := newState(revoked)
	results := cfg.Results
	if results == nil {
		results = RPCBackend{Conn: conn}
	}
	rt := &deps{cfg: cfg, conn: conn, reg: reg, st: st, results: results,
		log: cfg.Logger.With("worker", cfg.Hostname)}
	for _, q := range cfg.Queues {
		if cfg.Starts != nil && q.Quorum && q.DeliveryLimit > 0 && q.DeliveryLimit < BackstopFactor*cfg.MaxStarts {
			rt.log.Warn("the quorum queue's x-delivery-limit is low for the start limit: RabbitMQ may dead-letter, without a FAILURE record, tasks that were only prefetched by workers a poison task killed",
				"queue", q.Name, "delivery_limit", q.DeliveryLimit, "max_starts", cfg.MaxStarts, "want_at_least", BackstopFactor*cfg.MaxStarts)
		}
	}
	rt.events = newEventSender(conn, cfg.Hostname, st, cfg.Events, rt.log)
	rt.metrics = newWorkerMetrics(cfg.Registry, st, cfg.Concurrency, reg.Names())
	w := &Worker{rt: rt, requested: make(chan struct{})}
	w.consumer = newConsumer(rt)
	w.heartbeat = newHeartbeat(rt.events, cfg.Version)
	w.control = newControlServer(rt, w.heartbeat, w.consumer, w.requestShutdown)
	return w, nil
}

func (w *Worker) requestShutdown() { w.shutdownOnce.Do(func() { close(w.requested) }) }

// Hostname is the worker's Celery node name.
func (w *Worker) Hostname() string { return w.rt.cfg.Hostname }

// Run declares the topology, starts every duty and serves until ctx ends
// or remote control asks for a shutdown; then it shuts down warm: no new
// work, running tasks get ShutdownGrace to finish. Cancel coldCtx (a second
// signal) to cut the grace short.
func (w *Worker) Run(ctx, coldCtx context.Context) error {
	rt := w.rt
	if err := rt.conn.Declare(ctx, celery.DeadLetterTopology(rt.cfg.DeadLetterExchange)); err != nil {
		return fmt.Errorf("declaring the dead-letter exchange: %w", err)
	}
	if err := rt.conn.Declare(ctx, celery.EventTopology()); err != nil {
		return fmt.Errorf("declaring the event exchange: %w", err)
	}
	for _, q := range rt.cfg.Queues {
		if err := rt.conn.Declare(ctx, q.Topology(rt.cfg.DeadLetterExchange)); err != nil {
			return fmt.Errorf("declaring queue %s: %w", q.Name, err)
		}
	}
	rt.events.Start()
	if err := w.control.Start(ctx); err != nil {
		w.stopEvents()
		return err
	}
	w.heartbeat.Start()
	if err := w.consumer.Start(ctx); err != nil {
		w.shutdown(coldCtx)
		return err
	}
	rt.log.Info("worker ready", "queues", len(rt.cfg.Queues), "concurrency", rt.cfg.Concurrency, "prefetch", rt.cfg.Prefetch)
	select {
	case <-ctx.Done():
	case <-w.requested:
	}
	w.shutdown(coldCtx)
	return nil
}

// Pause stops taking new work (SIGTSTP); Resume takes it again.
func (w *Worker) Pause() {
	w.rt.log.Info("paused: not taking new tasks")
	w.consumer.Pause()
}

func (w *Worker) Resume(ctx context.Context) error {
	w.rt.log.Info("resumed")
	return w.consumer.Start(ctx)
}

func (w *Worker) shutdown(coldCtx context.Context) {
	rt := w.rt
	rt.log.Info("warm shutdown: finishing running tasks", "grace", rt.cfg.ShutdownGrace)
	grace, cancel := context.WithTimeout(coldCtx, rt.cfg.ShutdownGrace)
	defer cancel()
	w.consumer.Shutdown(grace)
	short, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	w.control.Shutdown(short)
	w.heartbeat.Shutdown(short)
	w.stopEvents()
	if err := rt.st.revoked.close(); err != nil {
		rt.log.Warn("closing the revoked list", "err", err)
	}
	rt.log.Info("worker stopped")
}

func (w *Worker) stopEvents() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w.rt.events.Shutdown(ctx)
}
