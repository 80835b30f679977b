package celery

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// golden is one file written by testdata/gen_golden.py.
type golden struct {
	name        string
	Kind        string `json:"kind"`
	Description string `json:"description"`
	Exchange    string `json:"exchange"`
	RoutingKey  string `json:"routing_key"`
	Properties  struct {
		ContentType     string `json:"content_type"`
		ContentEncoding string `json:"content_encoding"`
		DeliveryMode    uint8  `json:"delivery_mode"`
		Priority        uint8  `json:"priority"`
		CorrelationID   string `json:"correlation_id"`
		ReplyTo         string `json:"reply_to"`
		Expiration      string `json:"expiration"`
	} `json:"properties"`
	HeadersAMQP   string          `json:"headers_amqp"`
	Body          string          `json:"body"`
	Expect        json.RawMessage `json:"expect"`
	Params        json.RawMessage `json:"params"`
	ExceptionRepr string          `json:"exception_repr"`
	PythonETA     string          `json:"python_52_eta"`
	Key           string          `json:"key"`
	Value         string          `json:"value"`
	Cases         json.RawMessage `json:"cases"`
	Exceptions    json.RawMessage `json:"exceptions"`
}

func loadGoldens(t testing.TB) []*golden {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files (run /usr/bin/python3 broker/celery/testdata/gen_golden.py): %v", err)
	}
	var out []*golden
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		g := &golden{name: strings.TrimSuffix(filepath.Base(f), ".json")}
		if err := json.Unmarshal(raw, g); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, g)
	}
	return out
}

func goldensOf(t testing.TB, kinds ...string) []*golden {
	var out []*golden
	for _, g := range loadGoldens(t) {
		for _, k := range kinds {
			if g.Kind == k {
				out = append(out, g)
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no goldens of kind %v", kinds)
	}
	return out
}

func goldenNamed(t testing.TB, name string) *golden {
	for _, g := range loadGoldens(t) {
		if g.name == name {
			return g
		}
	}
	t.Fatalf("no golden %s", name)
	return nil
}

func (g *golden) headers(t testing.TB) amqp.Table {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(g.HeadersAMQP)
	if err != nil {
		t.Fatal(err)
	}
	h, err := readWireTable(raw)
	if err != nil {
		t.Fatalf("%s: headers: %v", g.name, err)
	}
	return h
}

func (g *golden) delivery(t testing.TB) amqp.Delivery {
	return amqp.Delivery{
		Headers:         g.headers(t),
		ContentType:     g.Properties.ContentType,
		ContentEncoding: g.Properties.ContentEncoding,
		DeliveryMode:    g.Properties.DeliveryMode,
		Priority:        g.Properties.Priority,
		CorrelationId:   g.Properties.CorrelationID,
		ReplyTo:         g.Properties.ReplyTo,
		Expiration:      g.Properties.Expiration,
		Exchange:        g.Exchange,
		RoutingKey:      g.RoutingKey,
		Body:            []byte(g.Body),
	}
}

// value parses raw JSON into the decoded value model.
func value(t testing.TB, raw []byte) any {
	t.Helper()
	v, err := parseJSON(raw)
	if err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	return v
}

func (g *golden) expect(t testing.TB) map[string]any {
	return value(t, g.Expect).(map[string]any)
}

func (g *golden) params(t testing.TB) map[string]any {
	return value(t, g.Params).(map[string]any)
}

// same compares values of the model: exact Go types (int64 is not
// float64), times by instant, NaN equal to NaN, and a nil slice or map
// equal to an empty one (amqp091-go reads an empty array as nil).
func same(a, b any) bool {
	switch x := a.(type) {
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case float64:
		y, ok := b.(float64)
		return ok && (x == y && math.Signbit(x) == math.Signbit(y) || math.IsNaN(x) && math.IsNaN(y))
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !same(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k := range x {
			if _, ok := y[k]; !ok || !same(x[k], y[k]) {
				return false
			}
		}
		return true
	case amqp.Table:
		y, ok := b.(amqp.Table)
		return ok && same(map[string]any(x), map[string]any(y))
	}
	return reflect.DeepEqual(a, b)
}

func show(v any) string {
	switch x := v.(type) {
	case amqp.Table:
		keys := sortedKeys(map[string]any(x))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s:%s", k, show(x[k]))
		}
		return "Table{" + strings.Join(parts, " ") + "}"
	case map[string]any:
		keys := sortedKeys(x)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s:%s", k, show(x[k]))
		}
		return "{" + strings.Join(parts, " ") + "}"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = show(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprintf("%T(%v)", v, v)
}

// diffTables lists the keys whose values differ.
func diffTables(a, b amqp.Table) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		if !same(a[k], b[k]) {
			out = append(out, fmt.Sprintf("%s: got %s want %s", k, show(a[k]), show(b[k])))
		}
	}
	sort.Strings(out)
	return out
}

// toValue turns an already-decoded value (Go types) back into the model
// through the codec's own writer and parser, for comparisons.
func toValue(t testing.TB, v any) any {
	t.Helper()
	b, err := marshalValue(v)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	return value(t, b)
}

func optTime(t testing.TB, v any) *time.Time {
	t.Helper()
	if v == nil {
		return nil
	}
	tm, err := parseISODateTime(v.(string), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	tm = tm.UTC()
	return &tm
}

func strOr(v any) string {
	s, _ := v.(string)
	return s
}
