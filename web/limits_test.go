package web

import (
	"fmt"
	"net/http/httptest"
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

func TestClientAddr(t *testing.T) {
	c := newClientAddr([]string{"10.0.0.0/8", "192.0.2.7"})
	for _, tc := range []struct {
		peer, xff, want string
	}{
		{"203.0.113.5:4000", "", "203.0.113.5"},
		{"203.0.113.5:4000", "198.51.100.1", "203.0.113.5"}, // an untrusted peer's header is ignored
		{"10.1.2.3:4000", "198.51.100.1", "198.51.100.1"},
		{"10.1.2.3:4000", "1.2.3.4, 198.51.100.1, 10.9.9.9", "198.51.100.1"}, // the last hop not ours
		{"192.0.2.7:80", "", "192.0.2.7"},
		{"10.1.2.3:4000", "not-an-ip", "10.1.2.3"},
		{"[::ffff:10.1.2.3]:4000", "2001:db8::1", "2001:db8::1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := c.of(r); got != tc.want {
			t.Errorf("peer %s XFF %q: %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}

func TestRateLimiterOverAndBounded(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	rl := newRateLimiter(1, 2)
	if _, over := rl.over("a", t0); over {
		t.Fatal("an unknown id is over")
	}
	rl.allow("a", 2, t0)
	if wait, over := rl.over("a", t0); !over || wait != time.Second {
		t.Fatalf("over = %v %v, want true 1s", over, wait)
	}
	if _, over := rl.over("a", t0.Add(time.Second)); over {
		t.Fatal("still over once a token is back")
	}
	for i := range maxBuckets + 10 {
		rl.allow(fmt.Sprint("addr-", i), 1, t0.Add(time.Hour))
	}
	if n := len(rl.byID); n > maxBuckets {
		t.Fatalf("%d buckets kept, bound %d", n, maxBuckets)
	}
}
