package worker

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/renderfarm/renderfarm/broker/celery"
)

// Config is a worker's settings.
type Config struct {
	// Hostname names the worker in events and remote control, as Celery
	// does: "renderfarm@<host>" by default.
	Hostname    string
	Queues      []celery.Queue
	Concurrency int // task slots
	// Prefetch is the per-consumer QoS: how many unacknowledged deliveries
	// the broker hands this worker per queue. Default 4 x Concurrency, as
	// Celery's worker_prefetch_multiplier.
	Prefetch int
	// EarlyAck acknowledges a delivery when its task starts instead of when
	// it finishes (Celery's acks_late=False). A task that crashes the worker
	// is then lost; the default, late ack, redelivers it.
	EarlyAck bool
	// TrackStarted stores a STARTED state when a task starts, as Celery's
	// task_track_started.
	TrackStarted bool
	// Events: send task and worker events from the start (celery -E);
	// `celery control enable_events` turns them on later either way.
	Events bool
	// ShutdownGrace is how long a warm shutdown waits for running tasks.
	ShutdownGrace time.Duration
	// MaxStarts dead-letters a message whose handler has started this many
	// times after its first delivery without finishing (each start killed
	// its worker), so one poison message cannot crash worker after worker:
	// it kills MaxStarts+1, since first starts are not recorded (see
	// priorStarts). Messages that were only prefetched by a worker that
	// died are not charged. Without a Starts
	// ledger (or with EarlyAck) deliveries are counted instead, which does
	// charge them.
	MaxStarts int
	// Starts records handler starts where every worker reads them (the
	// job journal, in renderfarm worker).
	Starts StartLedger
	// RevokedFile persists revoked task ids across restarts ("" keeps them
	// in memory only).
	RevokedFile string
	// DeadLetterExchange receives malformed and poison messages, with the
	// reason in their headers.
	DeadLetterExchange string
	// Results stores task states; nil uses the rpc:// backend over the
	// worker's broker connection.
	Results ResultBackend
	Version string
	// BrokerURL is the AMQP URL the worker's connection uses; celery
	// inspect stats reports its host, port and vhost (never the password).
	// A connection that names its node (*broker.Conn, which may be on
	// any node of a cluster) is asked instead.
	BrokerURL string
	// Registry gets the worker's metrics (tasks by outcome, queue wait,
	// slots, redeliveries, dead letters); nil: none.
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// How long the worker waits on the broker outside a task's own context.
const (
	// publishWait bounds a publish that must not be lost (a result, a
	// retry, a dead-letter record, an eta task parked): longer than a
	// reconnect, so a short outage delays it rather than drops it.
	publishWait = 30 * time.Second
	// quickWait bounds what something else covers for if it fails: a
	// control reply (the client times out and asks again), handing a
	// delivery back (the broker redelivers it anyway).
	quickWait = 10 * time.Second
)

const (
	defaultGrace     = 30 * time.Second
	defaultMaxStarts = 5
	// BackstopFactor: a quorum queue's x-delivery-limit, which RabbitMQ
	// enforces on every delivery, started or not, should be at least this
	// many times MaxStarts, so that the broker never dead-letters (without
	// a FAILURE record) a message the start count would still let run.
	BackstopFactor = 4
)

// DefaultHostname is Celery's worker naming: name@host.
func DefaultHostname() string {
	h, err := os.Hostname()
	if err != nil {
		h = "localhost"
	}
	return "renderfarm@" + h
}

func (c Config) withDefaults() (Config, error) {
	if c.Hostname == "" {
		c.Hostname = DefaultHostname()
	}
	if len(c.Queues) == 0 {
		c.Queues = []celery.Queue{{Name: "celery"}}
	}
	for i := range c.Queues {
		if c.Queues[i].Name == "" {
			return c, fmt.Errorf("worker: queue %d has no name", i)
		}
		c.Queues[i] = c.Queues[i].WithDefaults()
	}
	if c.Concurrency < 1 {
		c.Concurrency = 1
	}
	if c.Prefetch < 1 {
		c.Prefetch = 4 * c.Concurrency
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = defaultGrace
	}
	if c.MaxStarts <= 0 {
		c.MaxStarts = defaultMaxStarts
	}
	if c.DeadLetterExchange == "" {
		c.DeadLetterExchange = celery.DefaultDeadLetter
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
