package broker

import (
	"testing"
	"time"
)

func TestBackoffFullJitterWithinCap(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 30 * time.Second
	tests := []struct {
		attempt int
		ceil    time.Duration
	}{
		{0, lo},
		{1, 2 * lo},
		{5, 32 * lo},
		{9, hi}, // 100ms·512 > 30s: capped
		{63, hi},
		{1 << 20, hi}, // no shift overflow
	}
	for _, tt := range tests {
		var maxSeen time.Duration
		for range 2000 {
			d := backoff(lo, hi, tt.attempt)
			if d < 0 || d > tt.ceil {
				t.Fatalf("backoff(attempt %d) = %v, want within [0, %v]", tt.attempt, d, tt.ceil)
			}
			maxSeen = max(maxSeen, d)
		}
		// Full jitter spreads over the whole range, not just near zero.
		if maxSeen < tt.ceil/2 {
			t.Errorf("attempt %d: max of 2000 draws %v, want near %v", tt.attempt, maxSeen, tt.ceil)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.URL != DefaultURL || c.Heartbeat != 10*time.Second || c.ReconnectMin != 100*time.Millisecond ||
		c.ReconnectMax != 30*time.Second || c.PublishTimeout != 10*time.Second || c.Logger == nil {
		t.Fatalf("defaults = %+v", c)
	}
	if got := (Config{ReconnectMin: time.Minute, ReconnectMax: time.Second}).withDefaults(); got.ReconnectMax != time.Minute {
		t.Fatalf("ReconnectMax below ReconnectMin not raised: %v", got.ReconnectMax)
	}
}

func TestRedactURL(t *testing.T) {
	got := redactURL("amqp://user:s3cret@host:5672/vh")
	if got != "amqp://user:xxxxx@host:5672/vh" {
		t.Fatalf("redactURL = %q", got)
	}
}
