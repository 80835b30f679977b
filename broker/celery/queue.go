package celery

import (
	"errors"
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/broker"
)

// DefaultDeadLetter is the exchange (and queue) malformed and poison
// messages go to.
const DefaultDeadLetter = "renderfarm.dead"

// Queue is a task queue as a Celery app's task_queues names it (kombu's
// Queue(name, Exchange(exchange), routing_key=key)), plus how renderfarm
// declares it. Workers consume from it and publishers (the web tier, the
// CLI) route to it; all of them declare it the same way, since RabbitMQ
// refuses a declaration that differs from the first.
type Queue struct {
	Name         string
	Exchange     string // default: same as Name (Celery's default queue "celery" on exchange "celery")
	ExchangeType string // default: direct
	RoutingKey   string // default: same as Name
	// Quorum declares a quorum queue (x-queue-type quorum) that
	// dead-letters after DeliveryLimit redeliveries.
	Quorum        bool
	DeliveryLimit int
}

// WithDefaults fills in Celery's defaults for the exchange and routing key.
func (q Queue) WithDefaults() Queue {
	if q.Exchange == "" {
		q.Exchange = q.Name
	}
	if q.ExchangeType == "" {
		q.ExchangeType = "direct"
	}
	if q.RoutingKey == "" {
		q.RoutingKey = q.Name
	}
	return q
}

// Route is where a task for q is published, defaults applied.
func (q Queue) Route() (exchange, routingKey string) {
	q = q.WithDefaults()
	return q.Exchange, q.RoutingKey
}

// Topology is what a Celery client declares for q, the quorum arguments
// when asked for, and the delay queues that park eta tasks (ours alone; no
// Celery client declares them). deadLetter is where a quorum queue
// dead-letters.
func (q Queue) Topology(deadLetter string) broker.Topology {
	q = q.WithDefaults()
	var args amqp.Table
	if q.Quorum {
		args = amqp.Table{"x-queue-type": "quorum", "x-dead-letter-exchange": deadLetter}
		if q.DeliveryLimit > 0 {
			args["x-delivery-limit"] = int64(q.DeliveryLimit)
		}
	}
	t := broker.Topology{
		Queues: []broker.Queue{{Name: q.Name, Durable: true, Args: args}},
	}
	if q.Exchange != "" { // "" is the default exchange: nothing to declare or bind
		t.Exchanges = []broker.Exchange{{Name: q.Exchange, Kind: q.ExchangeType, Durable: true}}
		t.Bindings = []broker.Binding{{Queue: q.Name, Exchange: q.Exchange, Key: q.RoutingKey}}
	}
	for _, d := range DelayLevels {
		t.Queues = append(t.Queues, broker.Queue{Name: q.DelayQueue(d), Durable: true, Args: amqp.Table{
			"x-message-ttl":             d.Milliseconds(),
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": q.Name,
		}})
	}
	return t
}

// DelayLevels are the holding times of the delay queues. Each queue has
// one TTL for all its messages, so messages expire in order (per-message
// TTLs only expire at the head of a queue); a task parks in the longest
// level that does not overshoot its eta, and parks again if it comes back
// early.
var DelayLevels = []time.Duration{time.Second, 10 * time.Second, time.Minute, 10 * time.Minute, time.Hour}

// DelayQueue is the queue that holds q's tasks for d before they return.
func (q Queue) DelayQueue(d time.Duration) string {
	return fmt.Sprintf("renderfarm.delay.%s.%ds", q.Name, int(d.Seconds()))
}

// DeadLetterTopology is where malformed and poison messages go: a fanout
// exchange so operators can bind more queues (alerts, archives) to it.
func DeadLetterTopology(name string) broker.Topology {
	return broker.Topology{
		Exchanges: []broker.Exchange{{Name: name, Kind: "fanout", Durable: true}},
		Queues:    []broker.Queue{{Name: name, Durable: true}},
		Bindings:  []broker.Binding{{Queue: name, Exchange: name}},
	}
}

// EventTopology is the exchange Celery's monitors bind to; a worker
// declares it too, so events published before any monitor starts are
// routed nowhere rather than refused.
func EventTopology() broker.Topology {
	return broker.Topology{Exchanges: []broker.Exchange{{Name: EventExchange, Kind: "topic", Durable: true}}}
}

// ParseQueues reads the queue syntax every command shares:
// NAME[:EXCHANGE[:ROUTING_KEY]], comma-separated, the three settings of a
// kombu Queue in a Celery app's task_queues.
func ParseQueues(s string) ([]Queue, error) {
	var out []Queue
	seen := map[string]bool{}
	for _, spec := range strings.Split(s, ",") {
		if spec = strings.TrimSpace(spec); spec == "" {
			continue
		}
		parts := strings.Split(spec, ":")
		if len(parts) > 3 || parts[0] == "" {
			return nil, fmt.Errorf("%q: want NAME[:EXCHANGE[:ROUTING_KEY]]", spec)
		}
		q := Queue{Name: parts[0]}
		if len(parts) > 1 {
			q.Exchange = parts[1]
		}
		if len(parts) > 2 {
			q.RoutingKey = parts[2]
		}
		if seen[q.Name] {
			return nil, fmt.Errorf("%q is listed twice", q.Name)
		}
		seen[q.Name] = true
		out = append(out, q)
	}
	if len(out) == 0 {
		return nil, errors.New("name at least one queue")
	}
	return out, nil
}
