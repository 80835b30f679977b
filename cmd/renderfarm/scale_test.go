package main

import (
	"io"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/fleet"
	"github.com/renderfarm/renderfarm/internal/testenv"
)

// A backlog and no worker: nothing to measure, so one instance to start
// with; no backlog and no worker: zero.
func TestScaleWithoutWorkers(t *testing.T) {
	u := testenv.RabbitMQ(t)
	publishBacklog(t, u, "backlog", 40)
	publishBacklog(t, u, "empty", 0)
	for _, tc := range []struct {
		queues  string
		backlog int
		desired int
	}{{"backlog,empty", 40, 1}, {"empty", 0, 0}} {
		var got fleet.Scale
		runJSON(t, &got, "scale", "--broker", u, "--queues", tc.queues, "--target-wait", "30s", "--window", "300ms")
		if got.Backlog != tc.backlog || got.Instances != 0 || got.Desired != tc.desired || got.AcceptableBacklogPerInstance != 0 {
			t.Errorf("%s: %+v, want backlog %d, desired %d", tc.queues, got, tc.backlog, tc.desired)
		}
	}
}

// A worker busy on one queue and a known backlog on another: scale
// measures the worker's rate from its heartbeats and asks for the
// instances that drain the backlog within the target wait.
func TestScaleMeasuresAWorkerAndABacklog(t *testing.T) {
	u := testenv.RabbitMQ(t)
	fleetWorker(t, u, "busy@scale", "--queues", "work", "--concurrency", "2", "--prefetch", "100")
	publishBacklog(t, u, "backlog", 300)
	// 60 tasks of 0.5 s on 2 slots: 15 s of work at 4 tasks/s, all
	// prefetched at once, so the work queue's own ready count is 0.
	publishTasks(t, u, "work", 60, "renderfarm.test.sleep", 0.5)
	var got fleet.Scale
	runJSON(t, &got, "scale", "--broker", u, "--queues", "work,backlog", "--target-wait", "10s", "--window", "7s")
	if got.Backlog != 300 || got.Instances != 1 || got.BacklogPerInstance != 300 {
		t.Fatalf("%+v, want 300 ready on one instance", got)
	}
	if got.ThroughputPerInstance < 2.5 || got.ThroughputPerInstance > 4.6 {
		t.Fatalf("throughput %v tasks/s, want about 4 (2 slots, 0.5 s tasks)", got.ThroughputPerInstance)
	}
	acceptable := got.ThroughputPerInstance * 10
	want := int(math.Ceil(300/acceptable - 1e-9))
	if got.AcceptableBacklogPerInstance != acceptable || got.Desired != want || want < 7 || want > 12 {
		t.Fatalf("%+v, want acceptable %v and desired %d", got, acceptable, want)
	}
	out, err := run(t, "scale", "--broker", u, "--queues", "work,backlog", "--target-wait", "10s", "--window", "5s")
	if err != nil || !strings.Contains(out, "desired instances") || !strings.Contains(out, "backlog per instance") {
		t.Errorf("table: %v\n%s", err, out)
	}
}

// --listen serves the figures and measures them again each interval.
func TestScaleListenServesGauges(t *testing.T) {
	u := testenv.RabbitMQ(t)
	publishBacklog(t, u, "backlog", 25)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := testenv.Start(t, nil, "scale", "--broker", u, "--queues", "backlog", "--listen", addr, "--window", "500ms", "--interval", "500ms")
	scrapeUntil := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		var body string
		for time.Now().Before(deadline) {
			if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
				ok := true
				for _, w := range want {
					ok = ok && strings.Contains(body, w+"\n")
				}
				if ok {
					return
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no %q in /metrics:\n%s\n%s", want, body, p.Output())
	}
	scrapeUntil(`renderfarm_scale_queue_ready_messages{queue="backlog"} 25`, "renderfarm_scale_desired_instances 1", "renderfarm_scale_instances 0")
	publishBacklog(t, u, "backlog", 15)
	scrapeUntil(`renderfarm_scale_queue_ready_messages{queue="backlog"} 40`, "renderfarm_scale_backlog_messages 40")
	if resp, err := http.Get("http://" + addr + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/readyz: %v %v", err, resp)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("scale --listen did not stop cleanly on SIGTERM: %v", err)
	}
}

// --cloudwatch puts the figures scale printed, with the dimensions asked
// for (default: the queues), through the standard AWS environment.
func TestScalePutsToCloudWatch(t *testing.T) {
	u := testenv.RabbitMQ(t)
	publishBacklog(t, u, "backlog", 12)
	cw := testenv.FakeCloudWatch(t)
	for _, tc := range []struct {
		dims []string
		want map[string]string
	}{
		{nil, map[string]string{"Queues": "backlog"}},
		{[]string{"--cloudwatch-dimensions", "AutoScalingGroupName=render-workers"}, map[string]string{"AutoScalingGroupName": "render-workers"}},
	} {
		var got fleet.Scale
		runJSON(t, &got, append([]string{"scale", "--broker", u, "--queues", "backlog", "--window", "300ms", "--cloudwatch", "Renderfarm/Test"}, tc.dims...)...)
		puts := cw.Puts()
		if len(puts) == 0 {
			t.Fatal("nothing put to CloudWatch")
		}
		p := puts[len(puts)-1]
		want := map[string]float64{"BacklogPerInstance": got.BacklogPerInstance, "DesiredInstances": float64(got.Desired), "Backlog": 12,
			"Instances": 0, "ReadyMessages/backlog": 12}
		if p.Namespace != "Renderfarm/Test" || !reflect.DeepEqual(p.Values, want) || got.Desired != 1 {
			t.Errorf("put %s %v, want %v (scale printed %+v)", p.Namespace, p.Values, want, got)
		}
		if !reflect.DeepEqual(p.Dimensions["DesiredInstances"], tc.want) {
			t.Errorf("dimensions %v, want %v", p.Dimensions["DesiredInstances"], tc.want)
		}
	}
	if out, err := run(t, "scale", "--broker", u, "--queues", "backlog", "--cloudwatch", "X", "--cloudwatch-dimensions", "novalue"); exitCode(err) != exitUsage {
		t.Errorf("a dimension without a value: exit %d, want %d\n%s", exitCode(err), exitUsage, out)
	}
}

// A stock Celery worker started without heartbeats is still counted and
// measured: by its stats replies, their task totals growing between the
// start and the end of the window.
func TestScaleMeasuresAPythonWorkerByStats(t *testing.T) {
	u := testenv.RabbitMQ(t)
	publishBacklog(t, u, "backlog", 100)
	dir, err := filepath.Abs("../../fleet/testdata")
	if err != nil {
		t.Fatal(err)
	}
	testenv.PythonWorker(t, u, dir, "fleet_app", "py@scale", "--without-heartbeat", "-c", "2", "-P", "threads", "-Q", "work")
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := run(t, "inspect", "ping", "--broker", u, "--destination", "py@scale", "--timeout", "500ms")
		if err == nil && strings.Contains(out, "pong") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the python worker never answered: %v\n%s", err, out)
		}
	}
	publishTasks(t, u, "work", 80, "fleet.sleep", 0.25) // 10 s of work on 2 threads
	var got fleet.Measurement
	runJSON(t, &got, "scale", "--broker", u, "--queues", "backlog", "--target-wait", "10s", "--window", "4s")
	// At most 8 tasks/s (2 threads, 0.25 s tasks); on a loaded machine
	// the Python worker manages less, so only the bound is checked.
	if got.Instances != 1 || got.Throughput.FromStats != 1 || got.ThroughputPerInstance <= 0 || got.ThroughputPerInstance > 8.5 {
		t.Fatalf("%+v: want one instance measured by stats at up to 8 tasks/s", got)
	}
	if want := int(math.Ceil(100/(got.ThroughputPerInstance*10) - 1e-9)); got.Backlog != 100 || got.Desired != want {
		t.Fatalf("%+v, want desired %d", got.Scale, want)
	}
}
