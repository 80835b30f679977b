package celery

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// debianPython is the interpreter that has python3-celery; the python3
// first on PATH may be another one without Debian's modules.
const debianPython = "/usr/bin/python3"

// TestPythonWorkerReadsGoMessages encodes messages in Go, writes their
// headers as amqp091-go puts them on the wire, and has celery 5.2 read
// them as a worker does (kombu Message, worker Request) and run them
// (Request.execute: the tracer, result store, chain and callback
// publishing). The messages celery publishes in turn are decoded in Go.
func TestPythonWorkerReadsGoMessages(t *testing.T) {
	if _, err := os.Stat(debianPython); err != nil {
		t.Skipf("skipping the Python cross-check: %s not found", debianPython)
	}
	if out, err := exec.Command(debianPython, "-c", "import celery, kombu, amqp").CombinedOutput(); err != nil {
		t.Skipf("skipping the Python cross-check: celery is not importable by %s (apt-get install python3-celery): %s", debianPython, out)
	}

	eta := time.Date(2031, 2, 3, 4, 5, 6, 789000000, time.UTC)
	expires := eta.Add(48 * time.Hour)
	hard, soft := 30.0, 20.5
	gi := 1
	big := json.Number("1180591620717411303424")
	cases := map[string]*Message{
		"fields": {
			ID: "go-1", Task: "tasks.add", Args: []any{2, 3}, ETA: &eta, Expires: &expires,
			TimeLimit: [2]*float64{&hard, &soft}, Retries: 2, RootID: "root-1", ParentID: "parent-1",
			GroupID: "group-1", GroupIndex: &gi, Shadow: "add-shadow", Origin: "gen1@go",
			ReplyTo: "reply-q", Priority: 5,
			Headers: map[string]any{"x-trace": "t-1", "x-count": 3, "x-big": int64(1) << 40, "x-list": []any{"a", 1.5}},
		},
		"values": {
			ID: "go-2", Task: "tasks.echo",
			Args: []any{big, 1.0, 1, "é😀 'q' \"d\"", nil, true, map[string]any{"b": []any{1, 2}, "a": "x"},
				[]any{}, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), math.Inf(1)},
			Kwargs: map[string]any{"f": 2.5, "n": -7, "s": "v"},
		},
		"chain": {
			ID: "go-3", Task: "tasks.add", Args: []any{1, 2}, RootID: "root-3", ReplyTo: "reply-q",
			Embed: Embed{
				Chain: []Signature{
					{Task: "tasks.add", Args: []any{10}, Options: map[string]any{"task_id": "go-3c"}},
					{Task: "tasks.mul", Args: []any{3}, Options: map[string]any{"task_id": "go-3b", "reply_to": "reply-q"}},
				},
				Callbacks: []Signature{{Task: "tasks.echo", Args: []any{"cb"}}},
			},
		},
		"ignore_result": {ID: "go-4", Task: "tasks.add", Args: []any{1}, IgnoreResult: true},
	}

	type input struct {
		Name            string         `json:"name"`
		HeadersAMQP     string         `json:"headers_amqp"`
		Body            string         `json:"body"`
		ContentType     string         `json:"content_type"`
		ContentEncoding string         `json:"content_encoding"`
		Properties      map[string]any `json:"properties"`
	}
	var in []input
	for name, m := range cases {
		pub, err := Encode(m)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		raw, err := writeWireTable(pub.Headers)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		in = append(in, input{
			Name: name, HeadersAMQP: base64.StdEncoding.EncodeToString(raw), Body: string(pub.Body),
			ContentType: pub.ContentType, ContentEncoding: pub.ContentEncoding,
			Properties: map[string]any{"correlation_id": pub.CorrelationId, "reply_to": pub.ReplyTo,
				"priority": pub.Priority, "delivery_mode": pub.DeliveryMode},
		})
	}
	dir := t.TempDir()
	inPath, outPath := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
	b, _ := json.Marshal(in)
	if err := os.WriteFile(inPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(debianPython, filepath.Join("testdata", "crosscheck.py"), inPath, outPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("crosscheck.py: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	all := value(t, raw).(map[string]any)
	seen := func(name string) map[string]any {
		s := all[name].(map[string]any)
		if e, ok := s["error"]; ok {
			t.Fatalf("%s: celery failed: %v", name, e)
		}
		return s
	}

	t.Run("fields", func(t *testing.T) {
		s := seen("fields")
		want := map[string]any{
			"id": "go-1", "type": "tasks.add", "name": "add-shadow",
			"eta": "2031-02-03T04:05:06.789000+00:00", "expires": "2031-02-05T04:05:06.789000+00:00",
			"time_limits": []any{int64(30), 20.5}, "argsrepr": "(2, 3)", "kwargsrepr": "{}",
			"root_id": "root-1", "parent_id": "parent-1", "group": "group-1", "group_index": int64(1),
			"retries": int64(2), "origin": "gen1@go", "ignore_result": false, "reply_to": "reply-q",
			"correlation_id": "go-1", "priority": int64(5), "retval": int64(5), "stored_status": "SUCCESS",
			"custom":     map[string]any{"x-trace": "t-1", "x-count": int64(3), "x-big": int64(1) << 40, "x-list": []any{"a", 1.5}},
			"embed_keys": []any{"callbacks", "chain", "chord", "errbacks"},
		}
		for k, w := range want {
			if !same(s[k], w) {
				t.Errorf("%s: celery saw %s, want %s", k, show(s[k]), show(w))
			}
		}
	})

	t.Run("values", func(t *testing.T) {
		s := seen("values")
		ret := s["retval"].(map[string]any)
		wantTypes := []any{"int", "float", "int", "str", "NoneType", "bool", "dict", "list", "str", "float"}
		if !same(ret["types"], wantTypes) {
			t.Errorf("celery's arg types %s, want %s", show(ret["types"]), show(wantTypes))
		}
		if !same(ret["kwarg_types"], map[string]any{"f": "float", "n": "int", "s": "str"}) {
			t.Errorf("celery's kwarg types %s", show(ret["kwarg_types"]))
		}
		args := ret["args"].([]any)
		if args[0] != json.Number("1180591620717411303424") || args[3] != "é😀 'q' \"d\"" || args[8] != "2024-01-02T03:04:05Z" {
			t.Errorf("celery's args %s", show(args))
		}
		// Our argsrepr is what celery would have computed itself, except
		// that, like a Python client, we show the time as the datetime it
		// was, where the receiving side only has its ISO text.
		ours := strings.Replace(s["argsrepr"].(string),
			"datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)", "'2024-01-02T03:04:05Z'", 1)
		if ours != s["python_argsrepr"] || s["kwargsrepr"] != s["python_kwargsrepr"] {
			t.Errorf("argsrepr %q / %q, celery computes %q / %q", s["argsrepr"], s["kwargsrepr"], s["python_argsrepr"], s["python_kwargsrepr"])
		}
	})

	t.Run("chain", func(t *testing.T) {
		s := seen("chain")
		if s["retval"] != int64(3) || !same(s["chain_tasks"], []any{"tasks.add", "tasks.mul"}) {
			t.Fatalf("retval %v, chain %v", s["retval"], s["chain_tasks"])
		}
		pubs := s["published"].([]any)
		var next, callback *Message
		for _, p := range pubs {
			m := decodePublished(t, p.(map[string]any))
			switch m.Task {
			case "tasks.mul":
				next = m
			case "tasks.echo":
				callback = m
			}
		}
		if next == nil || callback == nil {
			t.Fatalf("celery published %d messages, want the next chain step and the callback", len(pubs))
		}
		// Chain: the last element runs next, with the result prepended,
		// its own id, parent = us, root kept, the rest of the chain.
		if next.ID != "go-3b" || !same(next.Args, []any{int64(3), int64(3)}) || next.ParentID != "go-3" ||
			next.RootID != "root-3" || next.ReplyTo != "reply-q" || len(next.Embed.Chain) != 1 || next.Embed.Chain[0].Task != "tasks.add" {
			t.Errorf("next chain step %+v", next)
		}
		if !same(callback.Args, []any{int64(3), "cb"}) || callback.ParentID != "go-3" || callback.RootID != "root-3" {
			t.Errorf("callback %+v", callback)
		}
	})

	t.Run("ignore_result", func(t *testing.T) {
		s := seen("ignore_result")
		if s["ignore_result"] != true || s["stored_status"] != "PENDING" {
			t.Errorf("ignore_result %v, stored %v", s["ignore_result"], s["stored_status"])
		}
	})
}

// decodePublished decodes, with Decode, a message celery published.
func decodePublished(t *testing.T, p map[string]any) *Message {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(p["headers_amqp"].(string))
	if err != nil {
		t.Fatal(err)
	}
	h, err := readWireTable(raw)
	if err != nil {
		t.Fatal(err)
	}
	props := p["properties"].(map[string]any)
	m, err := Decode(amqp.Delivery{
		Headers: h, ContentType: p["content_type"].(string), ContentEncoding: p["content_encoding"].(string),
		Body: []byte(p["body"].(string)), CorrelationId: strOr(props["correlation_id"]), ReplyTo: strOr(props["reply_to"]),
	})
	if err != nil {
		t.Fatalf("decoding what celery published: %v", err)
	}
	return m
}
