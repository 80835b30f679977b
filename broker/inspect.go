package broker

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrQueueNotFound is a queue the broker does not have (404 NOT_FOUND on a
// passive declare).
var ErrQueueNotFound = errors.New("broker: no such queue")

// QueueInfo is what AMQP tells of a queue without touching it. Messages
// delivered but not yet acknowledged are not in it: AMQP's declare-ok
// counts only ready messages, and the unacked count is only known to the
// management API (rabbitmqctl list_queues messages_unacknowledged).
type QueueInfo struct {
	Name      string
	Ready     int // messages waiting for a consumer
	Consumers int
}

// InspectQueue reads a queue's ready messages and consumers with a passive
// declare, which creates nothing. It runs on a throwaway channel: the
// broker answers a missing queue by closing the channel (404), not the
// connection, so publishers and consumers on the Conn carry on. A missing
// queue is an error matching ErrQueueNotFound.
func (c *Conn) InspectQueue(ctx context.Context, name string) (QueueInfo, error) {
	var info QueueInfo
	err := c.withChannel(ctx, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
		if err != nil {
			return err
		}
		info = QueueInfo{Name: q.Name, Ready: q.Messages, Consumers: q.Consumers}
		return nil
	})
	var aerr *amqp.Error
	if errors.As(err, &aerr) && aerr.Code == amqp.NotFound {
		return QueueInfo{}, fmt.Errorf("broker: inspect queue %q: %w (%s)", name, ErrQueueNotFound, aerr.Reason)
	}
	if err != nil {
		return QueueInfo{}, fmt.Errorf("broker: inspect queue %q: %w", name, err)
	}
	return info, nil
}
