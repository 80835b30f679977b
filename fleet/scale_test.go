package fleet

import (
	"testing"
	"time"
)

func TestDesired(t *testing.T) {
	const minute = time.Minute
	for _, tc := range []struct {
		name string
		in   ScaleInput
		want int
		why  string
		bpi  float64 // backlog per instance
		abpi float64 // acceptable backlog per instance
	}{
		{"idle fleet scales to zero", ScaleInput{Ready: 0, Active: 0, Instances: 3, Throughput: 2, TargetWait: minute}, 0, ReasonIdle, 0, 120},
		{"nothing anywhere", ScaleInput{TargetWait: minute}, 0, ReasonIdle, 0, 0},
		{"the AWS example: 1500 ready, 0.1 s a task, 10 s wait", ScaleInput{Ready: 1500, Instances: 10, Throughput: 10, TargetWait: 10 * time.Second}, 15, ReasonBacklog, 150, 100},
		{"rounds up", ScaleInput{Ready: 100, Instances: 2, Throughput: 0.5, TargetWait: minute}, 4, ReasonBacklog, 50, 30},
		{"exactly at target", ScaleInput{Ready: 90, Instances: 1, Throughput: 1.5, TargetWait: minute}, 1, ReasonBacklog, 90, 90},
		{"float error does not add an instance", ScaleInput{Ready: 9, Instances: 3, Throughput: 0.3, TargetWait: 3 * time.Second}, 10, ReasonBacklog, 3, 0.8999999999999999},
		{"scale in", ScaleInput{Ready: 10, Instances: 8, Throughput: 1, TargetWait: minute}, 1, ReasonBacklog, 1.25, 60},
		{"running tasks only: keep one", ScaleInput{Ready: 0, Active: 4, Instances: 2, Throughput: 1, TargetWait: minute}, 1, ReasonFloor, 0, 60},
		{"backlog, no worker yet: start one", ScaleInput{Ready: 500, Instances: 0, TargetWait: minute}, 1, ReasonUnmeasured, 500, 0},
		{"backlog, workers but no task finished yet: hold", ScaleInput{Ready: 500, Instances: 4, Throughput: 0, TargetWait: minute}, 4, ReasonUnmeasured, 125, 0},
		{"no target wait: cannot compute, hold", ScaleInput{Ready: 5, Instances: 2, Throughput: 1}, 2, ReasonUnmeasured, 2.5, 0},
		{"negative inputs read as zero", ScaleInput{Ready: -3, Instances: -1, Throughput: -1, TargetWait: minute}, 0, ReasonIdle, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Desired(tc.in)
			if got.Desired != tc.want || got.Reason != tc.why {
				t.Errorf("Desired = %d (%s), want %d (%s)", got.Desired, got.Reason, tc.want, tc.why)
			}
			if got.BacklogPerInstance != tc.bpi || got.AcceptableBacklogPerInstance != tc.abpi {
				t.Errorf("backlog per instance %v, acceptable %v; want %v, %v", got.BacklogPerInstance, got.AcceptableBacklogPerInstance, tc.bpi, tc.abpi)
			}
		})
	}
}

func TestThroughputFromBeats(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	beat := func(host string, sec float64, processed int64) Beat {
		return Beat{Type: "worker-heartbeat", Hostname: host, Freq: 2, Processed: processed,
			Time: t0.Add(time.Duration(sec * float64(time.Second)))}
	}
	now := t0.Add(21 * time.Second)
	for _, tc := range []struct {
		name     string
		beats    []Beat
		rate     float64
		measured int
	}{
		{"one worker, 2 tasks/s", []Beat{beat("a", 0, 100), beat("a", 10, 110), beat("a", 20, 140)}, 2, 1},
		{"mean of two workers", []Beat{beat("a", 10, 0), beat("a", 20, 40), beat("b", 10, 5), beat("b", 20, 25)}, 3, 2},
		{"one beat is no rate", []Beat{beat("a", 20, 7)}, 0, 0},
		{"idle worker measures zero", []Beat{beat("a", 10, 7), beat("a", 20, 7)}, 0, 1},
		{"a restart counts from the restart", []Beat{beat("a", 0, 500), beat("a", 10, 0), beat("a", 20, 30)}, 3, 1},
		{"a worker gone silent is not measured", []Beat{beat("a", 0, 0), beat("a", 10, 50), beat("b", 10, 0), beat("b", 20, 10)}, 1, 1},
		{"an offline worker is not measured", []Beat{beat("a", 10, 0), {Type: "worker-offline", Hostname: "a", Freq: 2, Processed: 50, Time: t0.Add(20 * time.Second)}}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Heartbeats{window: time.Minute, beats: map[string][]Beat{}, now: func() time.Time { return now }}
			for _, b := range tc.beats {
				h.add(b)
			}
			got := h.Throughput()
			if got.PerInstance != tc.rate || got.Measured != tc.measured {
				t.Errorf("Throughput = %+v, want %v tasks/s over %d workers", got, tc.rate, tc.measured)
			}
		})
	}
}

// Beats older than the window go, so the rate follows the fleet's
// present, not its whole history.
func TestHeartbeatsWindow(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	h := &Heartbeats{window: 10 * time.Second, beats: map[string][]Beat{}, now: func() time.Time { return t0.Add(31 * time.Second) }}
	for i, p := range []int64{0, 1000, 1010, 1020} { // fast at first, then 1 task/s
		h.add(Beat{Type: "worker-heartbeat", Hostname: "a", Freq: 2, Processed: p, Time: t0.Add(time.Duration(i*10) * time.Second)})
	}
	if got := h.Throughput(); got.PerInstance != 1 || got.Window != 10*time.Second {
		t.Fatalf("Throughput = %+v, want 1 task/s over the last 10 s", got)
	}
}

func TestMeanRatePrefersHeartbeats(t *testing.T) {
	for _, tc := range []struct {
		name                string
		beats, stats        map[string]float64
		rate                float64
		measured, fromStats int
	}{
		{"heartbeats only", map[string]float64{"a": 2, "b": 4}, nil, 3, 2, 0},
		{"stats only", nil, map[string]float64{"py": 1}, 1, 1, 1},
		{"a worker in both counts once, by its heartbeats", map[string]float64{"a": 2}, map[string]float64{"a": 100, "py": 4}, 3, 2, 1},
		{"nothing", nil, nil, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := meanRate(tc.beats, tc.stats)
			if got.PerInstance != tc.rate || got.Measured != tc.measured || got.FromStats != tc.fromStats {
				t.Errorf("meanRate = %+v, want %v over %d (%d by stats)", got, tc.rate, tc.measured, tc.fromStats)
			}
		})
	}
}
