package celery

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrMalformed is what every decoding error wraps: the message can never
// be processed, so a worker should reject it without requeueing (a Python
// 5.2 worker crashes on some of these and the broker redelivers them to
// the next worker, forever).
var ErrMalformed = errors.New("celery: malformed message")

// MalformedError says why a message was refused.
type MalformedError struct {
	Reason string
}

func (e *MalformedError) Error() string { return "celery: malformed message: " + e.Reason }

// Unwrap makes errors.Is(err, ErrMalformed) hold.
func (e *MalformedError) Unwrap() error { return ErrMalformed }

func malformed(format string, args ...any) error {
	return &MalformedError{Reason: fmt.Sprintf(format, args...)}
}

// refusedTypes names the serializers kombu knows but a JSON-only worker
// must not accept (pickle executes code on load).
var refusedTypes = map[string]string{
	"application/x-python-serialize": "pickle",
	"application/x-yaml":             "yaml",
	"application/yaml":               "yaml",
	"application/x-msgpack":          "msgpack",
	"application/msgpack":            "msgpack",
	"application/data":               "raw data",
	"application/octet-stream":       "raw data",
}

// checkContent accepts what a Python worker with accept_content=['json']
// accepts: application/json in UTF-8, uncompressed.
func checkContent(contentType, contentEncoding string, headers amqp.Table) error {
	if contentType == "" {
		return malformed("no content_type (celery sends application/json)")
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return malformed("content_type %q: %v", contentType, err)
	}
	if name, ok := refusedTypes[mt]; ok {
		return malformed("content_type %s (%s) is refused: only JSON is accepted", mt, name)
	}
	if mt != "application/json" {
		return malformed("unsupported content_type %q: only application/json is accepted", contentType)
	}
	if cs, ok := params["charset"]; ok && !isUTF8(cs) {
		return malformed("unsupported charset %q: only utf-8 is accepted", cs)
	}
	if !isUTF8(contentEncoding) && contentEncoding != "" {
		return malformed("unsupported content_encoding %q: only utf-8 is accepted", contentEncoding)
	}
	if c, ok := headers["compression"]; ok && c != nil {
		return malformed("compressed body (%v) is refused: send it uncompressed", c)
	}
	return nil
}

func isUTF8(s string) bool {
	switch strings.ToLower(s) {
	case "utf-8", "utf8":
		return true
	}
	return false
}

// Decode reads a task message in any form a celery client sends it:
// protocol 2 (task and id in the headers, body [args, kwargs, embed]),
// protocol 1 (no task header, the body a dict) and the hybrid (a task
// header and a v1 dict body, read like v1 with the headers winning).
//
// Naive eta/expires times mean UTC, as in celery 5 (which converts naive
// times to UTC whatever the message says). A v1 body with "utc": false is
// the exception: its naive times are the sender's local time, the meaning
// that flag had for the clients that set it; a 5.2 worker reads them as
// UTC too.
//
// Every error wraps ErrMalformed; Decode never panics.
func Decode(d amqp.Delivery) (m *Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, malformed("internal decoding error: %v", r)
		}
	}()
	if err := checkContent(d.ContentType, d.ContentEncoding, d.Headers); err != nil {
		return nil, err
	}
	headers, err := fromTable(d.Headers)
	if err != nil {
		return nil, malformed("%v", err)
	}
	body, err := parseJSON(d.Body)
	if err != nil {
		return nil, malformed("%v", err)
	}
	_, hasTask := headers["task"]
	switch b := body.(type) {
	case []any:
		if !hasTask {
			return nil, malformed("a list body (protocol 2) but no task header")
		}
		m, err = decodeV2(b, headers)
	case map[string]any:
		if hasTask {
			m, err = decodeV1(b, headers, true)
		} else {
			m, err = decodeV1(b, headers, false)
		}
	default:
		return nil, malformed("body is a %s, want a list (protocol 2) or an object (protocol 1)", typeName(body))
	}
	if err != nil {
		return nil, err
	}
	m.ReplyTo = d.ReplyTo
	m.CorrelationID = d.CorrelationId
	m.Priority = d.Priority
	return m, nil
}

func decodeV2(body []any, h map[string]any) (*Message, error) {
	if len(body) != 3 {
		// A Python 5.2 worker crashes unpacking this, and the broker hands
		// it to the next worker; refusing it is the only way out.
		return nil, malformed("%d-element body: protocol 2 needs [args, kwargs, embed]", len(body))
	}
	m := &Message{Protocol: 2}
	var err error
	if m.Args, err = argsList(body[0], "args"); err != nil {
		return nil, err
	}
	if m.Kwargs, err = kwargsMap(body[1], "kwargs"); err != nil {
		return nil, err
	}
	switch e := body[2].(type) {
	case nil:
	case map[string]any:
		if m.Embed, err = decodeEmbed(e, true); err != nil {
			return nil, err
		}
	default:
		return nil, malformed("embed is a %s, want an object or null", typeName(body[2]))
	}
	if err := readFields(m, h, time.UTC); err != nil {
		return nil, err
	}
	for k, v := range h {
		if !modeledHeaders[k] {
			if m.Headers == nil {
				m.Headers = map[string]any{}
			}
			m.Headers[k] = v
		}
	}
	return m, nil
}

// decodeV1 follows celery/worker/strategy.py: proto1_to_proto2 for a pure
// v1 body, hybrid_to_proto2 when headers carry the task (body fields, then
// the headers on top).
func decodeV1(body map[string]any, h map[string]any, hybrid bool) (*Message, error) {
	m := &Message{Protocol: 1}
	var err error
	if m.Args, err = argsList(body["args"], "args"); err != nil {
		return nil, err
	}
	if m.Kwargs, err = kwargsMap(body["kwargs"], "kwargs"); err != nil {
		return nil, err
	}
	if m.Embed, err = decodeEmbed(map[string]any{
		"callbacks": body["callbacks"], "errbacks": body["errbacks"], "chord": body["chord"],
	}, false); err != nil {
		return nil, err
	}
	fields := map[string]any{}
	for k, v := range body {
		fields[k] = v
	}
	if ts, ok := body["taskset"]; ok && !hybrid {
		fields["group"] = ts
	}
	if hybrid {
		for k, v := range h {
			fields[k] = v
		}
	}
	naive := time.UTC
	if utc, ok := body["utc"]; ok && !truthy(utc) {
		naive = localZone
	}
	if err := readFields(m, fields, naive); err != nil {
		return nil, err
	}
	if !hybrid {
		// proto1_to_proto2 always recomputes these, without a size limit.
		m.ArgsRepr = SafeRepr(m.Args, 0)
		m.KwargsRepr = SafeRepr(m.Kwargs, 0)
	}
	for k, v := range body {
		if !modeledV1[k] {
			if m.Headers == nil {
				m.Headers = map[string]any{}
			}
			m.Headers[k] = v
		}
	}
	for k, v := range h {
		if hybrid && modeledHeaders[k] {
			continue
		}
		if m.Headers == nil {
			m.Headers = map[string]any{}
		}
		m.Headers[k] = v
	}
	return m, nil
}

// readFields fills the header-borne fields from h (the v2 headers, or the
// v1 body dict).
func readFields(m *Message, h map[string]any, naive *time.Location) error {
	var err error
	if m.Task, err = headerString(h, "task"); err != nil {
		return err
	}
	if m.Task == "" {
		return malformed("missing task name")
	}
	if m.ID, err = headerString(h, "id"); err != nil {
		return err
	}
	if m.ID == "" {
		return malformed("missing task id")
	}
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"shadow", &m.Shadow}, {"group", &m.GroupID}, {"root_id", &m.RootID},
		{"parent_id", &m.ParentID}, {"argsrepr", &m.ArgsRepr},
		{"kwargsrepr", &m.KwargsRepr}, {"origin", &m.Origin},
	} {
		if *f.dst, err = headerString(h, f.key); err != nil {
			return err
		}
	}
	if r, ok, err := headerInt(h, "retries"); err != nil {
		return err
	} else if ok {
		m.Retries = r
	}
	if gi, ok, err := headerInt(h, "group_index"); err != nil {
		return err
	} else if ok {
		m.GroupIndex = &gi
	}
	if m.ETA, err = headerTime(h, "eta", naive); err != nil {
		return err
	}
	if m.Expires, err = headerTime(h, "expires", naive); err != nil {
		return err
	}
	if m.TimeLimit, err = headerTimeLimit(h["timelimit"]); err != nil {
		return err
	}
	m.IgnoreResult = truthy(h["ignore_result"])
	return nil
}

func headerString(h map[string]any, key string) (string, error) {
	switch v := h[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	}
	return "", malformed("%s is a %s, want a string", key, typeName(h[key]))
}

func headerInt(h map[string]any, key string) (int, bool, error) {
	v, ok := h[key]
	if !ok || v == nil {
		return 0, false, nil
	}
	if n, ok := asInt(v); ok {
		return n, true, nil
	}
	return 0, false, malformed("%s is %s, want an integer", key, describe(v))
}

func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case int64:
		if n >= math.MinInt32 && n <= math.MaxInt32 {
			return int(n), true
		}
	case float64:
		if n == math.Trunc(n) && math.Abs(n) <= math.MaxInt32 {
			return int(n), true
		}
	}
	return 0, false
}

func headerTime(h map[string]any, key string, naive *time.Location) (*time.Time, error) {
	switch v := h[key].(type) {
	case nil:
		return nil, nil
	case time.Time:
		t := v.UTC()
		return &t, nil
	case string:
		if v == "" { // celery's maybe_iso8601 treats an empty string as None
			return nil, nil
		}
		t, err := parseISODateTime(v, naive)
		if err != nil {
			return nil, malformed("%s %q is not an ISO-8601 date: %v", key, v, err)
		}
		t = t.UTC()
		return &t, nil
	}
	return nil, malformed("%s is %s, want an ISO-8601 date", key, describe(h[key]))
}

func headerTimeLimit(v any) ([2]*float64, error) {
	var out [2]*float64
	if v == nil {
		return out, nil
	}
	l, ok := v.([]any)
	if !ok || len(l) != 2 {
		return out, malformed("timelimit is %s, want [hard, soft]", describe(v))
	}
	for i, e := range l {
		switch n := e.(type) {
		case nil:
		case int64:
			f := float64(n)
			out[i] = &f
		case float64:
			f := n
			out[i] = &f
		case json.Number:
			f, _ := n.Float64()
			out[i] = &f
		default:
			return out, malformed("timelimit[%d] is %s, want seconds or null", i, describe(e))
		}
	}
	return out, nil
}

func argsList(v any, what string) ([]any, error) {
	switch a := v.(type) {
	case nil: // gocelery and other non-Python clients send null for "no args"
		return []any{}, nil
	case []any:
		return a, nil
	}
	return nil, malformed("%s is %s, want a list", what, describe(v))
}

func kwargsMap(v any, what string) (map[string]any, error) {
	switch k := v.(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return k, nil
	}
	return nil, malformed("%s is %s, want an object", what, describe(v))
}

func decodeEmbed(e map[string]any, withChain bool) (Embed, error) {
	var out Embed
	var err error
	if out.Callbacks, err = signatureListFrom(e["callbacks"], "callbacks"); err != nil {
		return out, err
	}
	if out.Errbacks, err = signatureListFrom(e["errbacks"], "errbacks"); err != nil {
		return out, err
	}
	if withChain {
		if out.Chain, err = signatureListFrom(e["chain"], "chain"); err != nil {
			return out, err
		}
	}
	if c := e["chord"]; c != nil {
		s, err := signatureFrom(c, "chord")
		if err != nil {
			return out, err
		}
		out.Chord = &s
	}
	return out, nil
}

func signatureListFrom(v any, what string) ([]Signature, error) {
	if v == nil {
		return nil, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, malformed("embed %s is %s, want a list of signatures", what, describe(v))
	}
	out := make([]Signature, len(l))
	for i, e := range l {
		s, err := signatureFrom(e, fmt.Sprintf("%s[%d]", what, i))
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func signatureFrom(v any, what string) (Signature, error) {
	d, ok := v.(map[string]any)
	if !ok {
		return Signature{}, malformed("%s is %s, want a signature object", what, describe(v))
	}
	var s Signature
	var err error
	if s.Task, err = headerString(d, "task"); err != nil {
		return s, malformed("%s: %v", what, err.(*MalformedError).Reason)
	}
	if s.Args, err = argsList(d["args"], what+" args"); err != nil {
		return s, err
	}
	if d["kwargs"] != nil {
		if s.Kwargs, err = kwargsMap(d["kwargs"], what+" kwargs"); err != nil {
			return s, err
		}
	}
	if d["options"] != nil {
		if s.Options, err = kwargsMap(d["options"], what+" options"); err != nil {
			return s, err
		}
	}
	if s.SubtaskType, err = headerString(d, "subtask_type"); err != nil {
		return s, malformed("%s: %v", what, err.(*MalformedError).Reason)
	}
	s.Immutable = truthy(d["immutable"])
	for k, e := range d {
		if !signatureKeys[k] {
			if s.Extra == nil {
				s.Extra = map[string]any{}
			}
			s.Extra[k] = e
		}
	}
	return s, nil
}

// truthy is Python's bool() for decoded values.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case float64:
		return x != 0
	case json.Number:
		return string(x) != "0"
	case string:
		return x != ""
	case []byte:
		return len(x) != 0
	case []any:
		return len(x) != 0
	case map[string]any:
		return len(x) != 0
	}
	return true
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any, map[string]any:
		return "a " + typeName(v)
	}
	s := fmt.Sprintf("%v", v)
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return fmt.Sprintf("a %s (%s)", typeName(v), s)
}
