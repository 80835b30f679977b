package fleet

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// putRequest is what the fake CloudWatch read from one PutMetricData.
type putRequest struct {
	namespace string
	values    map[string]float64           // metric name (and queue) -> value
	units     map[string]string            //
	dims      map[string]map[string]string // metric name -> dimension name -> value
}

// fakeCloudWatch is a loopback server that decodes PutMetricData as the
// SDK sends it (Smithy RPC v2 CBOR, SigV4-signed) and answers success.
func fakeCloudWatch(t *testing.T) (url string, got func() []putRequest) {
	var mu sync.Mutex
	var reqs []putRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/service/GraniteServiceVersion20100801/operation/PutMetricData" {
			t.Errorf("request to %s", r.URL.Path)
			http.Error(w, "unexpected operation", http.StatusBadRequest)
			return
		}
		if auth := r.Header.Get("Authorization"); !strings.Contains(auth, "Credential=AKIDFLEETTEST/") || !strings.Contains(auth, "/eu-west-1/monitoring/aws4_request") {
			t.Errorf("not signed for eu-west-1 monitoring with the test key: %q", auth)
		}
		body, _ := io.ReadAll(r.Body)
		v, err := cbor.Decode(body)
		if err != nil {
			t.Errorf("body is not CBOR: %v", err)
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		in, _ := v.(cbor.Map)
		pr := putRequest{values: map[string]float64{}, units: map[string]string{}, dims: map[string]map[string]string{}}
		if ns, ok := in["Namespace"].(cbor.String); ok {
			pr.namespace = string(ns)
		}
		data, _ := in["MetricData"].(cbor.List)
		for _, d := range data {
			m, _ := d.(cbor.Map)
			name := string(m["MetricName"].(cbor.String))
			dims := map[string]string{}
			if l, ok := m["Dimensions"].(cbor.List); ok {
				for _, e := range l {
					em := e.(cbor.Map)
					dims[string(em["Name"].(cbor.String))] = string(em["Value"].(cbor.String))
				}
			}
			key := name
			if q, ok := dims["Queue"]; ok {
				key += "/" + q
			}
			val, err := cbor.AsFloat64(m["Value"])
			if err != nil {
				t.Errorf("%s: value %v", key, m["Value"])
			}
			pr.values[key] = val
			if u, ok := m["Unit"].(cbor.String); ok {
				pr.units[key] = string(u)
			}
			pr.dims[key] = dims
		}
		mu.Lock()
		reqs = append(reqs, pr)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/cbor")
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
		_, _ = w.Write(cbor.Encode(cbor.Map{}))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []putRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]putRequest{}, reqs...)
	}
}

// fakeAWSEnv points the SDK at url with fake credentials, as an operator
// would point it at a VPC endpoint: through the standard environment.
func fakeAWSEnv(t *testing.T, url string) {
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH", url)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFLEETTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fleet-test-secret")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func TestCloudWatchPut(t *testing.T) {
	url, got := fakeCloudWatch(t)
	fakeAWSEnv(t, url)
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
			before := len(got())
			if err := cw.Put(context.Background(), &tc.m); err != nil {
				t.Fatal(err)
			}
			reqs := got()
			if len(reqs) != before+1 {
				t.Fatalf("%d requests, want 1", len(reqs)-before)
			}
			r := reqs[len(reqs)-1]
			if r.namespace != "Renderfarm/Test" {
				t.Errorf("namespace %q", r.namespace)
			}
			if !reflect.DeepEqual(r.values, tc.values) {
				t.Errorf("values %v\nwant   %v", r.values, tc.values)
			}
			for key := range tc.values {
				want := asg
				if q, ok := strings.CutPrefix(key, "ReadyMessages/"); ok {
					want = map[string]string{"AutoScalingGroupName": "render-asg", "Queue": q}
				}
				if !reflect.DeepEqual(r.dims[key], want) {
					t.Errorf("%s dimensions %v, want %v", key, r.dims[key], want)
				}
			}
			if u := r.units["ThroughputPerInstance"]; tc.values["ThroughputPerInstance"] > 0 && u != "Count/Second" {
				t.Errorf("throughput unit %q", u)
			}
		})
	}
}
