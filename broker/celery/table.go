package celery

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// fromTable turns AMQP application headers, as amqp091-go delivers them,
// into the decoded value model, so code reading Message.Headers sees the
// same types whatever integer width the sender's client chose (py-amqp
// writes 'I' for 32-bit ints and 'L' beyond).
func fromTable(t amqp.Table) (map[string]any, error) {
	out := make(map[string]any, len(t))
	for k, v := range t {
		n, err := fromAMQP(v, 0)
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
		out[k] = n
	}
	return out, nil
}

func fromAMQP(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested more than %d deep", maxDepth)
	}
	switch x := v.(type) {
	case nil, bool, string, int64, float64, []byte:
		return x, nil
	case int8:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case int:
		return int64(x), nil
	case float32:
		return float64(x), nil
	case time.Time:
		return x.UTC(), nil
	case amqp.Decimal:
		// py-amqp reads 'D' as a Decimal, which kombu's JSON writes as str().
		return amqpDecimalString(x), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := fromAMQP(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case amqp.Table:
		m := make(map[string]any, len(x))
		for k, e := range x {
			n, err := fromAMQP(e, depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = n
		}
		if typed, ok, err := decodeTyped(m); ok || err != nil {
			return typed, err
		}
		return m, nil
	case map[string]any:
		return fromAMQP(amqp.Table(x), depth)
	}
	return nil, fmt.Errorf("unsupported AMQP value %T", v)
}

func amqpDecimalString(d amqp.Decimal) string {
	s := strconv.FormatInt(int64(d.Value), 10)
	if d.Scale == 0 {
		return s
	}
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	for len(s) <= int(d.Scale) {
		s = "0" + s
	}
	cut := len(s) - int(d.Scale)
	return sign + s[:cut] + "." + s[cut:]
}

// toTable turns header values from the value model into the types
// amqp091-go writes: int32 ('I') where it fits, as py-amqp does, else int64
// ('l'). Note that py-amqp 5.1 reads 'l' as unsigned, so a negative value
// below -2^31 arrives in Python as a large positive number; no other AMQP
// type carries it (py-amqp's own 'L' is unreadable by amqp091-go).
func toTable(m map[string]any) (amqp.Table, error) {
	t := make(amqp.Table, len(m))
	for k, v := range m {
		n, err := normalize(v, 0)
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
		if t[k], err = toAMQP(n); err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
	}
	return t, nil
}

func toAMQP(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, float64, []byte:
		return x, nil
	case time.Time:
		return x, nil
	case int64:
		if x >= math.MinInt32 && x <= math.MaxInt32 {
			return int32(x), nil
		}
		return x, nil
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return toAMQP(n)
		}
		return nil, fmt.Errorf("number %s does not fit an AMQP header", string(x))
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := toAMQP(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case tuple:
		return toAMQP([]any(x))
	case map[string]any:
		t := make(amqp.Table, len(x))
		for k, e := range x {
			n, err := toAMQP(e)
			if err != nil {
				return nil, err
			}
			t[k] = n
		}
		return t, nil
	case object:
		t := make(amqp.Table, len(x))
		for _, m := range x {
			n, err := toAMQP(m.value)
			if err != nil {
				return nil, err
			}
			t[m.key] = n
		}
		return t, nil
	case ExceptionInfo:
		return toAMQP(x.object())
	}
	return nil, fmt.Errorf("cannot put a %T in an AMQP header", v)
}

// TableInt reads an integer header of an AMQP table, whichever integer
// width the sender used (RabbitMQ's x-delivery-count is a long, py-amqp
// writes small ints narrower); ok is false when it is absent or not an
// integer.
func TableInt(t amqp.Table, key string) (n int64, ok bool) {
	switch v := t[key].(type) {
	case int8, uint8, int16, uint16, int32, uint32, int, int64:
		x, err := fromAMQP(v, 0)
		if err != nil {
			return 0, false
		}
		return x.(int64), true
	}
	return 0, false
}
