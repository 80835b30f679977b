package worker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRevokedSetPersistsAndBounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "revoked.tsv")
	r, err := openRevoked(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	r.now = func() time.Time { return now }
	if err := r.add("a", "b"); err != nil {
		t.Fatal(err)
	}
	r.add("c")
	r.close()

	again, err := openRevoked(path)
	if err != nil {
		t.Fatal(err)
	}
	again.now = func() time.Time { return now.Add(time.Hour) }
	if got := fmt.Sprint(again.list()); got != "[a b c]" || !again.has("b") || again.has("z") {
		t.Errorf("after reopening: %s", got)
	}
	// Revokes expire after three hours, as in Celery.
	again.now = func() time.Time { return now.Add(3*time.Hour + time.Second) }
	if again.has("a") || len(again.list()) != 0 {
		t.Errorf("expired ids still revoked: %v", again.list())
	}
	again.close()

	// The set is bounded: the oldest go first.
	mem, _ := openRevoked("")
	base := time.Unix(1_800_000_000, 0)
	for i := 0; i < revokedMax+10; i++ {
		mem.now = func() time.Time { return base.Add(time.Duration(i) * time.Millisecond) }
		mem.add(fmt.Sprint("id-", i))
	}
	if n := len(mem.list()); n > revokedMax || n < revokedMax*9/10 || mem.has("id-0") || !mem.has(fmt.Sprint("id-", revokedMax+9)) {
		t.Errorf("bounded set holds %d ids; oldest kept: %v", n, mem.has("id-0"))
	}
}

func TestRevokedFileSurvivesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revoked.tsv")
	exp := time.Now().Add(time.Hour).Unix()
	os.WriteFile(path, []byte(fmt.Sprintf("good\t%d\nno-tab-line\n\t%d\nbad\tnotanumber\n", exp, exp)), 0o644)
	r, err := openRevoked(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if got := fmt.Sprint(r.list()); got != "[good]" {
		t.Errorf("got %s", got)
	}
}

func TestExceptionInfo(t *testing.T) {
	tests := []struct {
		err              error
		typ, module, msg string
	}{
		{errors.New("plain"), "Exception", "builtins", "[plain]"},
		{Errorf("ValueError", "bad %d", 3), "ValueError", "builtins", "[bad 3]"},
		{fmt.Errorf("wrapped: %w", &TaskError{Type: "RenderError", Module: "renderfarm.errors", Message: []any{"x", 1.0}}), "RenderError", "renderfarm.errors", "[x 1]"},
		{ErrSoftTimeLimit, "SoftTimeLimitExceeded", "billiard.exceptions", "[soft time limit exceeded]"},
	}
	for _, tt := range tests {
		e := exceptionInfo(tt.err)
		if e.Type != tt.typ || e.Module != tt.module || fmt.Sprint(e.Message) != tt.msg {
			t.Errorf("%v: got %+v", tt.err, e)
		}
	}
}

func TestLamportClock(t *testing.T) {
	var c lamport
	if c.forward() != 1 || c.forward() != 2 {
		t.Fatal("forward does not count")
	}
	if got := c.adjust(10); got != 11 {
		t.Errorf("adjust(10) = %d, want 11", got)
	}
	if got := c.adjust(3); got != 12 {
		t.Errorf("adjust to an older clock = %d, want 12", got)
	}
}

// celery inspect stats names the broker the worker really uses.
func TestBrokerStats(t *testing.T) {
	for _, tc := range []struct {
		url, host, vhost string
		port             int
		ssl              bool
	}{
		{"amqp://render:secret@mq.internal:5673/farm", "mq.internal", "farm", 5673, false},
		{"amqps://u:p@mq.example.com/", "mq.example.com", "/", 5671, true},
		{"amqp://guest:guest@127.0.0.1:5672//", "127.0.0.1", "/", 5672, false},
		{"", "localhost", "/", 5672, false},
	} {
		got := brokerStats(tc.url)
		if got["hostname"] != tc.host || got["port"] != tc.port || got["virtual_host"] != tc.vhost || got["ssl"] != tc.ssl {
			t.Errorf("%s: %v", tc.url, got)
		}
		if strings.Contains(fmt.Sprint(got), "secret") {
			t.Errorf("%s: the password shows: %v", tc.url, got)
		}
	}
}
