package job

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/broker/celery"
)

// PublishFunc sends one message and returns once the broker has taken it:
// broker.Conn's Publish (which waits out a reconnect) or PublishNow (which
// fails at once while disconnected, for the web tier).
type PublishFunc func(ctx context.Context, exchange, key string, msg amqp.Publishing) error

// Enqueue publishes a render request as a renderfarm.render task, exactly
// as a Python app's send_task(kwargs=REQUEST) would, and returns its id
// once the broker has confirmed it. The web tier and the replay command
// use it. The id is a UUIDv7: it carries its send time, which is how
// Journal.Find knows which days to search and that a task with no
// manifest yet is pending rather than unknown.
func Enqueue(ctx context.Context, publish PublishFunc, exchange, routingKey string, req *Request) (string, error) {
	return EnqueueAs(ctx, publish, exchange, routingKey, "", req)
}

// EnqueueAs is Enqueue under a task id of the caller's choosing, for a
// replay that keeps the id the job's clients already know; "" makes a new
// UUIDv7 as Enqueue does.
func EnqueueAs(ctx context.Context, publish PublishFunc, exchange, routingKey, id string, req *Request) (string, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("job: encoding the request: %w", err)
	}
	var kwargs map[string]any
	if err := json.Unmarshal(data, &kwargs); err != nil {
		return "", fmt.Errorf("job: encoding the request: %w", err)
	}
	if id == "" {
		u, err := uuid.NewV7()
		if err != nil {
			return "", fmt.Errorf("job: task id: %w", err)
		}
		id = u.String()
	}
	msg, err := celery.Encode(&celery.Message{ID: id, Task: TaskName, Args: []any{}, Kwargs: kwargs, IgnoreResult: true})
	if err != nil {
		return "", err
	}
	// Celery clients send no publish time; ours do, so a worker can tell
	// how long the task waited in the queue.
	msg.Timestamp = time.Now().UTC()
	if err := publish(ctx, exchange, routingKey, msg); err != nil {
		return "", err
	}
	return id, nil
}
