package worker

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"
)

// heartbeatInterval is Celery's default: monitors treat a worker as gone
// after two missed beats.
const heartbeatInterval = 2 * time.Second

// heartbeat announces the worker: worker-online at start, worker-heartbeat
// every two seconds with its load and counts, worker-offline at the end.
type heartbeat struct {
	events  *eventSender
	version string
	stop    chan struct{}
	done    chan struct{}
}

func newHeartbeat(events *eventSender, version string) *heartbeat {
	return &heartbeat{events: events, version: version, stop: make(chan struct{}), done: make(chan struct{})}
}

func (h *heartbeat) Start() {
	h.events.send("worker-online", h.events.workerFields(h.version))
	go func() {
		defer close(h.done)
		t := time.NewTicker(heartbeatInterval)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				h.beat()
			}
		}
	}()
}

// beat sends one heartbeat now; remote control's heartbeat command uses it.
func (h *heartbeat) beat() { h.events.send("worker-heartbeat", h.events.workerFields(h.version)) }

// Shutdown stops the beats and says worker-offline.
func (h *heartbeat) Shutdown(ctx context.Context) {
	close(h.stop)
	select {
	case <-h.done:
	case <-ctx.Done():
	}
	h.events.send("worker-offline", h.events.workerFields(h.version))
}

// loadavg reads the 1, 5 and 15 minute load averages for heartbeats.
func loadavg() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return []float64{0, 0, 0}
	}
	f := strings.Fields(string(b))
	out := make([]float64, 3)
	for i := 0; i < 3 && i < len(f); i++ {
		out[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return out
}
