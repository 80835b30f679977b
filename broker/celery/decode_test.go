package celery

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func v2Headers(extra amqp.Table) amqp.Table {
	h := amqp.Table{"task": "tasks.add", "id": "id-1"}
	for k, v := range extra {
		h[k] = v
	}
	return h
}

func jsonDelivery(headers amqp.Table, body string) amqp.Delivery {
	return amqp.Delivery{ContentType: "application/json", ContentEncoding: "utf-8", Headers: headers, Body: []byte(body)}
}

func TestDecodeMalformed(t *testing.T) {
	ok := `[[], {}, {}]`
	tests := []struct {
		name   string
		d      amqp.Delivery
		reason string // a piece of the reason a person reads
	}{
		{"bad json", jsonDelivery(v2Headers(nil), `[[], {}`), "bad JSON"},
		{"trailing garbage", jsonDelivery(v2Headers(nil), ok+`x`), "extra data"},
		{"invalid utf-8", jsonDelivery(v2Headers(nil), "[[\"\xff\"], {}, {}]"), "UTF-8"},
		{"control char in string", jsonDelivery(v2Headers(nil), "[[\"a\x01\"], {}, {}]"), "control character"},
		{"2-element body", jsonDelivery(v2Headers(nil), `[[1], {}]`), "2-element body"},
		{"4-element body", jsonDelivery(v2Headers(nil), `[[1], {}, {}, 1]`), "4-element body"},
		{"string body", jsonDelivery(v2Headers(nil), `"hello"`), "want a list"},
		{"number body", jsonDelivery(v2Headers(nil), `42`), "want a list"},
		{"list body without task header", jsonDelivery(nil, ok), "no task header"},
		{"missing id", jsonDelivery(amqp.Table{"task": "t"}, ok), "missing task id"},
		{"empty task", jsonDelivery(amqp.Table{"task": "", "id": "i"}, ok), "missing task name"},
		{"null task", jsonDelivery(amqp.Table{"task": nil, "id": "i"}, ok), "missing task name"},
		{"task not a string", jsonDelivery(amqp.Table{"task": int32(5), "id": "i"}, ok), "task is a number"},
		{"v1 missing task", jsonDelivery(nil, `{"id": "i", "args": []}`), "missing task name"},
		{"v1 missing id", jsonDelivery(nil, `{"task": "t", "args": []}`), "missing task id"},
		{"args not a list", jsonDelivery(v2Headers(nil), `[{"a": 1}, {}, {}]`), "args is a object"},
		{"kwargs not an object", jsonDelivery(v2Headers(nil), `[[], [1], {}]`), "kwargs is a list"},
		{"v1 kwargs not an object", jsonDelivery(nil, `{"task": "t", "id": "i", "kwargs": "x"}`), "kwargs is a string"},
		{"embed not an object", jsonDelivery(v2Headers(nil), `[[], {}, [1]]`), "embed is a list"},
		{"callbacks not a list", jsonDelivery(v2Headers(nil), `[[], {}, {"callbacks": {}}]`), "embed callbacks"},
		{"chain element not a signature", jsonDelivery(v2Headers(nil), `[[], {}, {"chain": [1]}]`), "chain[0] is a number"},
		{"signature args", jsonDelivery(v2Headers(nil), `[[], {}, {"chord": {"task": "x", "args": 5}}]`), "chord args"},
		{"eta not a date", jsonDelivery(v2Headers(amqp.Table{"eta": "tomorrow"}), ok), "eta \"tomorrow\" is not an ISO-8601 date"},
		{"eta a number", jsonDelivery(v2Headers(amqp.Table{"eta": int32(5)}), ok), "eta is a number"},
		{"expires bad day", jsonDelivery(v2Headers(amqp.Table{"expires": "2024-02-30T00:00:00"}), ok), "expires"},
		{"retries a string", jsonDelivery(v2Headers(amqp.Table{"retries": "3"}), ok), "retries is a string"},
		{"timelimit shape", jsonDelivery(v2Headers(amqp.Table{"timelimit": []any{int32(1)}}), ok), "timelimit"},
		{"timelimit entry", jsonDelivery(v2Headers(amqp.Table{"timelimit": []any{"x", nil}}), ok), "timelimit[0]"},
		{"root_id a list", jsonDelivery(v2Headers(amqp.Table{"root_id": []any{}}), ok), "root_id is a list"},
		{"unknown typed value", jsonDelivery(v2Headers(nil), `[[{"__type__": "set", "__value__": []}], {}, {}]`), `unsupported typed value "set"`},
		{"bad typed datetime", jsonDelivery(v2Headers(nil), `[[{"__type__": "datetime", "__value__": "x"}], {}, {}]`), "typed datetime"},
		{"bad typed base64", jsonDelivery(v2Headers(nil), `[[{"__type__": "base64", "__value__": "***"}], {}, {}]`), "typed base64"},
		{"bad typed uuid", jsonDelivery(v2Headers(nil), `[[{"__type__": "uuid", "__value__": "xyz"}], {}, {}]`), "typed uuid"},
		{"typed value of wrong type", jsonDelivery(v2Headers(nil), `[[{"__type__": "decimal", "__value__": 1}], {}, {}]`), "typed decimal value is a number"},
		{"huge integer", jsonDelivery(v2Headers(nil), `[[`+strings.Repeat("9", 5000)+`], {}, {}]`), "more than 4300 digits"},
		{"too deep", jsonDelivery(v2Headers(nil), `[[`+strings.Repeat("[", 1100)+strings.Repeat("]", 1100)+`], {}, {}]`), "nested more than"},
		{"no content type", amqp.Delivery{Headers: v2Headers(nil), Body: []byte(ok)}, "no content_type"},
		{"pickle", amqp.Delivery{ContentType: "application/x-python-serialize", Headers: v2Headers(nil), Body: []byte("\x80\x04")}, "pickle"},
		{"yaml", amqp.Delivery{ContentType: "application/x-yaml", Headers: v2Headers(nil), Body: []byte("- 1")}, "yaml"},
		{"msgpack", amqp.Delivery{ContentType: "application/x-msgpack", Headers: v2Headers(nil), Body: []byte{0x93}}, "msgpack"},
		{"xml", amqp.Delivery{ContentType: "text/xml", Headers: v2Headers(nil), Body: []byte("<a/>")}, "unsupported content_type"},
		{"latin-1", amqp.Delivery{ContentType: "application/json", ContentEncoding: "latin-1", Headers: v2Headers(nil), Body: []byte(ok)}, "content_encoding \"latin-1\""},
		{"binary", amqp.Delivery{ContentType: "application/json", ContentEncoding: "binary", Headers: v2Headers(nil), Body: []byte(ok)}, "content_encoding"},
		{"charset", amqp.Delivery{ContentType: "application/json; charset=latin-1", Headers: v2Headers(nil), Body: []byte(ok)}, "charset"},
		{"gzip", amqp.Delivery{ContentType: "application/json", ContentEncoding: "utf-8", Headers: v2Headers(amqp.Table{"compression": "application/x-gzip"}), Body: []byte{0x78, 0x9c}}, "compressed body (application/x-gzip)"},
		{"unreadable header", jsonDelivery(v2Headers(amqp.Table{"x": struct{}{}}), ok), "header \"x\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode(tt.d)
			if err == nil {
				t.Fatalf("decoded %+v", m)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err %v does not wrap ErrMalformed", err)
			}
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("err %T is not a *MalformedError", err)
			}
			if !strings.Contains(me.Reason, tt.reason) {
				t.Errorf("reason %q does not say %q", me.Reason, tt.reason)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name  string
		d     amqp.Delivery
		check func(t *testing.T, m *Message)
	}{
		{"embed null", jsonDelivery(v2Headers(nil), `[[1], {}, null]`), func(t *testing.T, m *Message) {
			if m.Embed.Callbacks != nil || m.Embed.Chain != nil || m.Embed.Chord != nil {
				t.Errorf("embed %+v", m.Embed)
			}
		}},
		{"embed empty", jsonDelivery(v2Headers(nil), `[[1], {}, {}]`), func(t *testing.T, m *Message) {
			if m.Embed.Callbacks != nil || m.Args[0] != int64(1) {
				t.Errorf("%+v", m)
			}
		}},
		{"only task and id headers", jsonDelivery(v2Headers(nil), `[[], {}, {}]`), func(t *testing.T, m *Message) {
			if m.Protocol != 2 || m.RootID != "" || m.Retries != 0 || m.ETA != nil || m.TimeLimit[0] != nil {
				t.Errorf("%+v", m)
			}
		}},
		{"null args from a Go client", jsonDelivery(nil, `{"task": "t", "id": "i", "args": null, "kwargs": null}`), func(t *testing.T, m *Message) {
			if m.Args == nil || len(m.Args) != 0 || m.Kwargs == nil || m.Protocol != 1 {
				t.Errorf("%+v", m)
			}
		}},
		{"v1 taskset is the group", jsonDelivery(nil, `{"task": "t", "id": "i", "taskset": "g1", "group": "ignored"}`), func(t *testing.T, m *Message) {
			if m.GroupID != "g1" {
				t.Errorf("group %q", m.GroupID)
			}
		}},
		{"v1 unknown keys kept as headers", jsonDelivery(amqp.Table{"x-h": "v"}, `{"task": "t", "id": "i", "meth": "run"}`), func(t *testing.T, m *Message) {
			if m.Headers["meth"] != "run" || m.Headers["x-h"] != "v" {
				t.Errorf("headers %v", m.Headers)
			}
		}},
		{"hybrid headers win", jsonDelivery(v2Headers(amqp.Table{"retries": int32(5)}), `{"task": "x", "id": "other", "args": [1], "retries": 1}`), func(t *testing.T, m *Message) {
			if m.Protocol != 1 || m.ID != "id-1" || m.Task != "tasks.add" || m.Retries != 5 {
				t.Errorf("%+v", m)
			}
		}},
		{"naive eta is UTC", jsonDelivery(v2Headers(amqp.Table{"eta": "2030-01-01T12:00:00"}), `[[], {}, {}]`), func(t *testing.T, m *Message) {
			if !m.ETA.Equal(time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)) || m.ETA.Location() != time.UTC {
				t.Errorf("eta %v", m.ETA)
			}
		}},
		{"eta with offset, space separator, short fraction", jsonDelivery(v2Headers(amqp.Table{"eta": "2030-01-01 12:00:00.5+02:00"}), `[[], {}, {}]`), func(t *testing.T, m *Message) {
			if !m.ETA.Equal(time.Date(2030, 1, 1, 10, 0, 0, 500000000, time.UTC)) {
				t.Errorf("eta %v", m.ETA)
			}
		}},
		{"eta as an AMQP timestamp", jsonDelivery(v2Headers(amqp.Table{"eta": time.Unix(1900000000, 0)}), `[[], {}, {}]`), func(t *testing.T, m *Message) {
			if m.ETA.Unix() != 1900000000 {
				t.Errorf("eta %v", m.ETA)
			}
		}},
		{"empty eta string is none", jsonDelivery(v2Headers(amqp.Table{"eta": ""}), `[[], {}, {}]`), func(t *testing.T, m *Message) {
			if m.ETA != nil {
				t.Errorf("eta %v", m.ETA)
			}
		}},
		{"content type parameters and case", amqp.Delivery{ContentType: "application/json; charset=UTF-8", ContentEncoding: "UTF8", Headers: v2Headers(nil), Body: []byte(`[[], {}, {}]`)}, nil},
		{"empty content encoding", amqp.Delivery{ContentType: "application/json", Headers: v2Headers(nil), Body: []byte(`[[], {}, {}]`)}, nil},
		{"numbers", jsonDelivery(v2Headers(nil), `[[1, -9223372036854775808, 9223372036854775808, 1.0, 1e400, -1e400, 1e-400, NaN, Infinity, -Infinity, 2.5E3], {}, {}]`), func(t *testing.T, m *Message) {
			want := []any{int64(1), int64(math.MinInt64), json.Number("9223372036854775808"), 1.0, math.Inf(1), math.Inf(-1), 0.0, math.NaN(), math.Inf(1), math.Inf(-1), 2500.0}
			if !same(m.Args, want) {
				t.Errorf("args %s", show(m.Args))
			}
		}},
		{"strings", jsonDelivery(v2Headers(nil), `[["\u00e9\ud83d\ude00", "\ud800", "\/\b\f\n\r\t\"\\"], {}, {}]`), func(t *testing.T, m *Message) {
			want := []any{"é😀", "\ufffd", "/\b\f\n\r\t\"\\"}
			if !same(m.Args, want) {
				t.Errorf("args %q", m.Args)
			}
		}},
		{"duplicate keys keep the last", jsonDelivery(v2Headers(nil), `[[], {"a": 1, "a": 2}, {}]`), func(t *testing.T, m *Message) {
			if m.Kwargs["a"] != int64(2) {
				t.Errorf("kwargs %v", m.Kwargs)
			}
		}},
		{"header integer widths", jsonDelivery(v2Headers(amqp.Table{"x-a": int8(-1), "x-b": uint8(2), "x-c": int16(3), "x-d": int64(1 << 40), "x-e": float32(0.5),
			"x-f": amqp.Decimal{Scale: 2, Value: -1234}, "x-g": []byte("b"), "x-h": amqp.Table{"__type__": "uuid", "__value__": "{12345678-1234-5678-1234-567812345678}"}}), `[[], {}, {}]`), func(t *testing.T, m *Message) {
			want := map[string]any{"x-a": int64(-1), "x-b": int64(2), "x-c": int64(3), "x-d": int64(1 << 40), "x-e": 0.5,
				"x-f": "-12.34", "x-g": []byte("b"), "x-h": "12345678-1234-5678-1234-567812345678"}
			if !same(m.Headers, want) {
				t.Errorf("headers %s", show(m.Headers))
			}
		}},
		{"typed values anywhere", jsonDelivery(v2Headers(nil), `[[], {"d": {"__type__": "date", "__value__": "2024-02-29"}, "t": {"__type__": "time", "__value__": "13:14:15"}, "not typed": {"__type__": "x", "__value__": 1, "other": 2}}, {}]`), func(t *testing.T, m *Message) {
			if !m.Kwargs["d"].(time.Time).Equal(time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)) || m.Kwargs["t"] != "13:14:15" {
				t.Errorf("kwargs %v", m.Kwargs)
			}
			if _, ok := m.Kwargs["not typed"].(map[string]any); !ok {
				t.Errorf("a dict with extra keys is not a typed value: %v", m.Kwargs["not typed"])
			}
		}},
		{"signature extras kept", jsonDelivery(v2Headers(nil), `[[], {}, {"callbacks": [{"task": "cb", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false, "chord_size": 3}]}]`), func(t *testing.T, m *Message) {
			if m.Embed.Callbacks[0].Extra["chord_size"] != int64(3) {
				t.Errorf("extra %v", m.Embed.Callbacks[0].Extra)
			}
		}},
		{"delivery properties", amqp.Delivery{ContentType: "application/json", Headers: v2Headers(nil), Body: []byte(`[[], {}, {}]`), ReplyTo: "r", CorrelationId: "c", Priority: 3}, func(t *testing.T, m *Message) {
			if m.ReplyTo != "r" || m.CorrelationID != "c" || m.Priority != 3 {
				t.Errorf("%+v", m)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode(tt.d)
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

// TestEncodeNumbers checks that numbers keep their Python type: an int
// stays an int, a whole float stays a float, big integers stay exact.
func TestEncodeNumbers(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{[]any{1, int64(-2), uint64(math.MaxUint64), json.Number("123456789012345678901234567890")}, `[1, -2, 18446744073709551615, 123456789012345678901234567890]`},
		{[]any{1.0, 0.1, 1e100, float32(0.5), math.NaN(), math.Inf(-1)}, `[1.0, 0.1, 1e+100, 0.5, NaN, -Infinity]`},
		{map[string]any{"b": "é\n", "a": "😀"}, `{"a": "\ud83d\ude00", "b": "\u00e9\n"}`},
		{"\x00\x1f\x7f\u2028", `"\u0000\u001f\u007f\u2028"`},
		{[]byte("hi"), `{"__type__": "bytes", "__value__": "hi"}`},
		{[]byte{0xff}, `{"__type__": "base64", "__value__": "/w=="}`},
	}
	for _, tt := range tests {
		got, err := marshalValue(tt.in)
		if err != nil || string(got) != tt.want {
			t.Errorf("%v: %s (%v), want %s", tt.in, got, err, tt.want)
		}
		// And back again.
		if _, err := parseJSON(got); err != nil {
			t.Errorf("%s does not parse: %v", got, err)
		}
	}
}
