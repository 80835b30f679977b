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
	hdrDeadReason = "x-renderfarm-dead-reason"
	hdrDeadAt     = "x-renderfarm-dead-at"
	hdrDeadQueue  = "x-renderfarm-dead-queue"
	hdrDeadWorker = "x-renderfarm-dead-worker"
)

// deadLetter publishes a copy of a delivery, unchanged but for the reason
// headers, to the dead-letter exchange. The caller acks the original only
// when this returns nil, so a message is never both dropped and unrecorded.
func deadLetter(ctx context.Context, pub Publisher, exchange, hostname string, d *broker.Delivery, queue, reason string) error {
	p := republishable(d)
	p.Headers[hdrDeadReason] = reason
	p.Headers[hdrDeadAt] = time.Now().UTC().Format(time.RFC3339Nano)
	p.Headers[hdrDeadQueue] = queue
	p.Headers[hdrDeadWorker] = hostname
	// Kept until someone looks: persistent, and no TTL of the original's.
	p.DeliveryMode, p.Expiration = amqp.Persistent, ""
	return pub.Publish(ctx, exchange, queue, p)
}
