package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/renderfarm/renderfarm/fleet"
	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/render"
	"github.com/renderfarm/renderfarm/storage"
)

// Config is what the web tier needs. Zero values of the limits mean their
// defaults.
type Config struct {
	Broker     Broker
	Exchange   string // where tasks are published; with RoutingKey, from the worker's queue
	RoutingKey string

	// Store validates locations (file roots, buckets, URL guard) as the
	// workers do, and presigns S3 outputs for the status page.
	Store   *storage.Store
	Recipes render.Recipes // default: the built-in recipes
	Journal *job.Journal   // where the workers' manifests are read

	Tokens []string // API tokens; at least one

	RatePerSecond float64 // per token: requests, a batch counting each item; <0 disables, 0 means 50
	Burst         int     // per token; default 2x the rate, at least BatchMax

	// AuthFailures is how many failed authentications a client address
	// may make per minute (a burst of as many, refilled evenly) before
	// its requests get 429 without their token being looked at: tokens
	// cannot be guessed at full speed. <0 disables, 0 means 60.
	AuthFailures int
	// TrustedProxies are the load balancers (CIDRs or addresses) whose
	// X-Forwarded-For names the client; other peers are the client.
	TrustedProxies []string

	MaxBody           int64         // request body cap in bytes (default 1 MiB)
	BatchMax          int           // requests per batch (default 100)
	RequestTimeout    time.Duration // whole request, publish included (default 10s)
	IdempotencyWindow time.Duration // how long an Idempotency-Key is remembered (default 24h)
	IdempotencyMax    int           // keys remembered at most, oldest dropped first (default 100000)
	RecentRenders     int           // renders on the status page (default 24)
	PresignTTL        time.Duration // life of the status page's S3 links (default 10m)
	RetryAfter        time.Duration // Retry-After sent with 503s (default 5s)

	// Fleet, when set, puts the workers and queues at the top of the
	// status page (a *fleet.View).
	Fleet FleetView

	Registry *prometheus.Registry // default: a fresh one
	Logger   *slog.Logger
	Now      func() time.Time
}

// FleetView is what the status page shows of the farm.
type FleetView interface {
	Snapshot(ctx context.Context) (*fleet.Snapshot, error)
}

func (c Config) withDefaults() (Config, error) {
	if c.Broker == nil || c.Store == nil || c.Journal == nil {
		return c, errors.New("web: a broker, a store and a journal are required")
	}
	if err := CheckTokens(c.Tokens); err != nil {
		return c, err
	}
	if c.Recipes == nil {
		c.Recipes = render.BuiltinRecipes()
	}
	if c.RatePerSecond == 0 {
		c.RatePerSecond = 50
	}
	if c.AuthFailures == 0 {
		c.AuthFailures = 60
	}
	for _, p := range c.TrustedProxies {
		if _, err := parsePrefixOrAddr(p); err != nil {
			return c, fmt.Errorf("web: trusted proxy %q: want a CIDR or an IP address", p)
		}
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.BatchMax <= 0 {
		c.BatchMax = 100
	}
	if c.Burst <= 0 {
		c.Burst = int(2 * c.RatePerSecond)
	}
	c.Burst = max(c.Burst, c.BatchMax)
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.IdempotencyWindow <= 0 {
		c.IdempotencyWindow = 24 * time.Hour
	}
	if c.IdempotencyMax <= 0 {
		c.IdempotencyMax = 100000
	}
	if c.RecentRenders <= 0 {
		c.RecentRenders = 24
	}
	if c.PresignTTL <= 0 {
		c.PresignTTL = 10 * time.Minute
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// CheckTokens refuses an empty set and tokens short enough to guess; the
// command checks a tokens file with it before it connects to anything.
func CheckTokens(tokens []string) error {
	if len(tokens) == 0 {
		return errors.New("web: at least one API token is required")
	}
	for _, t := range tokens {
		if len(t) < 16 {
			return errors.New("web: API tokens must be at least 16 characters")
		}
	}
	return nil
}
