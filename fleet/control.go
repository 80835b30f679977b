package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
)

// DefaultTimeout is how long a call gathers replies when none is given:
// `celery inspect`'s default.
const DefaultTimeout = time.Second

// replyQueueExpires matches kombu's reply queues: a reply queue left behind
// by a client that died goes away on its own.
const replyQueueExpires = int32(10000)

// Control is a client of Celery's remote control (kombu's pidbox): it
// broadcasts a command to the workers' mailboxes and gathers their
// replies, as `celery inspect` and `celery control` do.
type Control struct {
	conn *broker.Conn
}

// NewControl is a remote-control client on conn.
func NewControl(conn *broker.Conn) *Control { return &Control{conn: conn} }

// CallOptions narrow and bound a call.
type CallOptions struct {
	// Destination names the nodes that should answer; empty means all.
	Destination []string
	// Timeout is how long replies are gathered (DefaultTimeout when 0).
	// A call always waits this long unless Limit replies arrive first:
	// nothing says how many workers there are.
	Timeout time.Duration
	// Limit stops gathering after this many replies; 0 means
	// len(Destination) when that is set, else no limit.
	Limit int
}

// Reply is one node's answer.
type Reply struct {
	Node string
	Body json.RawMessage
}

// Call broadcasts method with args and returns the replies gathered within
// the timeout, in arrival order. No reply is not an error: a fleet with no
// worker online answers nothing.
func (c *Control) Call(ctx context.Context, method string, args map[string]any, opts CallOptions) ([]Reply, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = len(opts.Destination)
	}
	ticket := uuid.NewString()
	queue := ticket + "." + celery.ReplyPidboxExchange
	// One reply queue per call, bound with the ticket as its key, so
	// concurrent calls never see each other's replies.
	topo := broker.Topology{
		Exchanges: []broker.Exchange{{Name: celery.ReplyPidboxExchange, Kind: "direct"}, {Name: celery.PidboxExchange, Kind: "fanout"}},
		Queues:    []broker.Queue{{Name: queue, AutoDelete: true, Exclusive: true, Args: amqp.Table{"x-expires": replyQueueExpires}}},
		Bindings:  []broker.Binding{{Queue: queue, Exchange: celery.ReplyPidboxExchange, Key: ticket}},
	}
	if err := c.conn.Declare(ctx, topo); err != nil {
		return nil, fmt.Errorf("fleet: %s: reply queue: %w", method, err)
	}
	// Deleting it also makes the Conn forget it, so a long-lived Conn
	// (the web tier, scale --listen) does not re-declare every call's
	// queue after a reconnect.
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = c.conn.DeleteQueue(dctx, queue)
	}()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	replies, err := c.conn.Consume(cctx, broker.ConsumeOptions{Queue: queue, Exclusive: true})
	if err != nil {
		return nil, fmt.Errorf("fleet: %s: consuming replies: %w", method, err)
	}
	expires := time.Now().Add(timeout)
	pub, err := celery.EncodeControl(&celery.ControlRequest{
		Method: method, Arguments: args, Destination: opts.Destination, Ticket: ticket,
		ReplyExchange: celery.ReplyPidboxExchange, ReplyRoutingKey: ticket, Expires: &expires,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: %s: %w", method, err)
	}
	// Workers' mailboxes are not durable and may not exist (no worker):
	// an unroutable broadcast simply has no one to answer it.
	if err := c.conn.Publish(ctx, celery.PidboxExchange, "", pub); err != nil && !errors.Is(err, broker.ErrUnroutable) {
		return nil, fmt.Errorf("fleet: %s: publishing: %w", method, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var out []Reply
	for limit == 0 || len(out) < limit {
		select {
		case d, ok := <-replies:
			if !ok {
				return out, fmt.Errorf("fleet: %s: reply consumer closed", method)
			}
			_ = d.Ack()
			if t, _ := d.Headers["ticket"].(string); t != "" && t != ticket {
				continue
			}
			rs, err := decodeReply(d.Body)
			if err != nil {
				continue // a reply we cannot read is one we cannot show
			}
			out = append(out, rs...)
		case <-timer.C:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}

// decodeReply reads kombu's reply body, {node: reply}.
func decodeReply(body []byte) ([]Reply, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	out := make([]Reply, 0, len(m))
	for node, b := range m {
		out = append(out, Reply{Node: node, Body: b})
	}
	return out, nil
}
