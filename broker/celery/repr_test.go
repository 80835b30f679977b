package celery

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// TestReprGolden compares Repr and SafeRepr with Python's repr() and
// celery's saferepr() on the same values, decoded from the JSON Python
// wrote for them.
func TestReprGolden(t *testing.T) {
	g := goldenNamed(t, "repr")
	var cases []struct {
		JSON          string            `json:"json"`
		Repr          string            `json:"repr"`
		SafeRepr      map[string]string `json:"saferepr"`
		ArgsRepr      *string           `json:"argsrepr"`
		ArgsReprShort *string           `json:"argsrepr_short"`
	}
	if err := json.Unmarshal(g.Cases, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		v := value(t, []byte(c.JSON))
		if got := Repr(v); got != c.Repr {
			t.Errorf("Repr(%s)\n got %s\nwant %s", c.JSON, got, c.Repr)
		}
		for maxlen, want := range c.SafeRepr {
			n := 0
			if err := json.Unmarshal([]byte(maxlen), &n); err != nil {
				t.Fatal(err)
			}
			if got := SafeRepr(v, n); got != want {
				t.Errorf("SafeRepr(%s, %d)\n got %s\nwant %s", c.JSON, n, got, want)
			}
		}
		if c.ArgsRepr != nil {
			if got := ArgsRepr(v.([]any)); got != *c.ArgsRepr {
				t.Errorf("ArgsRepr(%s)\n got %s\nwant %s", c.JSON, got, *c.ArgsRepr)
			}
			if got := SafeRepr(tuple(v.([]any)), 20); got != *c.ArgsReprShort {
				t.Errorf("saferepr(tuple(%s), 20)\n got %s\nwant %s", c.JSON, got, *c.ArgsReprShort)
			}
		}
	}
	var excs []struct {
		Type    string `json:"exc_type"`
		Module  string `json:"exc_module"`
		Message []any  `json:"exc_message"`
		Repr    string `json:"repr"`
	}
	if err := json.Unmarshal(g.Exceptions, &excs); err != nil {
		t.Fatal(err)
	}
	for _, e := range excs {
		msg := value(t, mustJSON(t, e.Message)).([]any)
		info := ExceptionInfo{Type: e.Type, Module: e.Module, Message: msg}
		if got := info.Repr(); got != e.Repr {
			t.Errorf("ExceptionInfo.Repr = %s, want %s", got, e.Repr)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReprGoTypes covers values callers build in Go rather than decode.
func TestReprGoTypes(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{3, "3"},
		{uint64(math.MaxUint64), "18446744073709551615"},
		{float32(0.5), "0.5"},
		{[]string{"a", "b"}, "['a', 'b']"},
		{map[string]int{"b": 2, "a": 1}, "{'a': 1, 'b': 2}"},
		{tuple{}, "()"},
		{tuple{1}, "(1,)"},
		{tuple{1, "x"}, "(1, 'x')"},
		{time.Date(2024, 1, 2, 3, 4, 0, 0, time.UTC), "datetime.datetime(2024, 1, 2, 3, 4, tzinfo=datetime.timezone.utc)"},
		{struct {
			A int `json:"a"`
		}{1}, "{'a': 1}"},
		{NotRegistered("tasks.x"), "NotRegistered('tasks.x')"},
		{Signature{Task: "t"}, "{'args': [], 'immutable': False, 'kwargs': {}, 'options': {}, 'subtask_type': None, 'task': 't'}"},
	}
	for _, tt := range tests {
		if got := Repr(tt.in); got != tt.want {
			t.Errorf("Repr(%#v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestPyFloat(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{1, "1.0"}, {-1.5, "-1.5"}, {1e16, "1e+16"}, {1e15, "1000000000000000.0"},
		{1.5e16, "1.5e+16"}, {0.0001, "0.0001"}, {0.00001, "1e-05"}, {1e-310, "1e-310"},
		{123456789.125, "123456789.125"}, {math.MaxFloat64, "1.7976931348623157e+308"},
		{math.Copysign(0, -1), "-0.0"}, {math.Inf(1), "inf"}, {math.NaN(), "nan"},
	}
	for _, tt := range tests {
		if got := pyFloat(tt.in); got != tt.want {
			t.Errorf("pyFloat(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
