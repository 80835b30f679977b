package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/fleet"
	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/metrics"
	"github.com/renderfarm/renderfarm/render"
	"github.com/renderfarm/renderfarm/storage"
	"github.com/renderfarm/renderfarm/web"
	"github.com/urfave/cli/v2"
)

func webCommand() *cli.Command {
	return &cli.Command{
		Name:  "web",
		Usage: "serve the HTTP API that validates render requests and enqueues them",
		Description: `POST /v1/renders validates a request in the task contract and publishes it
as a renderfarm.render task with publisher confirms (202 once confirmed);
GET /v1/renders/{id} reads its state from the workers' manifests; GET / is a
status page with thumbnails. /healthz and /readyz are for the load balancer.
   renderfarm web --listen :8080 --tokens-file /etc/renderfarm/tokens \
       --journal s3://media/_renderfarm/jobs/ --buckets uploads,renders
SIGTERM or SIGINT: stop accepting, finish requests in flight within
--shutdown-grace. SIGHUP: read --tokens-file again.`,
		Flags: append(append(storageFlags(), queueFlags()...),
			brokerFlag(),
			logLevelFlag(),
			recipesFlag(),
			&cli.StringFlag{Name: "listen", EnvVars: []string{"RENDERFARM_LISTEN"}, Value: ":8080", Usage: "address to serve on"},
			&cli.StringFlag{Name: "tokens", EnvVars: []string{"RENDERFARM_API_TOKENS"}, Usage: "comma-separated API tokens (at least 16 characters each)"},
			&cli.StringFlag{Name: "tokens-file", EnvVars: []string{"RENDERFARM_API_TOKENS_FILE"}, Usage: "file of API tokens, one per line (# comments); read again on SIGHUP"},
			queueFlag(),
			&cli.Float64Flag{Name: "rate", EnvVars: []string{"RENDERFARM_API_RATE"}, Value: 50, Usage: "requests per second per token, a batch counting each item (-1: no limit)"},
			&cli.IntFlag{Name: "burst", EnvVars: []string{"RENDERFARM_API_BURST"}, Usage: "requests a token may send at once (default 2 x rate, at least --batch-max)"},
			&cli.IntFlag{Name: "auth-failures", EnvVars: []string{"RENDERFARM_API_AUTH_FAILURES"}, Value: 60, Usage: "failed authentications per minute a client address may make before it gets 429 (-1: no limit)"},
			&cli.StringFlag{Name: "trusted-proxies", EnvVars: []string{"RENDERFARM_TRUSTED_PROXIES"}, Usage: "comma-separated CIDRs of load balancers whose X-Forwarded-For names the client"},
			&cli.StringFlag{Name: "max-body", EnvVars: []string{"RENDERFARM_MAX_BODY"}, Value: "1MiB", Usage: "largest request body"},
			&cli.IntFlag{Name: "batch-max", EnvVars: []string{"RENDERFARM_BATCH_MAX"}, Value: 100, Usage: "most requests in one batch"},
			&cli.DurationFlag{Name: "request-timeout", EnvVars: []string{"RENDERFARM_REQUEST_TIMEOUT"}, Value: 10 * time.Second, Usage: "time to answer a request, the broker's confirm included"},
			&cli.DurationFlag{Name: "idempotency-window", EnvVars: []string{"RENDERFARM_IDEMPOTENCY_WINDOW"}, Value: 24 * time.Hour, Usage: "how long an Idempotency-Key is remembered"},
			&cli.DurationFlag{Name: "presign-ttl", EnvVars: []string{"RENDERFARM_PRESIGN_TTL"}, Value: 10 * time.Minute, Usage: "life of the presigned S3 links the API and status page hand out"},
			&cli.IntFlag{Name: "recent", EnvVars: []string{"RENDERFARM_RECENT"}, Value: 24, Usage: "renders on the status page"},
			&cli.BoolFlag{Name: "fleet-view", EnvVars: []string{"RENDERFARM_FLEET_VIEW"},
				Usage: "show the workers and queues on top of the status page (the broker user needs celeryev and pidbox permissions, as ops has)"},
			&cli.IntFlag{Name: "status-days", EnvVars: []string{"RENDERFARM_STATUS_DAYS"}, Value: 7, Usage: "days of manifests a status lookup searches"},
			&cli.DurationFlag{Name: "shutdown-grace", EnvVars: []string{"RENDERFARM_SHUTDOWN_GRACE"}, Value: 20 * time.Second, Usage: "how long shutdown waits for requests in flight"},
		),
		Action: runWeb,
	}
}

func runWeb(c *cli.Context) error {
	log, err := newLogger(c.String("log-level"))
	if err != nil {
		return err
	}
	tokens, err := readTokens(c.String("tokens"), c.String("tokens-file"))
	if err == nil {
		err = web.CheckTokens(tokens)
	}
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	qs, err := queues(c, "queue", true)
	if err != nil {
		return err
	}
	q := qs[0]
	maxBody, err := render.ParseBytes(c.String("max-body"))
	if err != nil {
		return cli.Exit(fmt.Sprintf("--max-body: %v", err), 2)
	}
	recipes, err := render.LoadRecipes(c.String("recipes"))
	if err != nil {
		return err
	}
	registry := metrics.NewRegistry()
	store, journalStore, err := openStores(c, log, storage.NewMetrics(registry), true)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return err
	}
	defer ln.Close() // Serve closes it too; this is for the returns before

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The tier serves from the start, answering 503 to enqueues and /readyz
	// until RabbitMQ is reachable and the queue declared, so one booted
	// during a broker outage comes right by itself. The queue is declared
	// as the workers declare it: tasks sent before any worker started are
	// queued, and a setting that differs from theirs (quorum, delivery
	// limit) stops the tier rather than failing every publish.
	conn, err := broker.Open(broker.Config{URL: c.String("broker"), Name: "renderfarm web", Logger: log,
		Topology: q.Topology(c.String("dead-letter-exchange"))})
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	defer conn.Close()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	go func() {
		if err := conn.WaitConnected(ctx); err != nil && ctx.Err() == nil {
			fail(fmt.Errorf("the web tier cannot use the broker: %w", err))
		}
	}()
	// With --fleet-view the status page shows the fleet on top: the
	// workers (their heartbeats, gathered from now on, and stats), this
	// tier's queue and the dead letters. Off by default: it needs the
	// broker permissions of remote control (the pidbox, which can also
	// shut workers down), which a least-privileged web user lacks.
	var view *fleet.View
	if c.Bool("fleet-view") {
		view = fleet.NewView(conn, []string{q.Name}, c.String("dead-letter-exchange"), 500*time.Millisecond)
		go func() {
			if err := view.Start(ctx); err != nil && ctx.Err() == nil {
				log.Warn("web: not listening to the workers' heartbeats; the status page shows them from stats alone", "err", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			view.Stop(sctx)
		}()
	}
	exchange, key := q.Route()
	srv, err := web.New(web.Config{
		Fleet:  fleetView(view),
		Broker: conn, Exchange: exchange, RoutingKey: key,
		Store: store, Recipes: recipes,
		Journal:       &job.Journal{Store: journalStore, Prefix: c.String("journal"), Days: c.Int("status-days")},
		Tokens:        tokens,
		RatePerSecond: c.Float64("rate"), Burst: c.Int("burst"),
		AuthFailures: c.Int("auth-failures"), TrustedProxies: splitList(c.String("trusted-proxies")),
		MaxBody: maxBody, BatchMax: c.Int("batch-max"),
		RequestTimeout: c.Duration("request-timeout"), IdempotencyWindow: c.Duration("idempotency-window"),
		RecentRenders: c.Int("recent"), PresignTTL: c.Duration("presign-ttl"),
		Registry: registry, Logger: log,
	})
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if path := c.String("tokens-file"); path != "" {
		go reloadTokensOnHUP(ctx, srv, c.String("tokens"), path, log)
	}
	log.Info("web: serving", "addr", ln.Addr().String(), "queue", q.Name)
	err = srv.Serve(ctx, ln, c.Duration("shutdown-grace"))
	if cause := context.Cause(ctx); err == nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	return err
}

// readTokens merges --tokens and --tokens-file.
func readTokens(list, path string) ([]string, error) {
	tokens := splitList(list)
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--tokens-file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
				tokens = append(tokens, line)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--tokens-file: %w", err)
		}
	}
	if len(tokens) == 0 {
		return nil, errors.New("give API tokens with --tokens or --tokens-file")
	}
	return tokens, nil
}

// reloadTokensOnHUP lets ops rotate tokens without dropping connections.
// A file that cannot be read, or is empty, keeps the tokens in force.
func reloadTokensOnHUP(ctx context.Context, srv *web.Server, list, path string, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		tokens, err := readTokens(list, path)
		if err == nil {
			err = srv.SetTokens(tokens)
		}
		if err != nil {
			log.Error("web: tokens not reloaded; the old ones stay", "err", err)
			continue
		}
		log.Info("web: tokens reloaded", "count", len(tokens))
	}
}

// fleetView keeps a nil *fleet.View a nil interface, which the page
// reads as "no fleet section".
func fleetView(v *fleet.View) web.FleetView {
	if v == nil {
		return nil
	}
	return v
}
