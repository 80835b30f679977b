package worker

import (
	"context"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/broker"
)

// Headers the dead-letter copy carries, for a person (or a replay tool)
// to see why a message was set aside and where it came from.
const (
	HeaderDeadReason = "x-renderfarm-dead-reason"
	HeaderDeadAt     = "x-renderfarm-dead-at"
	HeaderDeadQueue  = "x-renderfarm-dead-queue"
	HeaderDeadWorker = "x-renderfarm-dead-worker"
)

// ReplayDropsHeaders are the headers a message sent back to its work queue
// from the dead-letter queue leaves behind: why it was set aside, and its
// redelivery count and start mark, which start afresh (the start record
// itself is cleared when the worker dead-letters a message). (broker.Republishing
// drops RabbitMQ's own.)
func ReplayDropsHeaders() []string {
	return []string{HeaderDeadReason, HeaderDeadAt, HeaderDeadQueue, HeaderDeadWorker, HeaderRedeliveries, hdrStarted}
}

// deadLetter publishes a copy of a delivery, unchanged but for the reason
// headers, to the dead-letter exchange. The caller acks the original only
// when this returns nil, so a message is never both dropped and unrecorded.
func deadLetter(ctx context.Context, pub Publisher, exchange, hostname string, d *broker.Delivery, queue, reason string) error {
	p := republishable(d)
	p.Headers[HeaderDeadReason] = reason
	p.Headers[HeaderDeadAt] = time.Now().UTC().Format(time.RFC3339Nano)
	p.Headers[HeaderDeadQueue] = queue
	p.Headers[HeaderDeadWorker] = hostname
	// Kept until someone looks: persistent, and no TTL of the original's.
	p.DeliveryMode, p.Expiration = amqp.Persistent, ""
	return pub.Publish(ctx, exchange, queue, p)
}
