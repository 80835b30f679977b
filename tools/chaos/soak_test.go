//go:build chaos

package chaos

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSoak (`make soak`, not in CI) sends steady load for SOAK_DURATION
// (default 20m) at SOAK_RATE tasks per second (default 4, what two workers
// on two cores sustain), and reports per minute the renders started and
// each worker's resident memory. After a warm-up of a fifth of the run,
// RSS must drift less than 10% and throughput stay within 20% of the
// first minute after the warm-up.
func TestSoak(t *testing.T) {
	nodeT = t
	duration := envDuration(t, "SOAK_DURATION", 20*time.Minute)
	rate := 4
	if v := os.Getenv("SOAK_RATE"); v != "" {
		rate, _ = strconv.Atoi(v)
	}
	r := &row{Scenario: fmt.Sprintf("soak: %v at %d tasks/s", duration, rate)}
	defer finish(t, r)
	f := newFarm(t, "soak", 2)

	type minute struct {
		executions int
		rssMiB     []int64
	}
	var minutes []minute
	var ids []string
	start, lastMark, lastExec := time.Now(), time.Now(), 0
	for i := 0; time.Since(start) < duration; {
		tick := time.Now()
		more, unavailable := f.send(i, i+rate)
		if unavailable > 0 {
			t.Errorf("%d posts got 503 under steady load", unavailable)
		}
		ids = append(ids, more...)
		i += rate
		if time.Since(lastMark) >= time.Minute {
			exec := f.executions()
			minutes = append(minutes, minute{executions: exec - lastExec, rssMiB: f.currentRSS()})
			lastExec, lastMark = exec, time.Now()
			m := minutes[len(minutes)-1]
			t.Logf("minute %d: %d renders started, worker RSS %v MiB", len(minutes), m.executions, m.rssMiB)
		}
		time.Sleep(time.Second - time.Since(tick))
	}
	f.outcome(r, ids, drainWithin)
	checkCommon(t, r)

	warm := max(1, len(minutes)/5)
	if len(minutes) <= warm {
		t.Fatalf("%d minutes measured: too short a run to judge drift", len(minutes))
	}
	sum := func(xs []int64) (s int64) {
		for _, x := range xs {
			s += x
		}
		return s
	}
	base, last := minutes[warm-1], minutes[len(minutes)-1]
	drift := float64(sum(last.rssMiB)-sum(base.rssMiB)) / float64(sum(base.rssMiB))
	first := minutes[warm]
	var series []string
	for _, m := range minutes {
		series = append(series, fmt.Sprintf("%d", sum(m.rssMiB)))
	}
	r.Recovery = "n/a"
	r.Notes += fmt.Sprintf("RSS of both workers per minute (MiB): %s; drift after warm-up (%d min) %+.1f%%; renders/min %d after warm-up, %d in the last minute. ",
		strings.Join(series, " "), warm, 100*drift, first.executions, last.executions)
	if drift > 0.10 {
		t.Errorf("RSS drifted %+.1f%% after the warm-up", 100*drift)
	}
	if lo, hi := 0.8*float64(first.executions), 1.2*float64(first.executions); float64(last.executions) < lo || float64(last.executions) > hi {
		t.Errorf("throughput went from %d to %d renders a minute", first.executions, last.executions)
	}
}

// currentRSS is each running worker's VmRSS now, in MiB.
func (f *farm) currentRSS() []int64 {
	var out []int64
	for _, p := range f.workers {
		if kb := procStatus(p.Pid(), "VmRSS:"); kb > 0 {
			out = append(out, kb/1024)
		}
	}
	return out
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}
