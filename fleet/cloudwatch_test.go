package fleet

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/testenv"
)

func TestCloudWatchPut(t *testing.T) {
	fake := testenv.FakeCloudWatch(t)
	cw, err := NewCloudWatch(context.Background(), "Renderfarm/Test", [][2]string{{"AutoScalingGroupName", "render-asg"}})
	if err != nil {
		t.Fatal(err)
	}
	asg := map[string]string{"AutoScalingGroupName": "render-asg"}
	for _, tc := range []struct {
		name   string
		m      Measurement
		values map[string]float64
	}{
		{"measured", Measurement{Time: time.Now(), Queues: []QueueDepth{{Name: "celery", Ready: 100}, {Name: "renders", Ready: 20}},
			Scale: Desired(ScaleInput{Ready: 120, Instances: 2, Throughput: 0.5, TargetWait: time.Minute})},
			map[string]float64{"BacklogPerInstance": 60, "AcceptableBacklogPerInstance": 30, "DesiredInstances": 4, "Backlog": 120,
				"Instances": 2, "ThroughputPerInstance": 0.5, "ReadyMessages/celery": 100, "ReadyMessages/renders": 20}},
		{"unmeasured leaves out throughput", Measurement{Time: time.Now(), Queues: []QueueDepth{{Name: "celery", Ready: 7}},
			Scale: Desired(ScaleInput{Ready: 7, TargetWait: time.Minute})},
			map[string]float64{"BacklogPerInstance": 7, "DesiredInstances": 1, "Backlog": 7, "Instances": 0, "ReadyMessages/celery": 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(fake.Puts())
			if err := cw.Put(context.Background(), &tc.m); err != nil {
				t.Fatal(err)
			}
			reqs := fake.Puts()
			if len(reqs) != before+1 {
				t.Fatalf("%d requests, want 1", len(reqs)-before)
			}
			r := reqs[len(reqs)-1]
			if r.Namespace != "Renderfarm/Test" {
				t.Errorf("namespace %q", r.Namespace)
			}
			if !reflect.DeepEqual(r.Values, tc.values) {
				t.Errorf("values %v\nwant   %v", r.Values, tc.values)
			}
			for key := range tc.values {
				want := asg
				if q, ok := strings.CutPrefix(key, "ReadyMessages/"); ok {
					want = map[string]string{"AutoScalingGroupName": "render-asg", "Queue": q}
				}
				if !reflect.DeepEqual(r.Dimensions[key], want) {
					t.Errorf("%s dimensions %v, want %v", key, r.Dimensions[key], want)
				}
			}
			if u := r.Units["ThroughputPerInstance"]; tc.values["ThroughputPerInstance"] > 0 && u != "Count/Second" {
				t.Errorf("throughput unit %q", u)
			}
		})
	}
}
