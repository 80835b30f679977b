package web

import (
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
