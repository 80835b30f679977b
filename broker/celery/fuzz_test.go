package celery

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// FuzzDecode feeds arbitrary bodies and header tables (in AMQP wire form,
// seeded from the goldens) to Decode. Decode must refuse or accept
// without panicking (its recover would report "internal decoding error",
// which fails here), and anything it accepts must encode and decode back
// to the same arguments.
func FuzzDecode(f *testing.F) {
	for _, g := range loadGoldens(f) {
		if g.Body == "" {
			continue
		}
		raw, _ := base64.StdEncoding.DecodeString(g.HeadersAMQP)
		f.Add([]byte(g.Body), raw, g.Properties.ContentType)
	}
	f.Add([]byte(`[[], {}, null]`), mustWire(f, amqp.Table{"task": "t", "id": "i"}), "application/json")
	f.Add([]byte(`{"task": "t", "id": "i", "args": [1], "utc": false, "eta": "2030-01-01T00:00:00"}`), []byte(nil), "application/json")
	f.Add([]byte(`[[{"__type__": "bytes", "__value__": "x"}], {}, {"chain": [{"task": "a"}]}]`), mustWire(f, amqp.Table{"task": "t", "id": "i", "timelimit": []any{int32(1), 2.5}}), "application/json")

	f.Fuzz(func(t *testing.T, body, headers []byte, contentType string) {
		h, err := readWireTable(headers)
		if err != nil {
			h = nil
		}
		d := amqp.Delivery{ContentType: contentType, ContentEncoding: "utf-8", Headers: h, Body: body}
		m, err := Decode(d)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if strings.Contains(err.Error(), "internal decoding error") {
				t.Fatalf("Decode panicked: %v", err)
			}
			return
		}
		if m.ID == "" || m.Task == "" || m.Args == nil || m.Kwargs == nil {
			t.Fatalf("accepted an incomplete message: %+v", m)
		}
		_ = SafeRepr(m.Args, 100)
		_ = Repr(m.Kwargs)
		pub, err := EncodeAt(m, time.Now())
		if err != nil {
			return // e.g. an eta whose UTC year leaves Python's range
		}
		d2, err := overTheWire(pub)
		if err != nil {
			t.Fatalf("encoded headers do not cross the wire: %v", err)
		}
		m2, err := Decode(d2)
		if err != nil {
			t.Fatalf("re-decoding our own encoding: %v\nbody %s", err, pub.Body)
		}
		// A time.Time is sent as ISO text (what kombu 5.2 does), so it
		// comes back as that text.
		if m2.ID != m.ID || m2.Task != m.Task || !same(m2.Args, asSent(m.Args)) || !same(m2.Kwargs, asSent(m.Kwargs)) {
			t.Fatalf("round trip changed the message\n got %+v\nwant %+v", m2, m)
		}
	})
}

func mustWire(f *testing.F, t amqp.Table) []byte {
	b, err := writeWireTable(t)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func asSent(v any) any {
	switch x := v.(type) {
	case time.Time:
		s, _ := kombuTime(x)
		return s
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = asSent(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = asSent(e)
		}
		return out
	}
	return v
}
