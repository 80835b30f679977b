package fleet

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Gauges show the latest Measurement to Prometheus, for an HPA, KEDA or
// an alert to act on (renderfarm scale --listen).
type Gauges struct {
	ready, consumers                     *prometheus.GaugeVec
	backlog, instances, desired          prometheus.Gauge
	perInstance, acceptable, throughput  prometheus.Gauge
	measuredWorkers, lastMeasurementTime prometheus.Gauge
}

// NewGauges registers the gauges on reg.
func NewGauges(reg prometheus.Registerer) *Gauges {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "renderfarm", Subsystem: "scale", Name: name, Help: help})
	}
	gs := &Gauges{
		ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "renderfarm", Subsystem: "scale", Name: "queue_ready_messages",
			Help: "Messages waiting in the queue (AMQP's count; unacked ones are not included)."}, []string{"queue"}),
		consumers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "renderfarm", Subsystem: "scale", Name: "queue_consumers",
			Help: "Consumers of the queue."}, []string{"queue"}),
		backlog:             g("backlog_messages", "Ready messages across the fleet's queues."),
		instances:           g("instances", "Workers online by their heartbeats."),
		desired:             g("desired_instances", "Instances that drain the backlog within the target wait."),
		perInstance:         g("backlog_per_instance", "Ready messages per online worker: the target-tracking metric."),
		acceptable:          g("acceptable_backlog_per_instance", "Throughput per instance times the target wait; 0 while throughput is not measured."),
		throughput:          g("throughput_per_instance_tasks_per_second", "Tasks finished per second per worker, from heartbeats; 0 while not measured."),
		measuredWorkers:     g("measured_workers", "Workers whose throughput was measured in the window."),
		lastMeasurementTime: g("last_measurement_timestamp_seconds", "When the figures were last measured."),
	}
	reg.MustRegister(gs.ready, gs.consumers, gs.backlog, gs.instances, gs.desired, gs.perInstance, gs.acceptable,
		gs.throughput, gs.measuredWorkers, gs.lastMeasurementTime)
	return gs
}

// Set shows m.
func (g *Gauges) Set(m *Measurement) {
	g.ready.Reset()
	g.consumers.Reset()
	for _, q := range m.Queues {
		g.ready.WithLabelValues(q.Name).Set(float64(q.Ready))
		g.consumers.WithLabelValues(q.Name).Set(float64(q.Consumers))
	}
	g.backlog.Set(float64(m.Backlog))
	g.instances.Set(float64(m.Instances))
	g.desired.Set(float64(m.Desired))
	g.perInstance.Set(m.BacklogPerInstance)
	g.acceptable.Set(m.AcceptableBacklogPerInstance)
	g.throughput.Set(m.ThroughputPerInstance)
	g.measuredWorkers.Set(float64(m.Throughput.Measured))
	g.lastMeasurementTime.Set(float64(m.Time.UnixNano()) / 1e9)
}
