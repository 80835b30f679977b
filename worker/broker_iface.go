package worker

import (
	"context"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/broker"
)

// Publisher sends one message and reports whether the broker took it.
type Publisher interface {
	Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error
}

// Broker is the worker's whole view of its broker connection;
// *broker.Conn implements it.
type Broker interface {
	Publisher
	Declare(ctx context.Context, t broker.Topology) error
	Consume(ctx context.Context, opts broker.ConsumeOptions) (<-chan *broker.Delivery, error)
}

// nodeNamer is a Broker that knows which node of a cluster it is connected
// to (*broker.Conn's Node: a URL, password hidden).
type nodeNamer interface{ Node() string }
