package web

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/renderfarm/renderfarm/metrics"
)

// webMetrics are the web tier's own counters, beside the per-route HTTP
// metrics every handler gets.
type webMetrics struct {
	enqueued     prometheus.Counter
	refused      *prometheus.CounterVec // by reason: invalid, broker
	publish      prometheus.Histogram
	rateLimited  prometheus.Counter
	unauthorized prometheus.Counter
	replays      prometheus.Counter
}

func newWebMetrics(reg prometheus.Registerer) *webMetrics {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "web", Name: name, Help: help}
	}
	m := &webMetrics{
		enqueued: prometheus.NewCounter(opts("renders_enqueued_total", "Render tasks the broker confirmed.")),
		refused: prometheus.NewCounterVec(opts("renders_refused_total",
			"Render requests not enqueued, by reason: invalid (a 400) or broker (a 503)."), []string{"reason"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "web", Name: "publish_duration_seconds",
			Help:    "Time from publishing a task to the broker's confirm.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		rateLimited:  prometheus.NewCounter(opts("rate_limited_total", "Requests refused with 429.")),
		unauthorized: prometheus.NewCounter(opts("unauthorized_total", "Requests refused with 401.")),
		replays:      prometheus.NewCounter(opts("idempotent_replays_total", "Answers replayed for a repeated Idempotency-Key.")),
	}
	for _, r := range []string{"invalid", "broker"} {
		m.refused.WithLabelValues(r) // at 0 from the start, so rate() and alerts see them
	}
	reg.MustRegister(m.enqueued, m.refused, m.publish, m.rateLimited, m.unauthorized, m.replays)
	return m
}
