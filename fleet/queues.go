package fleet

import (
	"context"
	"errors"

	"github.com/renderfarm/renderfarm/broker"
)

// QueueDepth is a queue as the fleet view shows it. Unacked (delivered,
// not yet acknowledged) is not among them: AMQP does not tell it, only
// RabbitMQ's management API and rabbitmqctl do.
type QueueDepth struct {
	Name      string `json:"name"`
	Ready     int    `json:"ready"`
	Consumers int    `json:"consumers"`
	// Missing: the broker has no such queue (no worker or publisher has
	// declared it yet). Ready and Consumers are then 0.
	Missing bool `json:"missing,omitempty"`
}

// Depths inspects each queue in order. A missing queue is reported as
// such, not as an error; any other failure ends the inspection.
func Depths(ctx context.Context, conn *broker.Conn, names []string) ([]QueueDepth, error) {
	out := make([]QueueDepth, 0, len(names))
	for _, n := range names {
		info, err := conn.InspectQueue(ctx, n)
		switch {
		case errors.Is(err, broker.ErrQueueNotFound):
			out = append(out, QueueDepth{Name: n, Missing: true})
		case err != nil:
			return out, err
		default:
			out = append(out, QueueDepth{Name: n, Ready: info.Ready, Consumers: info.Consumers})
		}
	}
	return out, nil
}

// DepthsWithDeadLetter is Depths of the work queues and, unless
// deadLetter is "", of the dead-letter queue (named as its exchange, see
// celery.DeadLetterTopology).
func DepthsWithDeadLetter(ctx context.Context, conn *broker.Conn, names []string, deadLetter string) (work []QueueDepth, dead *QueueDepth, err error) {
	all := names
	if deadLetter != "" {
		all = append(append([]string{}, names...), deadLetter)
	}
	ds, err := Depths(ctx, conn, all)
	if err != nil {
		return nil, nil, err
	}
	if deadLetter != "" {
		return ds[:len(ds)-1], &ds[len(ds)-1], nil
	}
	return ds, nil, nil
}
