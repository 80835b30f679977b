package fleet

import (
	"context"
	"math"
	"time"

	"github.com/renderfarm/renderfarm/broker"
)

// ScaleInput is what the scaling maths needs, measured by the caller.
type ScaleInput struct {
	Ready      int           // ready messages across the fleet's queues
	Active     int           // tasks running now (heartbeats), work that still needs a worker
	Instances  int           // workers online
	Throughput float64       // tasks per second per instance; 0 = not measured
	TargetWait time.Duration // how long a new task may wait, at most
}

// Scale is the decision and the figures behind it (AWS's backlog per
// instance pattern: track BacklogPerInstance against
// AcceptableBacklogPerInstance).
type Scale struct {
	Backlog                      int     `json:"backlog"`
	Instances                    int     `json:"instances"`
	BacklogPerInstance           float64 `json:"backlog_per_instance"`
	ThroughputPerInstance        float64 `json:"throughput_per_instance"`
	AcceptableBacklogPerInstance float64 `json:"acceptable_backlog_per_instance"`
	Desired                      int     `json:"desired_instances"`
	// Reason says which rule set Desired.
	Reason string `json:"reason"`
}

// Reasons Desired was chosen.
const (
	ReasonIdle       = "no work: no ready messages, no task running"
	ReasonBacklog    = "backlog / acceptable backlog per instance"
	ReasonFloor      = "work in progress: at least one instance"
	ReasonUnmeasured = "throughput not measured yet: keep the instances there are, at least one"
)

// Desired computes the instance count that drains the backlog within the
// target wait: each instance may hold throughput × target wait tasks, so
// desired = ceil(ready / that). Floors: 0 only when there is no work at
// all (nothing ready, nothing running); at least 1 while there is. With
// no throughput measured (no worker online, or none finished a task in
// the window) nothing can be computed: it keeps the current count, and
// asks for one instance when there are none, so that a fleet scaled to
// zero starts a worker that can then be measured.
//
// BacklogPerInstance divides by the instances online, or by one when
// there are none (the backlog the first instance will face).
func Desired(in ScaleInput) Scale {
	s := Scale{Backlog: max(in.Ready, 0), Instances: max(in.Instances, 0), ThroughputPerInstance: max(in.Throughput, 0)}
	s.BacklogPerInstance = float64(s.Backlog) / float64(max(s.Instances, 1))
	work := s.Backlog > 0 || in.Active > 0
	if s.ThroughputPerInstance > 0 && in.TargetWait > 0 {
		s.AcceptableBacklogPerInstance = s.ThroughputPerInstance * in.TargetWait.Seconds()
	}
	switch {
	case !work:
		s.Desired, s.Reason = 0, ReasonIdle
	case s.AcceptableBacklogPerInstance == 0:
		s.Desired, s.Reason = max(s.Instances, 1), ReasonUnmeasured
	default:
		s.Desired, s.Reason = ceil(float64(s.Backlog)/s.AcceptableBacklogPerInstance), ReasonBacklog
		if s.Desired < 1 {
			s.Desired, s.Reason = 1, ReasonFloor
		}
	}
	return s
}

// ceil rounds up, forgiving float error: 0.3 tasks/s × 3 s is
// 0.8999999999999999, and 9 tasks over it must need 10 instances, not 11.
func ceil(x float64) int { return int(math.Ceil(x - 1e-9)) }

// Measurement is one reading of the scaling signal: the queues, the
// fleet's throughput, and the decision.
type Measurement struct {
	Time       time.Time    `json:"time"`
	Queues     []QueueDepth `json:"queues"`
	Throughput Throughput   `json:"throughput"`
	TargetWait float64      `json:"target_wait_seconds"`
	Scale
}

// StatsMeter measures the workers that send no heartbeats (celery worker
// --without-heartbeat): who answers stats, and how fast the task totals
// in their replies grow between two samples. Not safe for concurrent use.
type StatsMeter struct {
	control *Control
	timeout time.Duration
	prev    map[string]statsSample
}

type statsSample struct {
	at   time.Time
	done int64
}

// NewStatsMeter gathers stats replies for timeout each sample.
func NewStatsMeter(c *Control, timeout time.Duration) *StatsMeter {
	return &StatsMeter{control: c, timeout: timeout, prev: map[string]statsSample{}}
}

// Sample asks for stats; it returns who answered, and the rate of those
// that answered the previous sample too (a total that went down is a
// restart: no rate until the next sample).
func (m *StatsMeter) Sample(ctx context.Context) (answered []string, rates map[string]float64, err error) {
	rs, err := Ask[Stats](ctx, m.control, "stats", nil, CallOptions{Timeout: m.timeout})
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	rates = map[string]float64{}
	next := map[string]statsSample{}
	for _, r := range rs {
		if r.Err != nil {
			continue
		}
		answered = append(answered, r.Node)
		s := statsSample{at: now, done: r.Value.Done()}
		next[r.Node] = s
		if p, ok := m.prev[r.Node]; ok && s.done >= p.done && s.at.After(p.at) {
			rates[r.Node] = float64(s.done-p.done) / s.at.Sub(p.at).Seconds()
		}
	}
	m.prev = next
	return answered, rates, nil
}

// Measure reads the queues, the listener's heartbeats and (sm not nil)
// the workers' stats, and computes the decision. Instances are the
// workers online by their heartbeats or answering stats; with neither
// (no worker, or stats not asked and no events) it falls back to the
// most consumers any one queue has, as each worker consumes each of its
// queues once. A worker's rate comes from its heartbeats, else from its
// stats since the previous sample.
func Measure(ctx context.Context, conn *broker.Conn, hb *Heartbeats, sm *StatsMeter, queues []string, targetWait time.Duration) (*Measurement, error) {
	qs, err := Depths(ctx, conn, queues)
	if err != nil {
		return nil, err
	}
	var answered []string
	var statsRates map[string]float64
	if sm != nil {
		if answered, statsRates, err = sm.Sample(ctx); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	in := ScaleInput{TargetWait: targetWait}
	online := map[string]bool{}
	for _, b := range hb.Latest() {
		if b.Alive(now) {
			online[b.Hostname] = true
			in.Active += b.Active
		}
	}
	for _, n := range answered {
		online[n] = true
	}
	in.Instances = len(online)
	for _, q := range qs {
		in.Ready += q.Ready
		if len(online) == 0 {
			in.Instances = max(in.Instances, q.Consumers)
		}
	}
	beatRates, window := hb.Rates()
	tp := meanRate(beatRates, statsRates)
	tp.Window = window
	in.Throughput = tp.PerInstance
	return &Measurement{Time: now, Queues: qs, Throughput: tp, TargetWait: targetWait.Seconds(), Scale: Desired(in)}, nil
}
