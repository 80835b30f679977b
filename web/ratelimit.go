package web

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLimiter is a token bucket per API token. Its state is per process:
// behind a load balancer with N web instances a client gets up to N times
// the rate, which is the usual trade for not putting a shared store on
// every request.
type rateLimiter struct {
	limit rate.Limit
	burst int
	mu    sync.Mutex
	byID  map[string]*rate.Limiter
}

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	if perSecond < 0 {
		return nil // disabled
	}
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, byID: map[string]*rate.Limiter{}}
}

// allow takes n from id's bucket, or reports how long until n would be
// there (and takes nothing).
func (rl *rateLimiter) allow(id string, n int, now time.Time) (wait time.Duration, ok bool) {
	if rl == nil {
		return 0, true
	}
	rl.mu.Lock()
	l := rl.byID[id]
	if l == nil {
		if len(rl.byID) >= maxBuckets {
			rl.sweep(now)
		}
		l = rate.NewLimiter(rl.limit, rl.burst)
		rl.byID[id] = l
	}
	rl.mu.Unlock()
	r := l.ReserveN(now, n)
	if !r.OK() {
		// More than the burst: never possible. Config makes the burst at
		// least BatchMax, so this is only a defence.
		return time.Minute, false
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// maxBuckets bounds the buckets kept: keyed by client address, an
// attacker with many addresses must not grow the map without end.
const maxBuckets = 1 << 16

// sweep drops the buckets that are full again: forgetting them changes
// nothing. If none is, it drops them all rather than grow.
func (rl *rateLimiter) sweep(now time.Time) {
	for id, l := range rl.byID {
		if l.TokensAt(now) >= float64(rl.burst) {
			delete(rl.byID, id)
		}
	}
	if len(rl.byID) >= maxBuckets {
		clear(rl.byID)
	}
}

// over says whether id's bucket is empty, without taking from it, and how
// long until it holds one again.
func (rl *rateLimiter) over(id string, now time.Time) (wait time.Duration, over bool) {
	if rl == nil {
		return 0, false
	}
	rl.mu.Lock()
	l := rl.byID[id]
	rl.mu.Unlock()
	if l == nil || l.TokensAt(now) >= 1 {
		return 0, false
	}
	r := l.ReserveN(now, 1)
	wait = r.DelayFrom(now)
	r.CancelAt(now)
	return wait, true
}

// clientAddr finds the client's address: the peer's, or for a peer that
// is a trusted proxy the last address in X-Forwarded-For that is not one.
type clientAddr struct{ proxies []netip.Prefix }

func newClientAddr(trusted []string) clientAddr {
	var c clientAddr
	for _, t := range trusted {
		if p, err := parsePrefixOrAddr(t); err == nil {
			c.proxies = append(c.proxies, p)
		}
	}
	return c
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (c clientAddr) trusted(a netip.Addr) bool {
	for _, p := range c.proxies {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

func (c clientAddr) of(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := ap.Addr().Unmap()
	if !c.trusted(addr) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a hop we cannot read: stop at the last one we trust
		}
		if addr = a.Unmap(); !c.trusted(addr) {
			break
		}
	}
	return addr.String()
}
