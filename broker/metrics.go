package broker

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/renderfarm/renderfarm/metrics"
)

// Metrics are a Conn's Prometheus series: whether it is connected, how
// often it reconnected, and how its publishes ended. Set Config.Metrics to
// one from NewMetrics; nil counts nothing.
type Metrics struct {
	reg        prometheus.Registerer
	reconnects prometheus.Counter
	publishes  *prometheus.CounterVec
}

// NewMetrics registers the broker's counters on reg. The connection-state
// gauge is registered by the Conn that uses them, since it reads the Conn.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "broker", Name: "reconnects_total",
			Help: "Connections to RabbitMQ re-established after a loss.",
		}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "broker", Name: "publishes_total",
			Help: "Publishes by how they ended: confirmed, nacked, unroutable, unconfirmed (no confirm: timeout or connection lost), closed.",
		}, []string{"result"}),
	}
	for _, r := range []string{"confirmed", "nacked", "unroutable", "unconfirmed", "closed"} {
		m.publishes.WithLabelValues(r) // every result shows from the start, at 0
	}
	reg.MustRegister(m.reconnects, m.publishes)
	return m
}

// watch registers the connection-state gauge of c.
func (m *Metrics) watch(c *Conn) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metrics.Namespace, Subsystem: "broker", Name: "connected",
		Help: "1 while the connection to RabbitMQ is up (and its topology declared), else 0.",
	}, func() float64 {
		if !c.isClosed() && c.current() != nil {
			return 1
		}
		return 0
	}))
}

func (m *Metrics) reconnected() {
	if m != nil {
		m.reconnects.Inc()
	}
}

// published counts how a publish ended and returns err unchanged.
func (m *Metrics) published(err error) error {
	if m == nil {
		return err
	}
	r := "confirmed"
	switch {
	case err == nil:
	case errors.Is(err, ErrNacked):
		r = "nacked"
	case errors.Is(err, ErrUnroutable):
		r = "unroutable"
	case errors.Is(err, ErrClosed):
		r = "closed"
	default:
		r = "unconfirmed"
	}
	m.publishes.WithLabelValues(r).Inc()
	return err
}
