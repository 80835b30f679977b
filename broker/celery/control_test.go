package celery

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestControlRequestGolden(t *testing.T) {
	expires := time.Unix(1700000001, 500000000).UTC()
	tests := []struct {
		golden string
		want   ControlRequest
	}{
		{"control_ping", ControlRequest{Method: "ping", Arguments: map[string]any{}, Destination: []string{"worker1@golden"},
			Ticket: "ticket-1", ReplyExchange: ReplyPidboxExchange, ReplyRoutingKey: "c0ffee00-0000-4000-8000-000000000000",
			Clock: 10, Expires: &expires}},
		{"control_cast", ControlRequest{Method: "enable_events", Arguments: map[string]any{}, Clock: 10}},
		{"control_pattern", ControlRequest{Method: "active", Arguments: map[string]any{"safe": nil}, Pattern: "worker*@golden", Matcher: "glob",
			Ticket: "ticket-2", ReplyExchange: ReplyPidboxExchange, ReplyRoutingKey: "c0ffee00-0000-4000-8000-000000000000",
			Clock: 10, Expires: &expires}},
		{"control_revoke", ControlRequest{Method: "revoke", Arguments: map[string]any{"task_id": []any{"a", "b"}, "terminate": true, "signal": "SIGKILL"},
			Ticket: "ticket-3", ReplyExchange: ReplyPidboxExchange, ReplyRoutingKey: "c0ffee00-0000-4000-8000-000000000000",
			Clock: 10, Expires: &expires}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			g := goldenNamed(t, tt.golden)
			if g.Exchange != PidboxExchange {
				t.Errorf("celery published to %q", g.Exchange)
			}
			got, err := DecodeControl(g.delivery(t))
			if err != nil {
				t.Fatal(err)
			}
			if !sameRequest(got, &tt.want) {
				t.Errorf("DecodeControl\n got %+v\nwant %+v", got, tt.want)
			}
			if got.WantsReply() != (tt.want.Ticket != "") {
				t.Errorf("WantsReply = %v", got.WantsReply())
			}
			pub, err := EncodeControl(&tt.want)
			if err != nil {
				t.Fatal(err)
			}
			comparePublishing(t, g, pub)
		})
	}
}

func sameRequest(a, b *ControlRequest) bool {
	ta, tb := a.Expires, b.Expires
	a2, b2 := *a, *b
	a2.Expires, b2.Expires = nil, nil
	if (ta == nil) != (tb == nil) || ta != nil && !ta.Equal(*tb) {
		return false
	}
	aj, _ := json.Marshal(a2)
	bj, _ := json.Marshal(b2)
	return string(aj) == string(bj)
}

func TestControlReplyGolden(t *testing.T) {
	g := goldenNamed(t, "control_reply")
	p := g.params(t)
	pub, err := EncodeControlReply(p["hostname"].(string), p["ticket"].(string), uint64(p["clock"].(int64)), map[string]any{"ok": "pong"})
	if err != nil {
		t.Fatal(err)
	}
	comparePublishing(t, g, pub)
	if g.Exchange != ReplyPidboxExchange {
		t.Errorf("celery replied to %q", g.Exchange)
	}
}

// TestControlForGolden checks For against kombu's Node.handle_message on
// the same requests and node names.
func TestControlForGolden(t *testing.T) {
	g := goldenNamed(t, "control_for")
	var cases []struct {
		Hostname string `json:"hostname"`
		Request  struct {
			Destination []string `json:"destination"`
			Pattern     string   `json:"pattern"`
			Matcher     string   `json:"matcher"`
		} `json:"request"`
		For bool `json:"for"`
	}
	if err := json.Unmarshal(g.Cases, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		r := ControlRequest{Method: "ping", Destination: c.Request.Destination, Pattern: c.Request.Pattern, Matcher: c.Request.Matcher}
		if got := r.For(c.Hostname); got != c.For {
			t.Errorf("%+v For(%q) = %v, kombu says %v", c.Request, c.Hostname, got, c.For)
		}
	}
}

func TestFnmatch(t *testing.T) {
	tests := []struct {
		name, pattern string
		want          bool
	}{
		{"worker1@host", "worker*", true},
		{"worker1@host", "*@host", true},
		{"worker1@host", "worker?@host", true},
		{"worker12@host", "worker?@host", false},
		{"a/b", "a*", true}, // '*' crosses '/', unlike path.Match
		{"[x", "[x", true},  // an unclosed '[' is literal
		{"]", "[]]", true},
		{"a", "[!]a]", false},
		{"b", "[!]a]", true},
		{"-", "[a-]", true},
		{"b", "[a-c]", true},
		{"b", "[c-a]", false}, // an empty range matches nothing
		{`a\b`, `a\b`, true},  // no backslash escapes
		{"x", "[]", false},
		{"x", "[!]", false}, // "[!]" is literal text
		{"[!]", "[!]", true},
		{"", "*", true},
		{"abc", "a**c", true},
		{"Worker", "worker", false},
	}
	for _, tt := range tests {
		if got := fnmatch(tt.name, tt.pattern); got != tt.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", tt.name, tt.pattern, got, tt.want)
		}
	}
}

func TestDecodeControlMalformed(t *testing.T) {
	tests := []struct {
		name string
		body string
		ct   string
	}{
		{"not json", `{`, "application/json"},
		{"list", `[]`, "application/json"},
		{"no method", `{"arguments": {}}`, "application/json"},
		{"arguments list", `{"method": "ping", "arguments": []}`, "application/json"},
		{"destination number", `{"method": "ping", "destination": 5}`, "application/json"},
		{"destination entry", `{"method": "ping", "destination": [5]}`, "application/json"},
		{"reply_to string", `{"method": "ping", "reply_to": "x"}`, "application/json"},
		{"pickle", `{"method": "ping"}`, "application/x-python-serialize"},
	}
	for _, tt := range tests {
		_, err := DecodeControl(amqp.Delivery{ContentType: tt.ct, ContentEncoding: "utf-8", Body: []byte(tt.body)})
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", tt.name, err)
		}
	}
}

func TestDecodeControlLenient(t *testing.T) {
	d := amqp.Delivery{ContentType: "application/json", Body: []byte(`{"method": "ping", "arguments": null, "destination": "w@h", "extra": 1}`)}
	r, err := DecodeControl(d)
	if err != nil {
		t.Fatal(err)
	}
	if r.Arguments == nil || len(r.Destination) != 1 || !r.For("w@h") || r.For("other") || r.Expires != nil || r.WantsReply() {
		t.Errorf("got %+v", r)
	}
}
