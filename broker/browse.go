package broker

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrBrowseLost: the browsing channel or its connection closed. Every
// message not yet taken is back in its queue; a message published
// elsewhere before its Take may now exist twice.
var ErrBrowseLost = errors.New("broker: browse: channel closed; untaken messages are back in the queue")

// Browser reads a queue's messages without taking them, for tools that
// show a queue or move some of its messages (the dead-letter queue).
//
// It reads with basic.get and no ack on a channel of its own. The
// messages stay the broker's: Close (or a lost connection) returns every
// one not taken to the queue, and RabbitMQ puts a requeued message back
// in its original position when nothing else consumes the queue, so a
// browse neither reorders nor loses anything. Nacking each message
// instead would put it at the back. What a browse does leave behind is
// the redelivered flag on the messages it read.
//
// A Browser is not safe for concurrent use.
type Browser struct {
	ch    *amqp.Channel
	queue string
	// left is how many messages are still to be read of those the queue
	// held at the first get (-1 before it): messages that arrive during
	// the browse are not read, so a busy queue cannot keep it going.
	left int
}

// Browse opens a Browser on queue. It does not survive a reconnect: a
// connection lost while browsing ends the browse with ErrBrowseLost.
func (c *Conn) Browse(ctx context.Context, queue string) (*Browser, error) {
	s, err := c.waitSession(ctx)
	if err != nil {
		return nil, fmt.Errorf("broker: browse %q: %w", queue, err)
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("broker: browse %q: %w", queue, err)
	}
	return &Browser{ch: ch, queue: queue, left: -1}, nil
}

// Next returns the next message, or ok false once every message the
// queue held at the first call has been read.
func (b *Browser) Next(ctx context.Context) (d amqp.Delivery, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return d, false, fmt.Errorf("broker: browse %q: %w", b.queue, err)
	}
	if b.left == 0 {
		return d, false, nil
	}
	d, ok, err = b.ch.Get(b.queue, false)
	if err != nil {
		return d, false, b.fail(err)
	}
	if !ok {
		b.left = 0
		return d, false, nil
	}
	if b.left < 0 {
		b.left = int(d.MessageCount) + 1
	}
	b.left--
	return d, true, nil
}

// Take removes d, read by this Browser, from the queue (basic.ack). Only
// take a message once it is safe elsewhere: a copy whose publish was
// confirmed. The ack itself is not confirmed by the broker; Close is, and
// the broker has applied every Take once Close returns nil.
func (b *Browser) Take(d amqp.Delivery) error {
	if err := b.ch.Ack(d.DeliveryTag, false); err != nil {
		return b.fail(err)
	}
	return nil
}

// Close ends the browse: every message read and not taken goes back to
// the queue, in its place.
func (b *Browser) Close() error {
	if b.ch.IsClosed() {
		return nil
	}
	if err := b.ch.Close(); err != nil {
		return b.fail(err)
	}
	return nil
}

func (b *Browser) fail(err error) error {
	if b.ch.IsClosed() {
		return fmt.Errorf("broker: browse %q: %w: %w", b.queue, ErrBrowseLost, err)
	}
	return fmt.Errorf("broker: browse %q: %w", b.queue, err)
}

// RabbitMQHeaders are the headers RabbitMQ adds on the way (dead-letter
// history, quorum delivery counts). They describe one journey of a
// message, so a copy sent again as a new message leaves them out.
func RabbitMQHeaders() []string {
	return []string{"x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
		"x-last-death-exchange", "x-last-death-queue", "x-last-death-reason", "x-delivery-count"}
}

// Republishing copies a delivery as a publishing to send again: the same
// body and properties, its headers less RabbitMQ's own and less those
// named in drop.
func Republishing(d amqp.Delivery, drop ...string) amqp.Publishing {
	h := amqp.Table{}
	for k, v := range d.Headers {
		h[k] = v
	}
	for _, k := range append(RabbitMQHeaders(), drop...) {
		delete(h, k)
	}
	return amqp.Publishing{
		Headers: h, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: d.DeliveryMode, Priority: d.Priority, CorrelationId: d.CorrelationId,
		ReplyTo: d.ReplyTo, Expiration: d.Expiration, MessageId: d.MessageId,
		Timestamp: d.Timestamp, Type: d.Type, Body: d.Body,
	}
}
