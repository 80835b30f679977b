package celery

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// reprMaxSize is celery's Task.argsrepr_maxsize / kwargsrepr_maxsize and
// resultrepr_maxsize.
const reprMaxSize = 1024

// Encode writes m as protocol 2, the way celery 5.2's app.amqp.as_task_v2,
// send_task and kombu's Producer.publish put it on the wire. Publish it to
// the default exchange "" with the queue name (DefaultQueue) as routing
// key, which is where a 5.2 client sends it.
func Encode(m *Message) (amqp.Publishing, error) {
	return EncodeAt(m, time.Now())
}

// EncodeAt is Encode with the current time given: the expiration property
// is the time left until m.Expires, as send_task computes it.
func EncodeAt(m *Message, now time.Time) (amqp.Publishing, error) {
	if m == nil {
		return amqp.Publishing{}, errors.New("celery: encode: nil message")
	}
	if m.Task == "" || m.ID == "" {
		return amqp.Publishing{}, errors.New("celery: encode: a task message needs Task and ID")
	}
	args, err := normalize(m.Args, 0)
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("celery: encode args: %w", err)
	}
	if args == nil {
		args = []any{}
	}
	kwargs, err := normalize(m.Kwargs, 0)
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("celery: encode kwargs: %w", err)
	}
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	body, err := marshalValue([]any{args, kwargs, m.Embed.object()})
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("celery: encode body: %w", err)
	}
	headers, err := taskHeaders(m, args.([]any), kwargs.(map[string]any))
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("celery: encode headers: %w", err)
	}
	pub := amqp.Publishing{
		Headers:         headers,
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		DeliveryMode:    amqp.Persistent,
		Priority:        m.Priority,
		CorrelationId:   m.ID,
		ReplyTo:         m.ReplyTo,
		Body:            body,
	}
	if m.Expires != nil {
		pub.Expiration = expiration(*m.Expires, now)
	}
	return pub, nil
}

// expiration is kombu's str(int(expires_s * 1000)), where celery's
// send_task clamps a past expiry to 0 (RabbitMQ then drops the message
// unless a consumer takes it at once).
func expiration(expires, now time.Time) string {
	s := expires.Sub(now).Truncate(time.Microsecond).Seconds()
	if s < 0 {
		s = 0
	}
	return strconv.FormatInt(int64(s*1000), 10)
}

func taskHeaders(m *Message, args []any, kwargs map[string]any) (amqp.Table, error) {
	h := map[string]any{}
	for k, v := range m.Headers {
		h[k] = v
	}
	var err error
	set := func(k string, v any) { h[k] = v }
	set("lang", "py")
	set("task", m.Task)
	set("id", m.ID)
	set("shadow", nilIfEmpty(m.Shadow))
	if h["eta"], err = isoOrNil(m.ETA); err != nil {
		return nil, fmt.Errorf("eta: %w", err)
	}
	if h["expires"], err = isoOrNil(m.Expires); err != nil {
		return nil, fmt.Errorf("expires: %w", err)
	}
	set("group", nilIfEmpty(m.GroupID))
	if m.GroupIndex != nil {
		set("group_index", int64(*m.GroupIndex))
	} else {
		set("group_index", nil)
	}
	set("retries", int64(m.Retries))
	set("timelimit", []any{limitValue(m.TimeLimit[0]), limitValue(m.TimeLimit[1])})
	root := m.RootID
	if root == "" { // as_task_v2: an empty root_id defaults to the task id
		root = m.ID
	}
	set("root_id", root)
	set("parent_id", nilIfEmpty(m.ParentID))
	argsrepr, kwargsrepr := m.ArgsRepr, m.KwargsRepr
	if argsrepr == "" {
		argsrepr = ArgsRepr(args)
	}
	if kwargsrepr == "" {
		kwargsrepr = KwargsRepr(kwargs)
	}
	set("argsrepr", argsrepr)
	set("kwargsrepr", kwargsrepr)
	origin := m.Origin
	if origin == "" {
		origin = anonNodename()
	}
	set("origin", origin)
	set("ignore_result", m.IgnoreResult)
	return toTable(h)
}

func isoOrNil(t *time.Time) (any, error) {
	if t == nil {
		return nil, nil
	}
	return isoformat(t.UTC())
}

// limitValue writes a whole number of seconds as an integer, as a Python
// client does for time_limit=30, and anything else as a float.
func limitValue(f *float64) any {
	if f == nil {
		return nil
	}
	if *f == math.Trunc(*f) && math.Abs(*f) < 1<<53 {
		return int64(*f)
	}
	return *f
}

// anonNodename is celery.utils.nodenames.anon_nodename(): the origin a
// client that is not a worker puts on its messages. It is worked out once
// per process: os.Hostname is a system call, and the web tier encodes a
// message per request.
var anonNodename = sync.OnceValue(func() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return "gen" + strconv.Itoa(os.Getpid()) + "@" + host
})

// ArgsRepr is the argsrepr header celery computes for args:
// saferepr(tuple(args), 1024).
func ArgsRepr(args []any) string { return SafeRepr(tuple(args), reprMaxSize) }

// KwargsRepr is the kwargsrepr header celery computes: saferepr(kwargs, 1024).
func KwargsRepr(kwargs map[string]any) string {
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	return SafeRepr(kwargs, reprMaxSize)
}
