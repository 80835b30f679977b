package celery

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestDecodeGoldenTasks(t *testing.T) {
	for _, g := range goldensOf(t, "task") {
		t.Run(g.name, func(t *testing.T) {
			if p := g.params(t); p["local_offset_seconds"] != nil {
				old := localZone
				localZone = time.FixedZone("sender", int(p["local_offset_seconds"].(int64)))
				defer func() { localZone = old }()
			}
			m, err := Decode(g.delivery(t))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			checkAgainstExpect(t, m, g.expect(t))
		})
	}
}

// checkAgainstExpect asserts every field of m against the worker's view
// that gen_golden.py recorded.
func checkAgainstExpect(t *testing.T, m *Message, want map[string]any) {
	t.Helper()
	eqs := []struct {
		field     string
		got, want any
	}{
		{"protocol", int64(m.Protocol), want["protocol"]},
		{"id", m.ID, want["id"]},
		{"task", m.Task, want["task"]},
		{"retries", int64(m.Retries), want["retries"]},
		{"root_id", m.RootID, want["root_id"]},
		{"parent_id", m.ParentID, want["parent_id"]},
		{"group_id", m.GroupID, want["group_id"]},
		{"shadow", m.Shadow, want["shadow"]},
		{"origin", m.Origin, want["origin"]},
		{"ignore_result", m.IgnoreResult, want["ignore_result"]},
		{"argsrepr", m.ArgsRepr, want["argsrepr"]},
		{"kwargsrepr", m.KwargsRepr, want["kwargsrepr"]},
		{"reply_to", m.ReplyTo, want["reply_to"]},
		{"correlation_id", m.CorrelationID, want["correlation_id"]},
		{"priority", int64(m.Priority), want["priority"]},
		{"args", m.Args, want["args"]},
		{"kwargs", m.Kwargs, want["kwargs"]},
		{"embed", toValue(t, m.Embed.object()), want["embed"]},
		{"custom_headers", orEmpty(m.Headers), want["custom_headers"]},
	}
	for _, e := range eqs {
		if !same(e.got, e.want) {
			t.Errorf("%s = %s, want %s", e.field, show(e.got), show(e.want))
		}
	}
	var gi any
	if m.GroupIndex != nil {
		gi = int64(*m.GroupIndex)
	}
	if !same(gi, want["group_index"]) {
		t.Errorf("group_index = %v, want %v", gi, want["group_index"])
	}
	for _, f := range []struct {
		name string
		got  *time.Time
	}{{"eta", m.ETA}, {"expires", m.Expires}} {
		w := optTime(t, want[f.name])
		switch {
		case (f.got == nil) != (w == nil):
			t.Errorf("%s = %v, want %v", f.name, f.got, w)
		case w != nil && (!f.got.Equal(*w) || f.got.Location() != time.UTC):
			t.Errorf("%s = %v, want %v in UTC", f.name, f.got, w)
		}
	}
	tl := want["timelimit"].([]any)
	for i, w := range tl {
		got := m.TimeLimit[i]
		switch w := w.(type) {
		case nil:
			if got != nil {
				t.Errorf("timelimit[%d] = %v, want null", i, *got)
			}
		case int64:
			if got == nil || *got != float64(w) {
				t.Errorf("timelimit[%d] = %v, want %d", i, got, w)
			}
		case float64:
			if got == nil || *got != w {
				t.Errorf("timelimit[%d] = %v, want %v", i, got, w)
			}
		}
	}
}

// TestEncodeGoldenTasks re-encodes each decoded protocol 2 golden and
// compares the result with what celery published: properties, headers
// with their AMQP types, and the body as JSON values.
func TestEncodeGoldenTasks(t *testing.T) {
	for _, g := range goldensOf(t, "task") {
		m, err := Decode(g.delivery(t))
		if err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
		if m.Protocol != 2 {
			continue
		}
		t.Run(g.name, func(t *testing.T) {
			now, _ := parseISODateTime(g.params(t)["now"].(string), time.UTC)
			pub, err := EncodeAt(m, now)
			if err != nil {
				t.Fatal(err)
			}
			comparePublishing(t, g, pub)
			// Byte for byte, too, unless Python's dict order (insertion)
			// differs from ours (sorted keys) in that message.
			if !pythonOrderedDicts[g.name] && string(pub.Body) != g.Body {
				t.Errorf("body bytes\n got %s\nwant %s", pub.Body, g.Body)
			}
		})
	}
}

// pythonOrderedDicts are goldens with a dict whose keys Python did not
// write in sorted order.
var pythonOrderedDicts = map[string]bool{
	"task_v2_chain":          true, // options {"task_id", "reply_to"}
	"task_v2_unicode_nested": true, // kwargs in call order
}

func comparePublishing(t *testing.T, g *golden, pub amqp.Publishing) {
	t.Helper()
	props := []struct {
		name      string
		got, want any
	}{
		{"content_type", pub.ContentType, g.Properties.ContentType},
		{"content_encoding", pub.ContentEncoding, g.Properties.ContentEncoding},
		{"delivery_mode", pub.DeliveryMode, g.Properties.DeliveryMode},
		{"priority", pub.Priority, g.Properties.Priority},
		{"correlation_id", pub.CorrelationId, g.Properties.CorrelationID},
		{"reply_to", pub.ReplyTo, g.Properties.ReplyTo},
		{"expiration", pub.Expiration, g.Properties.Expiration},
	}
	for _, p := range props {
		if p.got != p.want {
			t.Errorf("property %s = %v, want %v", p.name, p.got, p.want)
		}
	}
	want := g.headers(t)
	got := amqp.Table{}
	for k, v := range pub.Headers {
		got[k] = v
	}
	// Message keeps eta/expires in UTC, so an offset the client wrote
	// comes back as the same instant in +00:00.
	for _, k := range []string{"eta", "expires"} {
		if w, ok := want[k].(string); ok {
			if g, ok := got[k].(string); ok && optTime(t, g).Equal(*optTime(t, w)) {
				got[k] = w
			}
		}
	}
	for _, d := range diffTables(got, want) {
		t.Errorf("header %s", d)
	}
	if gb, wb := value(t, pub.Body), value(t, []byte(g.Body)); !same(gb, wb) {
		t.Errorf("body\n got %s\nwant %s", pub.Body, g.Body)
	}
}

// TestEncodeHandBuilt builds messages field by field, as worker code
// does, and checks them against celery's output: computed argsrepr,
// root_id defaulting, eta/expires formatting, time limits.
func TestEncodeHandBuilt(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	f := func(v float64) *float64 { return &v }
	idx := 4
	base := func(id, task string) *Message {
		return &Message{ID: id, Task: task, Origin: "gen4242@golden", ReplyTo: "c0ffee00-0000-4000-8000-000000000000"}
	}
	tests := []struct {
		golden string
		build  func() *Message
	}{
		{"task_v2_plain", func() *Message {
			m := base("d1b2c3d4-0000-4000-8000-000000000001", "tasks.add")
			m.Args, m.Kwargs = []any{2, 3}, map[string]any{"z": 4}
			return m
		}},
		{"task_v2_empty", func() *Message { return base("d1b2c3d4-0000-4000-8000-000000000002", "tasks.add") }},
		{"task_v2_countdown", func() *Message {
			m := base("d1b2c3d4-0000-4000-8000-000000000003", "tasks.add")
			m.Args, m.ETA = []any{1, 1}, at(30*time.Second)
			return m
		}},
		{"task_v2_expires", func() *Message {
			m := base("d1b2c3d4-0000-4000-8000-000000000005", "tasks.add")
			m.Args, m.Expires = []any{1}, at(60*time.Second)
			return m
		}},
		{"task_v2_timelimit", func() *Message {
			m := base("d1b2c3d4-0000-4000-8000-000000000007", "tasks.add")
			m.Args, m.TimeLimit = []any{1}, [2]*float64{f(30), f(20.5)}
			return m
		}},
		{"task_v2_link", func() *Message {
			m := base("d1b2c3d4-0000-4000-8000-000000000008", "tasks.add")
			m.Args = []any{2, 2}
			m.Embed.Callbacks = []Signature{{Task: "tasks.mul", Args: []any{10}}}
			m.Embed.Errbacks = []Signature{{Task: "tasks.on_error", Args: []any{"x"}, Immutable: true}}
			return m
		}},
		{"task_v2_ignore_result", func() *Message {
			m := base("d1b2c3d4-0000-4000-8000-000000000009", "tasks.add")
			m.Args, m.IgnoreResult = []any{1, 2}, true
			return m
		}},
		{"task_v2_custom_headers", func() *Message {
			m := base("d1b2c3d4-0000-4000-8000-00000000000a", "tasks.render")
			m.Args, m.Priority, m.Shadow = []any{"scene.blend"}, 7, "render[scene.blend]"
			m.Headers = map[string]any{"x-trace": "abc-123", "x-attempt": 3, "x-ratio": 0.5,
				"x-flags": []string{"a", "b"}, "x-meta": map[string]any{"k": "v", "n": nil}}
			return m
		}},
		{"task_v2_retry_like", func() *Message {
			m := base("d1b2c3d4-0000-4000-8000-00000000000d", "tasks.add")
			m.Args, m.Retries, m.RootID, m.ParentID = []any{1, 2}, 3, "root-1", "parent-1"
			m.GroupID, m.GroupIndex, m.ReplyTo = "group-1", &idx, "client-reply"
			return m
		}},
		{"task_v2_long_repr", func() *Message {
			m := base("d1b2c3d4-0000-4000-8000-00000000000c", "tasks.render")
			frames := make([]string, 200)
			for i := range frames {
				frames[i] = "frame-" + leftPad(i)
			}
			m.Args = []any{frames}
			m.Kwargs = map[string]any{"opts": map[string]any{"a": map[string]any{"b": map[string]any{"c": map[string]any{"d": 1}}}}}
			return m
		}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			g := goldenNamed(t, tt.golden)
			pub, err := EncodeAt(tt.build(), now)
			if err != nil {
				t.Fatal(err)
			}
			comparePublishing(t, g, pub)
		})
	}
}

func leftPad(i int) string {
	s := []byte("0000")
	for p := 3; i > 0; p-- {
		s[p] = byte('0' + i%10)
		i /= 10
	}
	return string(s)
}

// TestArgsReprMatchesCelery recomputes argsrepr/kwargsrepr for every v2
// golden and compares with the header celery wrote.
func TestArgsReprMatchesCelery(t *testing.T) {
	for _, g := range goldensOf(t, "task") {
		m, err := Decode(g.delivery(t))
		if err != nil || m.Protocol != 2 {
			continue
		}
		if len(m.Kwargs) > 1 {
			continue // Python keeps insertion order, Go sorts keys
		}
		if got := ArgsRepr(m.Args); got != m.ArgsRepr {
			t.Errorf("%s: ArgsRepr = %q, celery wrote %q", g.name, got, m.ArgsRepr)
		}
		if got := KwargsRepr(m.Kwargs); got != m.KwargsRepr {
			t.Errorf("%s: KwargsRepr = %q, celery wrote %q", g.name, got, m.KwargsRepr)
		}
	}
}

func TestDecodeTypedGolden(t *testing.T) {
	g := goldenNamed(t, "task_v2_typed_kombu53")
	m, err := Decode(g.delivery(t))
	if err != nil {
		t.Fatal(err)
	}
	want := g.expect(t)
	if got, w := m.Args, fromMarkers(t, want["args"]); !same(got, w) {
		t.Errorf("args\n got %s\nwant %s", show(got), show(w))
	}
	if got, w := m.Kwargs, fromMarkers(t, want["kwargs"]); !same(got, w) {
		t.Errorf("kwargs\n got %s\nwant %s", show(got), show(w))
	}
	// An offset is kept on the value; the instant is what matters.
	if tm := m.Args[1].(time.Time); tm.Format(time.RFC3339) != "2024-01-02T03:04:05-02:00" {
		t.Errorf("offset not kept: %v", tm)
	}
}

// fromMarkers turns the generator's {"time": iso} and {"bytes": b64}
// markers into the Go values the decoder produces.
func fromMarkers(t *testing.T, v any) any {
	switch x := v.(type) {
	case map[string]any:
		if s, ok := x["time"].(string); ok && len(x) == 1 {
			return *optTime(t, s)
		}
		if s, ok := x["bytes"].(string); ok && len(x) == 1 {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		out := map[string]any{}
		for k, e := range x {
			out[k] = fromMarkers(t, e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fromMarkers(t, e)
		}
		return out
	}
	return v
}

func TestV1LocalTimeDiffersFromPython52(t *testing.T) {
	g := goldenNamed(t, "task_v1_local")
	if g.PythonETA == strOr(g.expect(t)["eta"]) {
		t.Fatalf("golden no longer shows the difference: %s", g.PythonETA)
	}
}

// TestRoundTrip encodes messages, passes the headers through the AMQP
// table encoding and decodes them again.
func TestRoundTrip(t *testing.T) {
	eta := time.Date(2030, 1, 2, 3, 4, 5, 600000000, time.UTC)
	exp := eta.Add(time.Hour)
	hard, soft := 60.0, 45.5
	gi := 2
	tests := []struct {
		name string
		m    Message
	}{
		{"minimal", Message{ID: "id-1", Task: "t"}},
		{"everything", Message{
			ID: "id-2", Task: "render.frame",
			Args:   []any{int64(1), 2.5, "ü", nil, true, []any{int64(1)}, map[string]any{"a": "b"}, json.Number("1180591620717411303424")},
			Kwargs: map[string]any{"when": eta, "raw": []byte{0, 1, 255}, "f": 1.0},
			Embed: Embed{
				Callbacks: []Signature{{Task: "cb", Args: []any{}, Kwargs: map[string]any{}, Options: map[string]any{"queue": "q"}}},
				Errbacks:  []Signature{{Task: "eb", Args: []any{"x"}, Kwargs: map[string]any{}, Options: map[string]any{}, Immutable: true}},
				Chain: []Signature{
					{Task: "last", Args: []any{}, Kwargs: map[string]any{}, Options: map[string]any{"task_id": "c2"}},
					{Task: "next", Args: []any{int64(3)}, Kwargs: map[string]any{}, Options: map[string]any{"task_id": "c1"}, Extra: map[string]any{"chord_size": int64(2)}},
				},
				Chord: &Signature{Task: "celery.chord_unlock", Args: []any{}, Kwargs: map[string]any{}, Options: map[string]any{}, SubtaskType: "chord"},
			},
			Retries: 4, ETA: &eta, Expires: &exp, TimeLimit: [2]*float64{&hard, &soft},
			RootID: "root", ParentID: "parent", GroupID: "g", GroupIndex: &gi,
			Shadow: "shadow-name", Origin: "gen1@host", IgnoreResult: true,
			ArgsRepr: "(custom)", KwargsRepr: "{custom}",
			ReplyTo: "reply-q", Priority: 9,
			Headers: map[string]any{"x-int": int64(7), "x-big": int64(1 << 40), "x-list": []any{"a", int64(1)}, "x-map": map[string]any{"k": 1.5}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := Encode(&tt.m)
			if err != nil {
				t.Fatal(err)
			}
			d, err := overTheWire(pub)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(d)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.m
			want.Protocol = 2
			want.CorrelationID = want.ID
			if want.RootID == "" {
				want.RootID = want.ID
			}
			if want.Origin == "" {
				want.Origin = anonNodename()
			}
			if want.ArgsRepr == "" {
				want.ArgsRepr = ArgsRepr(want.Args)
				want.KwargsRepr = KwargsRepr(want.Kwargs)
			}
			if want.Args == nil {
				want.Args = []any{}
			}
			if want.Kwargs == nil {
				want.Kwargs = map[string]any{}
			}
			gv, wv := toValue(t, messageFields(got)), toValue(t, messageFields(&want))
			if !same(gv, wv) {
				t.Errorf("round trip\n got %s\nwant %s", show(gv), show(wv))
			}
			if got.Kwargs["raw"] != nil && string(got.Kwargs["raw"].([]byte)) != "\x00\x01\xff" {
				t.Errorf("bytes did not survive: %v", got.Kwargs["raw"])
			}
		})
	}
}

// messageFields lists a Message's fields as a comparable value.
func messageFields(m *Message) map[string]any {
	ptr := func(t *time.Time) any {
		if t == nil {
			return nil
		}
		return t.UTC()
	}
	f := func(p *float64) any {
		if p == nil {
			return nil
		}
		return *p
	}
	var gi any
	if m.GroupIndex != nil {
		gi = *m.GroupIndex
	}
	return map[string]any{
		"protocol": m.Protocol, "id": m.ID, "task": m.Task, "args": m.Args, "kwargs": m.Kwargs,
		"embed": m.Embed.object(), "retries": m.Retries, "eta": ptr(m.ETA), "expires": ptr(m.Expires),
		"timelimit": []any{f(m.TimeLimit[0]), f(m.TimeLimit[1])}, "root_id": m.RootID,
		"parent_id": m.ParentID, "group_id": m.GroupID, "group_index": gi, "shadow": m.Shadow,
		"origin": m.Origin, "ignore_result": m.IgnoreResult, "argsrepr": m.ArgsRepr,
		"kwargsrepr": m.KwargsRepr, "reply_to": m.ReplyTo, "correlation_id": m.CorrelationID,
		"priority": int(m.Priority), "headers": orEmpty(m.Headers),
	}
}

func TestEncodeExpiration(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   time.Duration
		want string
	}{
		{60 * time.Second, "60000"},
		{90*time.Second + 500*time.Microsecond, "90000"},
		{1500 * time.Microsecond, "1"},
		{-5 * time.Second, "0"}, // celery clamps a past expiry to 0
	}
	for _, tt := range tests {
		exp := now.Add(tt.in)
		pub, err := EncodeAt(&Message{ID: "i", Task: "t", Expires: &exp}, now)
		if err != nil {
			t.Fatal(err)
		}
		if pub.Expiration != tt.want {
			t.Errorf("expires in %v: expiration %q, want %q", tt.in, pub.Expiration, tt.want)
		}
	}
	pub, _ := EncodeAt(&Message{ID: "i", Task: "t"}, now)
	if pub.Expiration != "" {
		t.Errorf("no expires: expiration %q, want none", pub.Expiration)
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		m    *Message
	}{
		{"nil", nil},
		{"no id", &Message{Task: "t"}},
		{"no task", &Message{ID: "i"}},
		{"unencodable arg", &Message{ID: "i", Task: "t", Args: []any{make(chan int)}}},
		{"eta out of range", &Message{ID: "i", Task: "t", ETA: func() *time.Time { x := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC); return &x }()}},
		{"header too big", &Message{ID: "i", Task: "t", Headers: map[string]any{"x": json.Number("99999999999999999999")}}},
	}
	for _, tt := range tests {
		if _, err := Encode(tt.m); err == nil {
			t.Errorf("%s: Encode succeeded", tt.name)
		}
	}
}

// TestEncodeTimesInArgs checks how Go times are written inside a body:
// kombu 5.2's style, which every kombu reads.
func TestEncodeTimesInArgs(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), `"2024-01-02T03:04:05Z"`},
		{time.Date(2024, 1, 2, 3, 4, 5, 600000000, time.UTC), `"2024-01-02T03:04:05.600000Z"`},
		{time.Date(2024, 1, 2, 3, 4, 5, 1999, time.UTC), `"2024-01-02T03:04:05.000001Z"`},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("", 19800)), `"2024-01-02T03:04:05+05:30"`},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("", -7200)), `"2024-01-02T03:04:05-02:00"`},
	}
	for _, tt := range tests {
		got, err := marshalValue(tt.in)
		if err != nil || string(got) != tt.want {
			t.Errorf("%v: %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestTableInt(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want int64
		ok   bool
	}{
		{int64(7), 7, true}, {int32(-3), -3, true}, {int16(2), 2, true}, {int8(1), 1, true},
		{uint8(255), 255, true}, {uint32(9), 9, true}, {"7", 0, false}, {7.0, 0, false}, {nil, 0, false},
	} {
		n, ok := TableInt(amqp.Table{"k": tc.v}, "k")
		if n != tc.want || ok != tc.ok {
			t.Errorf("TableInt(%T %v) = %d, %v; want %d, %v", tc.v, tc.v, n, ok, tc.want, tc.ok)
		}
	}
}
