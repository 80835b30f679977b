package celery

import (
	"errors"
	"testing"
	"time"
)

// TestRPCResultGolden builds each result as worker code would, encodes
// it, and compares with what the rpc backend published.
func TestRPCResultGolden(t *testing.T) {
	tb := func(s string) *string { return &s }
	const id = "f1b2c3d4-0000-4000-8000-00000000000"
	tests := []struct {
		golden string
		result Result
	}{
		{"result_rpc_success", Result{TaskID: id + "1", Status: Success,
			Result: map[string]any{"frames": 240, "ok": true, "ratio": 1.5}}},
		{"result_rpc_failure", Result{TaskID: id + "2", Status: Failure,
			Result:    ExceptionInfo{Type: "ValueError", Module: "builtins", Message: []any{"boom", 42}},
			Traceback: tb("Traceback (most recent call last):\n  ...\nValueError: boom\n")}},
		{"result_rpc_not_registered", Result{TaskID: id + "3", Status: Failure, Result: NotRegistered("tasks.missing")}},
		{"result_rpc_revoked", Result{TaskID: id + "4", Status: Revoked, Result: TaskRevoked("expired")}},
		{"result_rpc_time_limit", Result{TaskID: id + "5", Status: Failure, Result: TimeLimitExceeded(10)}},
		{"result_rpc_retry", Result{TaskID: id + "6", Status: Retry,
			Result: &ExceptionInfo{Type: "KeyError", Module: "builtins", Message: []any{"missing"}}, Traceback: tb("tb")}},
		{"result_rpc_started", Result{TaskID: id + "7", Status: Started,
			Result: map[string]any{"pid": 1, "hostname": "worker1@golden"}}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			g := goldenNamed(t, tt.golden)
			req := &Message{ID: tt.result.TaskID, Task: "t", ReplyTo: g.RoutingKey, CorrelationID: tt.result.TaskID}
			pub, err := EncodeRPCResult(tt.result, req)
			if err != nil {
				t.Fatal(err)
			}
			comparePublishing(t, g, pub)
			if g.Exchange != "" || g.RoutingKey != req.ReplyTo {
				t.Errorf("celery routed to %q/%q, want \"\"/reply_to", g.Exchange, g.RoutingKey)
			}
			// Byte for byte too, where no map's key order is involved.
			if _, isMap := tt.result.Result.(map[string]any); !isMap && string(pub.Body) != g.Body {
				t.Errorf("body bytes\n got %s\nwant %s", pub.Body, g.Body)
			}
			// Reading it back gives the same result.
			back, err := DecodeResult(pub.Body)
			if err != nil {
				t.Fatal(err)
			}
			if !same(toValue(t, back.resultValue()), toValue(t, tt.result.resultValue())) || back.Status != tt.result.Status {
				t.Errorf("DecodeResult = %+v", back)
			}
			if e, ok := back.Result.(ExceptionInfo); ok && g.ExceptionRepr != "" && e.Type != "NotRegistered" {
				// NotRegistered has its own __repr__ (a sentence); events
				// spell it NotRegistered('name'), which Repr does.
				if e.Repr() != g.ExceptionRepr {
					t.Errorf("Repr = %s, want %s", e.Repr(), g.ExceptionRepr)
				}
			}
		})
	}
}

func TestRPCResultCorrelation(t *testing.T) {
	r := Result{TaskID: "task", Status: Success}
	for _, tt := range []struct {
		req  *Message
		want string
	}{
		{nil, "task"},
		{&Message{CorrelationID: ""}, "task"},
		{&Message{CorrelationID: "corr"}, "corr"}, // destination_for prefers the request's
	} {
		pub, err := EncodeRPCResult(r, tt.req)
		if err != nil || pub.CorrelationId != tt.want {
			t.Errorf("req %+v: correlation %q (%v), want %q", tt.req, pub.CorrelationId, err, tt.want)
		}
	}
	if _, err := EncodeRPCResult(Result{Status: Success}, nil); err == nil {
		t.Error("a result without task id encoded")
	}
}

func TestStoredResultGolden(t *testing.T) {
	done := time.Date(2024, 5, 6, 7, 8, 10, 654321000, time.UTC)
	const id = "f1b2c3d4-0000-4000-8000-00000000000"
	tb := "tb"
	tests := []struct {
		golden string
		result Result
	}{
		{"result_stored_success", Result{TaskID: id + "8", Status: Success, Result: []any{1, 2, 3},
			DateDone: &done, GroupID: "grp-1", ParentID: "par-1"}},
		{"result_stored_failure", Result{TaskID: id + "9", Status: Failure, Traceback: &tb,
			Result: ExceptionInfo{Type: "ValueError", Module: "builtins", Message: []any{"boom", 42}}, DateDone: &done}},
		{"result_stored_started", Result{TaskID: id + "a", Status: Started, DateDone: &done}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			g := goldenNamed(t, tt.golden)
			if k := StoredResultKey(tt.result.TaskID); k != g.Key {
				t.Errorf("key %q, want %q", k, g.Key)
			}
			b, err := EncodeStoredResult(tt.result)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != g.Value {
				t.Errorf("value\n got %s\nwant %s", b, g.Value)
			}
			back, err := DecodeResult(b)
			if err != nil {
				t.Fatal(err)
			}
			if back.TaskID != tt.result.TaskID || back.GroupID != tt.result.GroupID || back.ParentID != tt.result.ParentID {
				t.Errorf("DecodeResult = %+v", back)
			}
			if tt.result.Status.Ready() && (back.DateDone == nil || !back.DateDone.Equal(done)) {
				t.Errorf("date_done = %v, want %v", back.DateDone, done)
			}
		})
	}
}

func TestStoredResultDateDoneDefaultsToNow(t *testing.T) {
	before := time.Now().Add(-time.Second)
	b, err := EncodeStoredResult(Result{TaskID: "x", Status: Success, Result: 1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeResult(b)
	if err != nil || r.DateDone == nil || r.DateDone.Before(before) {
		t.Fatalf("date_done %v (%v) in %s", r.DateDone, err, b)
	}
}

func TestResultHelpers(t *testing.T) {
	tests := []struct {
		got  ExceptionInfo
		want string
	}{
		{NotRegistered("tasks.x"), `{"exc_type": "NotRegistered", "exc_message": ["tasks.x"], "exc_module": "celery.exceptions"}`},
		{TimeLimitExceeded(10), `{"exc_type": "TimeLimitExceeded", "exc_message": [10], "exc_module": "billiard.exceptions"}`},
		{TimeLimitExceeded(2.5), `{"exc_type": "TimeLimitExceeded", "exc_message": [2.5], "exc_module": "billiard.exceptions"}`},
		{TaskRevoked("terminated"), `{"exc_type": "TaskRevokedError", "exc_message": ["terminated"], "exc_module": "celery.exceptions"}`},
		{ExceptionInfo{Type: "E", Module: "m"}, `{"exc_type": "E", "exc_message": [], "exc_module": "m"}`},
	}
	for _, tt := range tests {
		b, err := tt.got.MarshalJSON()
		if err != nil || string(b) != tt.want {
			t.Errorf("%+v: %s (%v), want %s", tt.got, b, err, tt.want)
		}
	}
	// A Go error stored as a failure becomes a builtins Exception.
	b, _ := EncodeStoredResult(Result{TaskID: "x", Status: Failure, Result: errors.New("disk full")})
	r, _ := DecodeResult(b)
	if e, ok := r.Result.(ExceptionInfo); !ok || e.Type != "Exception" || e.Module != "builtins" || e.Message[0] != "disk full" {
		t.Errorf("error result decoded as %#v", r.Result)
	}
	for s, ready := range map[State]bool{Success: true, Failure: true, Revoked: true, Retry: false, Started: false, Pending: false, Received: false} {
		if s.Ready() != ready {
			t.Errorf("%s.Ready() = %v", s, !ready)
		}
	}
}
