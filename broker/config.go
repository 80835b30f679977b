package broker

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// DefaultURL is the local broker's default vhost with RabbitMQ's guest user,
// which RabbitMQ only accepts from localhost.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672//"

// Config configures a Conn. The zero value of every field means its default.
type Config struct {
	URL          string        // amqp URL with vhost; default DefaultURL
	Heartbeat    time.Duration // default 10s
	ReconnectMin time.Duration // first backoff, default 100ms
	ReconnectMax time.Duration // backoff cap after failed handshakes, default 30s (exponential with full jitter)
	// ReconnectPoll is the longest wait between attempts while the
	// broker's port refuses or drops TCP connections (default 1s; each
	// wait is jittered within [ReconnectPoll/2, ReconnectPoll]). A refused
	// connect costs the broker nothing, so polling it often is polite, and
	// it brings the Conn back within about ReconnectPoll of the broker's
	// return; only handshakes, which cost the broker a connection, back
	// off up to ReconnectMax.
	ReconnectPoll  time.Duration
	PublishTimeout time.Duration // how long Publish waits for a confirm, default 10s
	Name           string        // connection_name client property (shows in the management UI)
	Logger         *slog.Logger  // nil means slog.Default()
	// Metrics counts reconnects and publish outcomes and shows the
	// connection state (NewMetrics); nil counts nothing.
	Metrics *Metrics

	// DialTimeout bounds one connection attempt: TCP connect plus the AMQP
	// handshake. Default 10s. Without it a broker that accepts TCP but never
	// answers (booting, overloaded) would stall reconnection indefinitely.
	DialTimeout time.Duration

	// Topology is declared on the first connection before the Conn counts
	// as connected, then remembered as Declare's is. A publisher that needs
	// its queue in place (a 202 must mean "queued") is then never connected
	// without it. The broker refusing it is fatal, as a refused login is;
	// a durable queue whose cluster node is down is not a refusal (it is
	// logged and passed over: see queueDown).
	Topology Topology
}

func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 100 * time.Millisecond
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = 30 * time.Second
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.ReconnectPoll <= 0 {
		c.ReconnectPoll = time.Second
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// backoff returns the delay before retry number attempt (0-based): a uniform
// random duration in [0, min(max, min·2^attempt)] ("full jitter"), so a fleet
// of workers reconnecting after a broker restart spreads out instead of
// stampeding it in lockstep.
func backoff(lo, hi time.Duration, attempt int) time.Duration {
	ceil := hi
	if attempt < 32 {
		if d := lo << attempt; d > 0 && d < hi {
			ceil = d
		}
	}
	return rand.N(ceil + 1)
}

// pacer spaces the connection attempts of one outage (see
// Config.ReconnectPoll): polls while the TCP connect fails, exponential
// backoff counted over the attempts that got a TCP connection but no usable
// AMQP connection.
type pacer struct {
	cfg       Config
	handshake int // failed attempts that reached the broker
}

// next is the wait after a failed attempt; reached says whether that
// attempt got a TCP connection.
func (p *pacer) next(reached bool) time.Duration {
	if reached {
		d := backoff(p.cfg.ReconnectMin, p.cfg.ReconnectMax, p.handshake)
		p.handshake++
		return d
	}
	half := p.cfg.ReconnectPoll / 2
	return half + rand.N(p.cfg.ReconnectPoll-half+1)
}

// sleepCtx waits for d or until ctx ends, whichever is first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
