package celery

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Event is one celery event: a dict with at least "type". Publish events to
// EventExchange (topic).
type Event map[string]any

// NewEvent builds an event as celery's EventDispatcher.publish does:
// hostname, utcoffset, pid and clock, then the fields, then timestamp
// (unless fields has one) and type. clock is the worker's Lamport clock
// after forwarding it.
func NewEvent(typ, hostname string, clock uint64, now time.Time, fields map[string]any) Event {
	ev := Event{
		"hostname":  hostname,
		"utcoffset": UTCOffset(now),
		"pid":       os.Getpid(),
		"clock":     clock,
	}
	for k, v := range fields {
		ev[k] = v
	}
	if _, ok := ev["timestamp"]; !ok {
		ev["timestamp"] = float64(now.Unix()) + float64(now.Nanosecond())/1e9
	}
	ev["type"] = typ
	return ev
}

// UTCOffset is celery.utils.time.utcoffset() for the zone of t: whole
// hours WEST of UTC, rounded down (Python's //), so UTC+05:30 is -6 and
// UTC-03:30 is 3. Receivers use it to shift the timestamp.
func UTCOffset(t time.Time) int {
	_, east := t.Zone()
	west := -east
	q := west / 3600
	if west%3600 != 0 && west < 0 {
		q--
	}
	return q
}

// Type is the event's type, "" when missing.
func (e Event) Type() string {
	t, _ := e["type"].(string)
	return t
}

// EventGroup is the part of an event type before the first '-': "task"
// for task-succeeded (celery.events.event.group_from).
func EventGroup(typ string) string {
	g, _, _ := strings.Cut(typ, "-")
	return g
}

// EncodeEvent is one event as the dispatcher publishes it: routing key
// the type with '-' turned into '.', JSON, delivery_mode 1, and a
// hostname header.
func EncodeEvent(ev Event) (routingKey string, pub amqp.Publishing, err error) {
	typ := ev.Type()
	if typ == "" {
		return "", amqp.Publishing{}, errors.New("celery: event without a type")
	}
	pub, err = eventPublishing(map[string]any(ev), ev)
	return strings.ReplaceAll(typ, "-", "."), pub, err
}

// EncodeEvents is the list form a celery 5.2 worker uses for task events:
// with its event loop running it buffers events of the "task" group and
// flushes them (up to 24, or on the next loop turn) as one message with
// routing key "task.multi" and a JSON list body. All events must share a
// group.
func EncodeEvents(evs []Event) (routingKey string, pub amqp.Publishing, err error) {
	if len(evs) == 0 {
		return "", amqp.Publishing{}, errors.New("celery: no events to encode")
	}
	group := EventGroup(evs[0].Type())
	list := make([]any, len(evs))
	for i, ev := range evs {
		if ev.Type() == "" {
			return "", amqp.Publishing{}, fmt.Errorf("celery: event %d has no type", i)
		}
		if g := EventGroup(ev.Type()); g != group {
			return "", amqp.Publishing{}, fmt.Errorf("celery: event %d is of group %q, not %q", i, g, group)
		}
		list[i] = map[string]any(ev)
	}
	pub, err = eventPublishing(list, evs[0])
	return group + ".multi", pub, err
}

func eventPublishing(body any, first Event) (amqp.Publishing, error) {
	b, err := marshalValue(body)
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("celery: encode event: %w", err)
	}
	host, _ := first["hostname"].(string)
	return amqp.Publishing{
		Headers:         amqp.Table{"hostname": host},
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		DeliveryMode:    amqp.Transient,
		Body:            b,
	}, nil
}
