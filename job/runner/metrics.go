package runner

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/renderfarm/renderfarm/metrics"
	"github.com/renderfarm/renderfarm/storage"
)

// Metrics are the render task's Prometheus series: how long each stage of
// a task takes, and the bytes it reads and writes by scheme. Set
// Config.Metrics to one from NewMetrics; nil counts nothing.
type Metrics struct {
	stages  *prometheus.HistogramVec
	read    *prometheus.CounterVec
	written *prometheus.CounterVec
}

// StageBuckets reach 30 minutes: a 45 MP progressive JPEG queued behind
// others on a small instance takes minutes, and an alert on the slowest
// renders needs them inside the last bucket.
var StageBuckets = prometheus.ExponentialBucketsRange(0.005, 1800, 18)

// Stages a render task goes through, in order.
const (
	StageFetch    = "fetch"    // reading the source (and watermarks)
	StageQueue    = "queue"    // waiting for a render slot and memory
	StageRender   = "render"   // decoding and every variant
	StageUpload   = "upload"   // storing the outputs
	StageManifest = "manifest" // recording the job in the journal
)

// NewMetrics registers the task's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "task", Name: "stage_duration_seconds",
			Help:    "Time a render task spends in each stage: fetch, queue (for a render slot and memory), render, upload, manifest.",
			Buckets: StageBuckets,
		}, []string{"stage"}),
		read: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "task", Name: "source_read_bytes_total",
			Help: "Bytes of sources and watermarks read, by scheme (s3, file, https, http).",
		}, []string{"scheme"}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "task", Name: "output_written_bytes_total",
			Help: "Bytes of outputs stored, by scheme (s3, file).",
		}, []string{"scheme"}),
	}
	// Every stage and scheme shows at 0 from the start, so dashboards and
	// rate() have a series before the first task.
	for _, st := range []string{StageFetch, StageQueue, StageRender, StageUpload, StageManifest} {
		m.stages.WithLabelValues(st)
	}
	for _, sc := range []string{storage.SchemeS3, storage.SchemeFile, storage.SchemeHTTPS} {
		m.read.WithLabelValues(sc)
		if sc != storage.SchemeHTTPS {
			m.written.WithLabelValues(sc)
		}
	}
	reg.MustRegister(m.stages, m.read, m.written)
	return m
}

func (m *Metrics) stage(name string, d time.Duration) {
	if m != nil {
		m.stages.WithLabelValues(name).Observe(d.Seconds())
	}
}

func (m *Metrics) readBytes(loc storage.Location, n int) {
	if m != nil {
		m.read.WithLabelValues(loc.Scheme).Add(float64(n))
	}
}

func (m *Metrics) wroteBytes(loc storage.Location, n int) {
	if m != nil {
		m.written.WithLabelValues(loc.Scheme).Add(float64(n))
	}
}
