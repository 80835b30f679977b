package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/renderfarm/renderfarm/storage"
	"github.com/urfave/cli/v2"
)

// The flags more than one command takes are defined here, once, so a flag
// means the same thing and reads the same variable in every command.

func brokerFlag() cli.Flag {
	return &cli.StringFlag{Name: "broker", EnvVars: []string{"RENDERFARM_BROKER_URL"}, Value: "amqp://guest:guest@127.0.0.1:5672//",
		Usage: "AMQP URL of RabbitMQ, with its vhost; for a cluster, its nodes' URLs separated by ';' as in Celery's broker_url (amqp://u:p@mq1//;amqp://u:p@mq2//), tried in turn"}
}

// dialError is how a command reports that it could not connect to the
// broker: a --broker that cannot be read is a usage error.
func dialError(err error) error {
	if errors.Is(err, broker.ErrBadURL) {
		return cli.Exit("--broker: "+err.Error(), exitUsage)
	}
	return fmt.Errorf("connecting to the broker: %w", err)
}

// checkBroker refuses a --broker list that cannot be used before a
// command does work it would then abandon: a usage error comes first.
func checkBroker(c *cli.Context) error {
	if _, err := broker.ParseURLs(c.String("broker")); err != nil {
		return dialError(err)
	}
	return nil
}

func logLevelFlag() cli.Flag {
	return &cli.StringFlag{Name: "log-level", EnvVars: []string{"RENDERFARM_LOG_LEVEL"}, Value: "info", Usage: "debug, info, warn or error"}
}

// queueFlag is the one queue a publishing command (web, replay) sends to,
// in the syntax of the worker's --queues.
func queueFlag() cli.Flag {
	return &cli.StringFlag{Name: "queue", EnvVars: []string{"RENDERFARM_QUEUE"}, Value: "celery",
		Usage: "the workers' queue, NAME[:EXCHANGE[:ROUTING_KEY]] as in their --queues"}
}

// queuesFlag is the queues a worker consumes, and the ones the fleet
// commands (status, queues, scale) look at: the same syntax and variable,
// so an operator sets RENDERFARM_QUEUES once for both.
func queuesFlag() cli.Flag {
	return &cli.StringFlag{Name: "queues", Aliases: []string{"Q"}, EnvVars: []string{"RENDERFARM_QUEUES"}, Value: "celery",
		Usage: "comma-separated queues, each NAME[:EXCHANGE[:ROUTING_KEY]] (exchange and key default to NAME)"}
}

// queueFlags say how the render queues are declared. The workers and the
// web tier both declare them, and RabbitMQ refuses a declaration that
// differs from the first, so both commands take the same flags.
func queueFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "quorum", EnvVars: []string{"RENDERFARM_QUORUM"}, Usage: "declare the queues as quorum queues (workers, web tier and Celery clients must agree)"},
		&cli.IntFlag{Name: "delivery-limit", EnvVars: []string{"RENDERFARM_DELIVERY_LIMIT"}, Value: 20,
			Usage: "quorum queues' x-delivery-limit: RabbitMQ's backstop, which counts every delivery, started or not; keep it at least 4 x the workers' --max-starts"},
		deadLetterFlag(),
	}
}

// deadLetterFlag names the dead-letter exchange, and its queue of the same
// name (celery.DeadLetterTopology), that workers send malformed and poison
// messages to and `renderfarm dlq` reads.
func deadLetterFlag() cli.Flag {
	return &cli.StringFlag{Name: "dead-letter-exchange", EnvVars: []string{"RENDERFARM_DEAD_LETTER_EXCHANGE"}, Value: celery.DefaultDeadLetter, Usage: "where malformed and poison messages go"}
}

// queues reads the queue flag name (--queues or --queue) with the
// declaration flags applied; one says the flag names a single queue.
func queues(c *cli.Context, name string, one bool) ([]celery.Queue, error) {
	qs, err := celery.ParseQueues(c.String(name))
	if err == nil && one && len(qs) != 1 {
		err = fmt.Errorf("want one NAME[:EXCHANGE[:ROUTING_KEY]], not %d", len(qs))
	}
	if err != nil {
		return nil, cli.Exit(fmt.Sprintf("--%s: %v", name, err), 2)
	}
	for i := range qs {
		qs[i].Quorum, qs[i].DeliveryLimit = c.Bool("quorum"), c.Int("delivery-limit")
	}
	return qs, nil
}

// storageFlags are where jobs may read and write and where manifests go.
// The worker, the web tier and the CLI take the same ones: the web tier
// validates requests against the same guards the workers apply.
func storageFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "file-root", EnvVars: []string{"RENDERFARM_FILE_ROOT"}, Usage: "colon-separated directories file:// sources and outputs must be in (default: none, file:// refused)"},
		&cli.StringFlag{Name: "journal", EnvVars: []string{"RENDERFARM_JOURNAL"}, Value: "file:///var/lib/renderfarm/jobs/", Usage: "location prefix for job manifests, e.g. s3://bucket/_renderfarm/jobs/; out of reach of requests"},
		&cli.StringFlag{Name: "buckets", EnvVars: []string{"RENDERFARM_BUCKETS"}, Usage: "comma-separated S3 buckets jobs may use (default: any)"},
		&cli.BoolFlag{Name: "s3-path-style", EnvVars: []string{"RENDERFARM_S3_PATH_STYLE"}, Usage: "path-style S3 URLs, for S3-compatible servers"},
		&cli.StringFlag{Name: "http-allow", EnvVars: []string{"RENDERFARM_HTTP_ALLOW"}, Usage: "comma-separated hosts or CIDRs exempt from the SSRF guard for https:// sources"},
	}
}

// openStores builds the jobs' store and the journal's. The journal is
// reserved in the jobs' store, so no request can read or write it, even
// where it lies inside a --file-root or a bucket requests may use (it is
// carved out of them); only the journal's own store, rooted at the
// journal, writes there. Both count their failures in m (nil: not
// counted). create makes a local journal's directory, for the commands that
// write manifests.
func openStores(c *cli.Context, log *slog.Logger, m *storage.Metrics, create bool) (store, journal *storage.Store, err error) {
	jp, err := storage.ParsePrefix(c.String("journal"))
	if err != nil {
		return nil, nil, cli.Exit(fmt.Sprintf("--journal: %v", err), 2)
	}
	scfg := storage.Config{S3PathStyle: c.Bool("s3-path-style"), Logger: log, Metrics: m}
	if jp.Scheme == storage.SchemeFile && create {
		// Made before the stores, so its path resolves now and a request
		// can never put a file where one of its folders must go.
		if err := os.MkdirAll(jp.Path, 0o755); err != nil {
			return nil, nil, fmt.Errorf("--journal: %w", err)
		}
	}
	// --buckets limits what requests name; the journal is the operator's
	// own setting and may live in a bucket no request should touch.
	jcfg := scfg
	if jp.Scheme == storage.SchemeFile {
		jcfg.FileRoots = []string{jp.Path}
	}
	if journal, err = storage.New(c.Context, jcfg); err != nil {
		return nil, nil, fmt.Errorf("--journal: %w", err)
	}
	scfg.FileRoots = splitPaths(c.String("file-root"))
	scfg.AllowedBuckets = splitList(c.String("buckets"))
	scfg.HTTPAllow = splitList(c.String("http-allow"))
	scfg.Reserved = []string{jp.String()}
	if store, err = storage.New(c.Context, scfg); err != nil {
		return nil, nil, err
	}
	return store, journal, nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func splitPaths(s string) []string {
	if s == "" {
		return nil
	}
	return filepath.SplitList(s)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func hasScheme(s string) bool { return strings.Contains(s, "://") }

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
