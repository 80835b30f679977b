package celery

import (
	"os"
	"testing"
	"time"
)

func TestEventGolden(t *testing.T) {
	for _, name := range []string{"event_heartbeat_east", "event_heartbeat_west"} {
		t.Run(name, func(t *testing.T) {
			g := goldenNamed(t, name)
			p := g.params(t)
			zone := time.FixedZone("golden", int(p["zone_offset_seconds"].(int64)))
			now := time.Unix(1700000000, 250000000).In(zone)
			ev := NewEvent("worker-heartbeat", p["hostname"].(string), uint64(p["clock"].(int64)), now, map[string]any{
				"freq": 2.0, "active": 1, "processed": 10, "loadavg": []float64{0.5, 0.25, 0},
				"sw_ident": "py-celery", "sw_ver": "5.2.6", "sw_sys": "Linux",
			})
			if ev["pid"] != os.Getpid() {
				t.Errorf("pid = %v", ev["pid"])
			}
			ev["pid"] = p["pid"]
			key, pub, err := EncodeEvent(ev)
			if err != nil {
				t.Fatal(err)
			}
			if key != g.RoutingKey {
				t.Errorf("routing key %q, want %q", key, g.RoutingKey)
			}
			if g.Exchange != EventExchange {
				t.Errorf("celery published to %q", g.Exchange)
			}
			comparePublishing(t, g, pub)
		})
	}
}

func TestEventsMultiGolden(t *testing.T) {
	g := goldenNamed(t, "event_task_multi")
	host := "worker1@golden"
	received := NewEvent("task-received", host, 100, time.Unix(1700000001, 0).UTC(), map[string]any{
		"uuid": "t-1", "name": "tasks.add", "args": ArgsRepr([]any{2, 3}), "kwargs": KwargsRepr(nil),
		"root_id": "t-1", "parent_id": nil, "retries": 0, "eta": nil, "expires": nil,
	})
	succeeded := NewEvent("task-succeeded", host, 101, time.Unix(1700000002, 500000000).UTC(), map[string]any{
		"uuid": "t-1", "result": SafeRepr(map[string]any{"ok": "it's"}, reprMaxSize), "runtime": 0.015625,
	})
	for _, ev := range []Event{received, succeeded} {
		ev["pid"] = 4242
	}
	key, pub, err := EncodeEvents([]Event{received, succeeded})
	if err != nil {
		t.Fatal(err)
	}
	if key != g.RoutingKey {
		t.Errorf("routing key %q, want %q", key, g.RoutingKey)
	}
	comparePublishing(t, g, pub)
}

func TestUTCOffset(t *testing.T) {
	tests := []struct {
		east int
		want int
	}{
		{0, 0}, {3600, -1}, {-3600, 1}, {19800, -6}, {-12600, 3}, {-18000, 5}, {20700, -6}, {-1800, 0}, {1800, -1},
	}
	for _, tt := range tests {
		at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", tt.east))
		if got := UTCOffset(at); got != tt.want {
			t.Errorf("UTCOffset(east %ds) = %d, want %d", tt.east, got, tt.want)
		}
	}
}

func TestNewEventFields(t *testing.T) {
	now := time.Unix(1700000000, 0).UTC()
	ev := NewEvent("task-started", "w@h", 7, now, map[string]any{"uuid": "x", "timestamp": 1.5, "type": "ignored"})
	if ev.Type() != "task-started" || ev["timestamp"] != 1.5 || ev["clock"] != uint64(7) || ev["hostname"] != "w@h" {
		t.Errorf("event = %v", ev)
	}
	if EventGroup("task-succeeded") != "task" || EventGroup("worker-heartbeat") != "worker" || EventGroup("custom") != "custom" {
		t.Error("EventGroup")
	}
}

func TestEncodeEventsErrors(t *testing.T) {
	a := NewEvent("task-started", "w", 1, time.Now(), nil)
	b := NewEvent("worker-heartbeat", "w", 2, time.Now(), nil)
	for name, evs := range map[string][]Event{
		"empty":        nil,
		"mixed groups": {a, b},
		"no type":      {{"hostname": "w"}},
	} {
		if _, _, err := EncodeEvents(evs); err == nil {
			t.Errorf("%s: EncodeEvents succeeded", name)
		}
	}
	if _, _, err := EncodeEvent(Event{}); err == nil {
		t.Error("EncodeEvent without type succeeded")
	}
}
