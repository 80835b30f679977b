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
	headers := amqp.Table{}
	for k, v := range d.Headers {
		headers[k] = v
	}
	headers[hdrDeadReason] = reason
	headers[hdrDeadAt] = time.Now().UTC().Format(time.RFC3339Nano)
	headers[hdrDeadQueue] = queue
	headers[hdrDeadWorker] = hostname
	return pub.Publish(ctx, exchange, queue, amqp.Publishing{
		Headers:         headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		Body:            d.Body,
	})
}
