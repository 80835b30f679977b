package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
)

// Beat is one worker-online, worker-heartbeat or worker-offline event.
type Beat struct {
	Type      string    // worker-online, worker-heartbeat or worker-offline
	Hostname  string    //
	Time      time.Time // the worker's own timestamp
	Freq      float64   // seconds between beats
	Active    int       // tasks running now
	Processed int64     // tasks finished since the worker started
	SWIdent   string    // "renderfarm", "py-celery"
	SWVer     string
}

// Alive says whether a worker whose last beat is b counts as online at
// now, by celery's rule: until two beat intervals have passed with no
// beat, and never after a worker-offline.
func (b Beat) Alive(now time.Time) bool {
	if b.Type == "worker-offline" {
		return false
	}
	freq := b.Freq
	if freq <= 0 {
		freq = 2
	}
	return now.Before(b.Time.Add(time.Duration(2 * freq * float64(time.Second))))
}

// parseBeat reads a worker-* event body.
func parseBeat(body []byte) (Beat, bool) {
	var ev struct {
		Type      string  `json:"type"`
		Hostname  string  `json:"hostname"`
		Timestamp float64 `json:"timestamp"`
		Freq      float64 `json:"freq"`
		Active    int     `json:"active"`
		Processed int64   `json:"processed"`
		SWIdent   string  `json:"sw_ident"`
		SWVer     string  `json:"sw_ver"`
	}
	if json.Unmarshal(body, &ev) != nil || ev.Hostname == "" || !strings.HasPrefix(ev.Type, "worker-") {
		return Beat{}, false
	}
	sec, frac := math.Modf(ev.Timestamp)
	return Beat{Type: ev.Type, Hostname: ev.Hostname, Time: time.Unix(int64(sec), int64(frac*1e9)),
		Freq: ev.Freq, Active: ev.Active, Processed: ev.Processed, SWIdent: ev.SWIdent, SWVer: ev.SWVer}, true
}

// Heartbeats listens to the workers' worker-* events on celery's event
// exchange and keeps each worker's beats of the last Window: who is
// online, how busy, and how fast the fleet finishes tasks. It runs from
// Start until Stop (or the Start context's end) and owns a private,
// auto-deleted queue bound to the exchange meanwhile.
type Heartbeats struct {
	conn   *broker.Conn
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	beats map[string][]Beat // by hostname, oldest first, within window of the newest

	queue  string             // guarded by mu, as are cancel and done
	cancel context.CancelFunc //
	done   chan struct{}      //
}

// NewHeartbeats keeps window's worth of beats per worker (at least two
// beat intervals make a throughput).
func NewHeartbeats(conn *broker.Conn, window time.Duration) *Heartbeats {
	return &Heartbeats{conn: conn, window: window, now: time.Now, beats: map[string][]Beat{}}
}

// Start binds a queue to the event exchange and starts collecting.
func (h *Heartbeats) Start(ctx context.Context) error {
	queue := "celeryev.renderfarm." + uuid.NewString()
	topo := celery.EventTopology()
	topo.Queues = []broker.Queue{{Name: queue, AutoDelete: true, Exclusive: true,
		// Events are only worth their freshness: a listener that stalls
		// must not pile them up in the broker.
		Args: amqp.Table{"x-message-ttl": int32(60000), "x-expires": int32(60000)}}}
	topo.Bindings = []broker.Binding{{Queue: queue, Exchange: celery.EventExchange, Key: "worker.#"}}
	if err := h.conn.Declare(ctx, topo); err != nil {
		return fmt.Errorf("fleet: listening to heartbeats: %w", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	ch, err := h.conn.Consume(cctx, broker.ConsumeOptions{Queue: queue, Exclusive: true, Prefetch: 100})
	if err != nil {
		cancel()
		return fmt.Errorf("fleet: listening to heartbeats: %w", err)
	}
	done := make(chan struct{})
	h.mu.Lock()
	h.cancel, h.done, h.queue = cancel, done, queue
	h.mu.Unlock()
	go func() {
		defer close(done)
		for d := range ch {
			_ = d.Ack()
			if b, ok := parseBeat(d.Body); ok {
				h.add(b)
			}
		}
	}()
	return nil
}

// Stop stops collecting and deletes the queue.
// A server may Stop while Start still waits for the broker; Stop then
// leaves nothing to clean up but Start's context, which the caller ends.
func (h *Heartbeats) Stop(ctx context.Context) {
	h.mu.Lock()
	cancel, done, queue := h.cancel, h.done, h.queue
	h.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
	}
	_ = h.conn.DeleteQueue(ctx, queue)
}

func (h *Heartbeats) add(b Beat) {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := append(h.beats[b.Hostname], b)
	sort.SliceStable(list, func(i, j int) bool { return list[i].Time.Before(list[j].Time) })
	newest := list[len(list)-1].Time
	for len(list) > 1 && newest.Sub(list[0].Time) > h.window {
		list = list[1:]
	}
	h.beats[b.Hostname] = list
}

// Latest is each worker's newest beat, online or not, by hostname.
func (h *Heartbeats) Latest() []Beat {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Beat, 0, len(h.beats))
	for _, l := range h.beats {
		out = append(out, l[len(l)-1])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
	return out
}

// Throughput is the fleet's measured rate of finished tasks.
type Throughput struct {
	// PerInstance is the mean rate, tasks per second, of the workers
	// measured; 0 when none was.
	PerInstance float64 `json:"per_instance"`
	// Measured is how many workers had two beats in the window with
	// time between them (a worker that restarted, its processed count
	// going down, counts from its restart), plus those measured by their
	// stats (FromStats of them).
	Measured  int `json:"measured_workers"`
	FromStats int `json:"measured_by_stats,omitempty"`
	// Window is the longest span the heartbeat rates were measured over.
	Window time.Duration `json:"window_ns"`
}

// Throughput measures each online worker's rate from the processed
// counts of its first and last beat in the window.
func (h *Heartbeats) Throughput() Throughput {
	rates, window := h.Rates()
	t := meanRate(rates, nil)
	t.Window = window
	return t
}

// Rates is each online, measurable worker's rate in tasks per second,
// and the longest span measured.
func (h *Heartbeats) Rates() (map[string]float64, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return ratesOf(h.beats, h.now())
}

func ratesOf(beats map[string][]Beat, now time.Time) (map[string]float64, time.Duration) {
	rates := map[string]float64{}
	var window time.Duration
	for host, l := range beats {
		last := l[len(l)-1]
		if !last.Alive(now) {
			continue
		}
		first := l[0]
		for i := len(l) - 1; i > 0; i-- { // from the last restart on
			if l[i].Processed < l[i-1].Processed {
				first = l[i]
				break
			}
		}
		span := last.Time.Sub(first.Time)
		if span <= 0 {
			continue
		}
		rates[host] = float64(last.Processed-first.Processed) / span.Seconds()
		window = max(window, span)
	}
	return rates, window
}

// meanRate averages the heartbeat rates and, for workers without one,
// the stats rates.
func meanRate(beats, stats map[string]float64) Throughput {
	var t Throughput
	var sum float64
	for _, r := range beats {
		sum += r
		t.Measured++
	}
	for host, r := range stats {
		if _, ok := beats[host]; !ok {
			sum += r
			t.Measured++
			t.FromStats++
		}
	}
	if t.Measured > 0 {
		t.PerInstance = sum / float64(t.Measured)
	}
	return t
}
