package storage

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/renderfarm/renderfarm/metrics"
)

// Metrics counts failed storage operations in
// renderfarm_storage_errors_total{op, scheme, code}. Every label has a
// fixed set of values (no bucket, key or host), so the series stay few
// whatever requests name. A nil *Metrics counts nothing.
type Metrics struct{ errors *prometheus.CounterVec }

// NewMetrics registers the storage metrics on reg; share one between the
// stores of a process (Config.Metrics).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{errors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: "storage", Name: "errors_total",
		Help: "Failed storage operations, by operation (get, put), scheme (s3, file, https, http) and error code (unavailable, forbidden, too_large, ...); not-found answers are not counted.",
	}, []string{"op", "scheme", "code"})}
	// The outage series exist at 0 from the start, so an alert on their
	// rate sees the first failure.
	for _, op := range []string{"get", "put"} {
		for _, scheme := range []string{SchemeS3, SchemeFile, SchemeHTTPS} {
			if op == "put" && scheme == SchemeHTTPS {
				continue
			}
			m.errors.WithLabelValues(op, scheme, CodeUnavailable)
		}
	}
	reg.MustRegister(m.errors)
	return m
}

// failed counts err, if any, and returns it. Not-found is an answer, not
// a failure of the store: status lookups of pending tasks and manifest
// version probes meet it all day, and counting it would bury outages.
func (m *Metrics) failed(op string, loc Location, err error) error {
	if m == nil || err == nil || errors.Is(err, ErrNotFound) {
		return err
	}
	scheme := loc.Scheme
	switch scheme {
	case SchemeS3, SchemeFile, SchemeHTTP, SchemeHTTPS:
	default:
		scheme = "other" // a hostile location's scheme is not a label value
	}
	code := "other"
	var se *Error
	if errors.As(err, &se) {
		code = se.Code // one of the package's Code constants
	}
	m.errors.WithLabelValues(op, scheme, code).Inc()
	return err
}
