package worker

import (
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
)

// queueTopology is what Celery's client declares for q, plus the quorum
// arguments when asked for. The delay queues that park eta tasks are ours
// alone; no Celery client declares them.
func queueTopology(q QueueConfig, deadLetter string) broker.Topology {
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
	for _, d := range delayLevels {
		t.Queues = append(t.Queues, broker.Queue{Name: delayQueue(q.Name, d), Durable: true, Args: amqp.Table{
			"x-message-ttl":             d.Milliseconds(),
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": q.Name,
		}})
	}
	return t
}

// deadLetterTopology is where malformed and poison messages go: a fanout
// exchange so operators can bind more queues (alerts, archives) to it.
func deadLetterTopology(name string) broker.Topology {
	return broker.Topology{
		Exchanges: []broker.Exchange{{Name: name, Kind: "fanout", Durable: true}},
		Queues:    []broker.Queue{{Name: name, Durable: true}},
		Bindings:  []broker.Binding{{Queue: name, Exchange: name}},
	}
}

// eventTopology is the exchange Celery's monitors bind to; a worker
// declares it too, so events published before any monitor starts are
// routed nowhere rather than refused.
func eventTopology() broker.Topology {
	return broker.Topology{Exchanges: []broker.Exchange{{Name: celery.EventExchange, Kind: "topic", Durable: true}}}
}

// delayLevels are the holding times of the delay queues. Each queue has
// one TTL for all its messages, so messages expire in order (per-message
// TTLs only expire at the head of a queue); a task parks in the longest
// level that does not overshoot its eta, and parks again if it comes back
// early.
var delayLevels = []time.Duration{time.Second, 10 * time.Second, time.Minute, 10 * time.Minute, time.Hour}

func delayQueue(queue string, d time.Duration) string {
	return fmt.Sprintf("renderfarm.delay.%s.%ds", queue, int(d.Seconds()))
}

// Topology is what a worker declares for q: what a Celery client declares,
// the quorum arguments, and the delay queues. A publisher that may start
// before any worker (the web tier) declares the same, so its first publish
// is routed, and a mismatch with the workers' settings shows at its start.
func (q QueueConfig) Topology(deadLetter string) broker.Topology {
	return queueTopology(q.withDefaults(), deadLetter)
}

// Route is where a task for q is published, defaults applied.
func (q QueueConfig) Route() (exchange, routingKey string) {
	q = q.withDefaults()
	return q.Exchange, q.RoutingKey
}
