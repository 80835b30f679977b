package worker

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/renderfarm/renderfarm/metrics"
)

// Task outcomes, the values of renderfarm_tasks_total's outcome label.
const (
	outcomeSucceeded    = "succeeded"
	outcomeFailed       = "failed"
	outcomeRetried      = "retried"
	outcomeRevoked      = "revoked"  // revoked, expired or terminated
	outcomeRejected     = "rejected" // an unknown task name
	outcomeDeadLettered = "dead_lettered"
)

// unregistered stands for any task name the worker does not know: names
// come from messages, and a label must not take whatever a client sends.
const unregistered = "unregistered"

// workerMetrics are the worker's Prometheus series; every label has a
// bounded set of values. A nil *workerMetrics counts nothing.
type workerMetrics struct {
	tasks        *prometheus.CounterVec
	queueWait    prometheus.Histogram
	duration     *prometheus.HistogramVec
	redelivered  prometheus.Counter
	deadLettered *prometheus.CounterVec
	unrecorded   prometheus.Counter
}

// waitBuckets reach 30 minutes, as the task stages' do.
var waitBuckets = prometheus.ExponentialBucketsRange(0.005, 1800, 18)

func newWorkerMetrics(reg prometheus.Registerer, st *state, slots int, tasks []string) *workerMetrics {
	if reg == nil {
		return nil
	}
	m := &workerMetrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "tasks_total",
			Help: "Tasks finished, by task name and outcome: succeeded, failed, retried, revoked, rejected (unknown task), dead_lettered (malformed, or over the start or delivery limit).",
		}, []string{"task", "outcome"}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Name: "task_queue_wait_seconds",
			Help:    "Time from a task's publish (or its eta, if later) to its start. Tasks without a publish timestamp or eta (most Celery clients send neither) are not counted.",
			Buckets: waitBuckets,
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Name: "task_duration_seconds",
			Help:    "Time a task's handler ran, by task name.",
			Buckets: waitBuckets,
		}, []string{"task"}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "worker", Name: "deliveries_redelivered_total",
			Help: "Deliveries the broker marked as redelivered: another worker (or this one) got them before and did not settle them.",
		}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "worker", Name: "dead_lettered_total",
			Help: "Messages copied to the dead-letter exchange, by reason: malformed, start_limit (the handler kept killing workers), delivery_limit (no start ledger), task_failed.",
		}, []string{"reason"}),
		unrecorded: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "worker", Name: "starts_unrecorded_total",
			Help: "Task starts the start ledger (the job journal) could not record; the tasks ran anyway, and a crash during one of them goes uncounted.",
		}),
	}
	slotsTotal := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metrics.Namespace, Subsystem: "worker", Name: "slots",
		Help: "Task slots (--concurrency).",
	})
	slotsTotal.Set(float64(slots))
	busy := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metrics.Namespace, Subsystem: "worker", Name: "slots_busy",
		Help: "Task slots running a task now.",
	}, func() float64 {
		active, _ := st.counts()
		return float64(active)
	})
	// Known tasks' outcomes and every reason show at 0 from the start, so
	// rate() and the failure-rate alert have a series before the first.
	for _, r := range []string{"malformed", "start_limit", "delivery_limit", "task_failed"} {
		m.deadLettered.WithLabelValues(r)
	}
	for _, task := range tasks {
		for _, o := range []string{outcomeSucceeded, outcomeFailed, outcomeRetried, outcomeRevoked, outcomeDeadLettered} {
			m.tasks.WithLabelValues(task, o)
		}
	}
	reg.MustRegister(m.tasks, m.queueWait, m.duration, m.redelivered, m.deadLettered, m.unrecorded, slotsTotal, busy)
	return m
}

func (m *workerMetrics) finished(task, outcome string) {
	if m != nil {
		m.tasks.WithLabelValues(task, outcome).Inc()
	}
}

func (m *workerMetrics) ran(task string, d time.Duration) {
	if m != nil {
		m.duration.WithLabelValues(task).Observe(d.Seconds())
	}
}

// waited observes the queue wait of a task starting now: from its publish
// time or its eta, whichever is later; neither known, nothing is observed.
func (m *workerMetrics) waited(published time.Time, eta *time.Time) {
	if m == nil {
		return
	}
	from := published
	if eta != nil && eta.After(from) {
		from = *eta
	}
	if from.IsZero() {
		return
	}
	m.queueWait.Observe(max(time.Since(from), 0).Seconds())
}

func (m *workerMetrics) startNotRecorded() {
	if m != nil {
		m.unrecorded.Inc()
	}
}

func (m *workerMetrics) redelivery() {
	if m != nil {
		m.redelivered.Inc()
	}
}

// deadLetter counts a dead-lettered message under a bounded reason.
func (m *workerMetrics) deadLetter(reason string) {
	if m == nil {
		return
	}
	switch {
	case strings.HasPrefix(reason, "malformed"):
		reason = "malformed"
	case strings.HasPrefix(reason, "delivered "):
		reason = "delivery_limit"
	case strings.HasPrefix(reason, "started "):
		reason = "start_limit"
	default:
		reason = "task_failed"
	}
	m.deadLettered.WithLabelValues(reason).Inc()
}
