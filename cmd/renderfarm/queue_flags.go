package main

import (
	"github.com/renderfarm/renderfarm/worker"
	"github.com/urfave/cli/v2"
)

func brokerFlag() cli.Flag {
	return &cli.StringFlag{Name: "broker", EnvVars: []string{"RENDERFARM_BROKER_URL"}, Value: "amqp://guest:guest@127.0.0.1:5672//",
		Usage: "AMQP URL of RabbitMQ, with its vhost"}
}

// queueFlags say how the render queues are declared. The workers and the
// web tier both declare them, and RabbitMQ refuses a declaration that
// differs from the first, so both commands take the same flags.
func queueFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "quorum", EnvVars: []string{"RENDERFARM_QUORUM"}, Usage: "declare the queues as quorum queues (workers, web tier and Celery clients must agree)"},
		&cli.IntFlag{Name: "delivery-limit", EnvVars: []string{"RENDERFARM_DELIVERY_LIMIT"}, Value: 5, Usage: "quorum queues' x-delivery-limit"},
		&cli.StringFlag{Name: "dead-letter-exchange", EnvVars: []string{"RENDERFARM_DEAD_LETTER_EXCHANGE"}, Value: worker.DefaultDeadLetter, Usage: "where malformed and poison messages go"},
	}
}

// withQueueFlags applies queueFlags to a queue parsed from --queues or
// --queue.
func withQueueFlags(c *cli.Context, q worker.QueueConfig) worker.QueueConfig {
	q.Quorum, q.DeliveryLimit = c.Bool("quorum"), c.Int("delivery-limit")
	return q
}
