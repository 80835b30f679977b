package web

import (
	"testing"
	"time"
)

func TestIdempotency(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	m := newIdempotency(time.Hour, 3)
	steps := []struct {
		name string
		key  string
		body string
		at   time.Duration
		want idemOutcome
		then func(*idemEntry) // finish or abandon
	}{
		{"first use", "a", "x", 0, idemNew, nil},
		{"same key while running", "a", "x", time.Second, idemBusy, nil},
		{"same key, other body", "a", "y", time.Second, idemMismatch, nil},
		{"finished", "b", "x", 2 * time.Second, idemNew, func(e *idemEntry) { m.finish(e, 202, "/v1/renders/1", []byte("{}")) }},
		{"replayed", "b", "x", 3 * time.Second, idemReplay, nil},
		{"abandoned after an error", "c", "x", 4 * time.Second, idemNew, func(e *idemEntry) { m.abandon(e) }},
		{"free again", "c", "x", 5 * time.Second, idemNew, func(e *idemEntry) { m.finish(e, 202, "", nil) }},
		{"over the cap drops the oldest", "d", "x", 6 * time.Second, idemNew, nil},
		{"the oldest is gone", "a", "y", 7 * time.Second, idemNew, nil},
		{"within the window", "c", "x", time.Hour + 4*time.Second, idemReplay, nil},
		{"expired after the window", "c", "x", time.Hour + 6*time.Second, idemNew, nil},
	}
	for _, s := range steps {
		got, e := m.begin(s.key, []byte(s.body), t0.Add(s.at))
		if got != s.want {
			t.Fatalf("%s: outcome %d, want %d", s.name, got, s.want)
		}
		if s.then != nil {
			s.then(e)
		}
	}
}

func TestRateLimiter(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	rl := newRateLimiter(2, 4) // 2/s, burst 4
	for i, tc := range []struct {
		id   string
		n    int
		at   time.Duration
		ok   bool
		wait time.Duration
	}{
		{"a", 3, 0, true, 0},
		{"a", 2, 0, false, 500 * time.Millisecond}, // 1 left, 1 more in 0.5 s
		{"b", 4, 0, true, 0},                       // per token
		{"a", 2, 500 * time.Millisecond, true, 0},
		{"a", 5, time.Hour, false, time.Minute}, // over the burst: never
	} {
		wait, ok := rl.allow(tc.id, tc.n, t0.Add(tc.at))
		if ok != tc.ok || wait != tc.wait {
			t.Errorf("step %d: %v %v, want %v %v", i, ok, wait, tc.ok, tc.wait)
		}
	}
	if _, ok := newRateLimiter(-1, 0).allow("a", 1000, t0); !ok {
		t.Error("a disabled limiter refused")
	}
}

func TestTokens(t *testing.T) {
	ts := newTokenSet([]string{"first-token-0123456789", "second-token-0123456789"})
	for _, tc := range []struct {
		presented string
		ok        bool
	}{
		{"first-token-0123456789", true},
		{"second-token-0123456789", true},
		{"first-token-012345678", false},
		{"first-token-0123456789 ", false},
		{"", false},
	} {
		if _, ok := ts.match(tc.presented); ok != tc.ok {
			t.Errorf("%q: %v", tc.presented, ok)
		}
	}
	a, _ := ts.match("first-token-0123456789")
	b, _ := ts.match("second-token-0123456789")
	if a == b || a == "" {
		t.Errorf("token identities %q and %q", a, b)
	}
}
