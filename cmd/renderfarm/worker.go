package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/job/runner"
	"github.com/renderfarm/renderfarm/metrics"
	"github.com/renderfarm/renderfarm/render"
	"github.com/renderfarm/renderfarm/storage"
	"github.com/renderfarm/renderfarm/worker"
	"github.com/urfave/cli/v2"
)

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "run a Celery-compatible worker on RabbitMQ",
		Description: `Consumes Celery task messages and runs them. Python apps send work with their
stock client; celery inspect/control/events and Flower see this worker.
   renderfarm worker --queues celery,renders --concurrency 4
SIGTERM or SIGINT: warm shutdown (finish running tasks within --shutdown-grace,
hand back the rest); a second signal: cold shutdown. SIGTSTP stops taking new
work; SIGCONT resumes. On EC2, --ec2-lifecycle drains the same way when the
instance is being retired (a spot notice, an auto-scaling termination):
   renderfarm worker --ec2-lifecycle --lifecycle-hook drain-renders`,
		Flags: append(append(append(append(engineFlags(), storageFlags()...), queueFlags()...), lifecycleFlags()...),
			brokerFlag(),
			logLevelFlag(),
			queuesFlag(),
			&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, EnvVars: []string{"RENDERFARM_CONCURRENCY"}, Usage: "task slots (default: the render slots renderfarm tune reports)"},
			&cli.StringFlag{Name: "hostname", Aliases: []string{"n"}, EnvVars: []string{"RENDERFARM_HOSTNAME"}, Usage: "worker node name (default renderfarm@<host>)"},
			&cli.StringFlag{Name: "result-backend", EnvVars: []string{"RENDERFARM_RESULT_BACKEND"}, Value: "rpc://", Usage: "where task states go: rpc:// or redis://[:password@]host:port/db (rediss:// for TLS), as the Celery app's result_backend"},
			&cli.DurationFlag{Name: "result-expires", EnvVars: []string{"RENDERFARM_RESULT_EXPIRES"}, Value: worker.DefaultResultExpires, Usage: "how long redis:// keeps task states (Celery's result_expires; 0: forever)"},
			&cli.StringFlag{Name: "acks", EnvVars: []string{"RENDERFARM_ACKS"}, Value: "late", Usage: "late: ack when a task finishes; early: when it starts"},
			&cli.IntFlag{Name: "prefetch", EnvVars: []string{"RENDERFARM_PREFETCH"}, Usage: "unacked deliveries per queue (default 4 x concurrency)"},
			&cli.BoolFlag{Name: "events", Aliases: []string{"E"}, EnvVars: []string{"RENDERFARM_EVENTS"}, Value: true, Usage: "send task and worker events (celery events, Flower)"},
			&cli.BoolFlag{Name: "track-started", EnvVars: []string{"RENDERFARM_TRACK_STARTED"}, Usage: "store a STARTED state when a task starts"},
			&cli.DurationFlag{Name: "shutdown-grace", EnvVars: []string{"RENDERFARM_SHUTDOWN_GRACE"}, Value: 30 * time.Second, Usage: "how long a warm shutdown waits for running tasks"},
			&cli.IntFlag{Name: "max-starts", Aliases: []string{"max-redeliveries"}, EnvVars: []string{"RENDERFARM_MAX_STARTS", "RENDERFARM_MAX_REDELIVERIES"}, Value: 5,
				Usage: "dead-letter a task whose handler started this often after its first delivery without finishing (it killed its worker each time); counted in the journal"},
			&cli.StringFlag{Name: "state-dir", EnvVars: []string{"RENDERFARM_STATE_DIR"}, Value: "/var/lib/renderfarm", Usage: "directory for the worker's persisted state (revoked task ids)"},
			&cli.StringFlag{Name: "metrics-listen", EnvVars: []string{"RENDERFARM_METRICS_LISTEN"}, Value: ":9180", Usage: "address to serve /metrics, /healthz and /readyz on (no token; \"\" turns it off)"},
			&cli.BoolFlag{Name: "test-tasks", EnvVars: []string{"RENDERFARM_TEST_TASKS"}, Hidden: true, Usage: "register renderfarm.test.* tasks"},
		),
		Action: runWorker,
	}
}

// renderJobs builds the renderfarm.render task: engine, storage, recipes,
// with their metrics on reg.
func renderJobs(c *cli.Context, t render.Tuning, hostname string, log *slog.Logger, reg prometheus.Registerer) (*runner.Runner, error) {
	engine, err := render.New(t.Config)
	if err != nil {
		return nil, err
	}
	registerEngineMetrics(reg, engine)
	recipes, err := render.LoadRecipes(c.String("recipes"))
	if err != nil {
		return nil, err
	}
	store, journal, err := openStores(c, log, storage.NewMetrics(reg), true)
	if err != nil {
		return nil, err
	}
	return runner.New(runner.Config{Engine: engine, Store: store, JournalStore: journal, Recipes: recipes,
		Journal: c.String("journal"), Hostname: hostname, Logger: log, Metrics: runner.NewMetrics(reg)})
}

func runWorker(c *cli.Context) error {
	log, err := newLogger(c.String("log-level"))
	if err != nil {
		return err
	}
	t, err := tuning(c)
	if err != nil {
		return err
	}
	cfg, closeResults, err := workerConfig(c, t, log)
	if err != nil {
		return err
	}
	defer closeResults()
	retire, err := startRetirement(c, log)
	if err != nil {
		return err
	}
	defer retire.stop()

	// First SIGINT/SIGTERM: warm shutdown; a second: cold.
	warm, stopWarm := context.WithCancel(c.Context)
	defer stopWarm()
	cold, stopCold := context.WithCancel(context.Background())
	defer stopCold()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGTSTP, syscall.SIGCONT)
	defer signal.Stop(sigs)

	// Health and metrics serve from the start: /readyz says 503 until the
	// broker is reached, and again from the first shutdown signal.
	registry := metrics.NewRegistry()
	metrics.RegisterBuildInfo(registry, version, render.VipsVersion())
	cfg.Registry = registry
	health := &workerHealth{stopping: warm}
	if addr := c.String("metrics-listen"); addr != "" {
		stopMetrics, err := serveWorkerHealth(addr, registry, health, log)
		if err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		defer stopMetrics()
	}
	conn, err := broker.Dial(warm, broker.Config{URL: c.String("broker"), Name: cfg.Hostname, Logger: log, Metrics: broker.NewMetrics(registry)})
	if err != nil {
		return dialError(err)
	}
	defer conn.Close()
	reg := worker.NewRegistry()
	worker.RegisterNoop(reg)
	if c.Bool("test-tasks") {
		worker.RegisterTestTasks(reg)
	}
	runner, err := renderJobs(c, t, cfg.Hostname, log, registry)
	if err != nil {
		return err
	}
	runner.Register(reg)
	cfg.Starts = runner.Starts()
	w, err := worker.New(conn, reg, cfg)
	if err != nil {
		return err
	}
	health.conn.Store(conn) // ready: everything the worker needs exists
	go handleSignals(sigs, w, warm, stopWarm, stopCold, log)
	return retire.run(func() error { return w.Run(warm, cold) }, stopWarm, stopCold)
}

// workerConfig reads the worker's settings from its flags; closeResults releases
// the result backend's connections.
func workerConfig(c *cli.Context, t render.Tuning, log *slog.Logger) (cfg worker.Config, closeResults func(), err error) {
	closeResults = func() {}
	cfg = worker.Config{
		Hostname:           c.String("hostname"),
		Concurrency:        c.Int("concurrency"),
		Prefetch:           c.Int("prefetch"),
		TrackStarted:       c.Bool("track-started"),
		Events:             c.Bool("events"),
		ShutdownGrace:      c.Duration("shutdown-grace"),
		MaxStarts:          c.Int("max-starts"),
		DeadLetterExchange: c.String("dead-letter-exchange"),
		Version:            version,
		BrokerURL:          c.String("broker"),
		Logger:             log,
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = t.Slots
	}
	if cfg.Hostname == "" {
		cfg.Hostname = worker.DefaultHostname()
	}
	switch c.String("acks") {
	case "late":
	case "early":
		cfg.EarlyAck = true
	default:
		return cfg, closeResults, cli.Exit("--acks must be late or early", 2)
	}
	if cfg.Queues, err = queues(c, "queues", false); err != nil {
		return cfg, closeResults, err
	}
	if dir := c.String("state-dir"); dir != "" {
		cfg.RevokedFile = filepath.Join(dir, "revoked-"+strings.ReplaceAll(cfg.Hostname, "/", "_")+".tsv")
	}
	switch rb := c.String("result-backend"); {
	case rb == "rpc://" || rb == "rpc":
	case strings.HasPrefix(rb, "redis://") || strings.HasPrefix(rb, "rediss://"):
		redisResults, err := worker.NewRedisBackend(rb, c.Duration("result-expires"))
		if err != nil {
			return cfg, closeResults, cli.Exit(fmt.Sprintf("--result-backend/--result-expires: %v", err), 2)
		}
		cfg.Results = redisResults
		closeResults = func() { redisResults.Close() }
	default:
		return cfg, closeResults, cli.Exit(fmt.Sprintf("--result-backend %q: want rpc://, redis:// or rediss://", rb), 2)
	}
	return cfg, closeResults, nil
}

// handleSignals: the first SIGINT or SIGTERM is a warm shutdown, a second
// a cold one; SIGTSTP pauses the worker and SIGCONT resumes it.
func handleSignals(sigs <-chan os.Signal, w *worker.Worker, warm context.Context, stopWarm, stopCold func(), log *slog.Logger) {
	terms := 0
	for s := range sigs {
		switch s {
		case syscall.SIGTSTP:
			w.Pause()
		case syscall.SIGCONT:
			if err := w.Resume(warm); err != nil {
				log.Error("resume failed", "err", err)
			}
		default:
			terms++
			if terms == 1 {
				log.Info("warm shutdown requested; send again for a cold shutdown", "signal", s)
				stopWarm()
			} else {
				stopCold()
			}
		}
	}
}
