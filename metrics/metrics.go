// Package metrics is renderfarm's Prometheus plumbing: a registry per
// process with the Go runtime and process collectors, its /metrics handler,
// and the instrumentation every HTTP handler gets. The metrics of a domain
// (enqueues, renders) are defined by the package that counts them, on the
// registry passed in.
package metrics

import (
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every renderfarm metric.
const Namespace = "renderfarm"

// NewRegistry returns a registry holding the Go runtime and process
// collectors. A registry of our own, not the global default, keeps tests
// and several servers in one process from colliding.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg in the Prometheus exposition format. It also counts
// its own scrape errors, so a failing collector shows on the next scrape.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

// HTTP instruments handlers: requests by route, method and status code,
// latency by route, and requests in flight.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

// NewHTTP registers the HTTP metrics of subsystem (e.g. "web") on reg.
func NewHTTP(reg prometheus.Registerer, subsystem string) *HTTP {
	m := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: subsystem, Name: "http_requests_total",
			Help: "HTTP requests answered, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: subsystem, Name: "http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: subsystem, Name: "http_requests_in_flight",
			Help: "HTTP requests being answered now.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight)
	return m
}

// Wrap instruments h as route: a fixed label such as "POST /v1/renders",
// never the raw path, so ids do not explode the label set.
func (m *HTTP) Wrap(route string, h http.Handler) http.Handler {
	labels := prometheus.Labels{"route": route}
	h = promhttp.InstrumentHandlerDuration(m.duration.MustCurryWith(labels), h)
	h = promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(labels), h)
	return promhttp.InstrumentHandlerInFlight(m.inFlight, h)
}

// RegisterBuildInfo registers renderfarm_build_info{version,goversion,libvips},
// always 1, so dashboards can tell the builds of a fleet apart.
func RegisterBuildInfo(reg prometheus.Registerer, version, libvips string) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help: "The running build: renderfarm version, Go version and libvips version; always 1.",
	}, []string{"version", "goversion", "libvips"})
	g.WithLabelValues(version, runtime.Version(), libvips).Set(1)
	reg.MustRegister(g)
}
