package testenv

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/smithy-go/encoding/cbor"
)

// MetricPut is one PutMetricData as a fake CloudWatch decoded it.
type MetricPut struct {
	Namespace string
	// Values, Units and Dimensions are by metric name, with "/QUEUE"
	// appended for a datum that has a Queue dimension.
	Values     map[string]float64
	Units      map[string]string
	Dimensions map[string]map[string]string
}

// CloudWatch is a loopback stand-in for CloudWatch's PutMetricData: it
// decodes the request as aws-sdk-go-v2 sends it (Smithy RPC v2 CBOR,
// SigV4-signed with CloudWatchKeyID for eu-west-1) and answers success.
// There is no CloudWatch here, and this checks the real request.
type CloudWatch struct {
	URL  string
	mu   sync.Mutex
	puts []MetricPut
}

// CloudWatchKeyID is the fake access key the fake expects.
const CloudWatchKeyID = "AKIDFLEETTEST"

// FakeCloudWatch starts the fake and points the SDK at it through the
// standard AWS environment of this test process, as an operator points it
// at a VPC endpoint: AWS_ENDPOINT_URL_CLOUDWATCH, fake keys, a region, no
// shared files and no instance metadata.
func FakeCloudWatch(t *testing.T) *CloudWatch {
	cw := &CloudWatch{}
	srv := httptest.NewServer(http.HandlerFunc(cw.serve(t)))
	t.Cleanup(srv.Close)
	cw.URL = srv.URL
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_CLOUDWATCH": srv.URL, "AWS_ACCESS_KEY_ID": CloudWatchKeyID, "AWS_SECRET_ACCESS_KEY": "fleet-test-secret",
		"AWS_REGION": "eu-west-1", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	return cw
}

// Puts is what the fake received so far.
func (cw *CloudWatch) Puts() []MetricPut {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return append([]MetricPut{}, cw.puts...)
}

func (cw *CloudWatch) serve(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/service/GraniteServiceVersion20100801/operation/PutMetricData" {
			t.Errorf("testenv: CloudWatch request to %s", r.URL.Path)
			http.Error(w, "unexpected operation", http.StatusBadRequest)
			return
		}
		if auth := r.Header.Get("Authorization"); !strings.Contains(auth, "Credential="+CloudWatchKeyID+"/") || !strings.Contains(auth, "/eu-west-1/monitoring/aws4_request") {
			t.Errorf("testenv: CloudWatch request not signed for eu-west-1 monitoring with the test key: %q", auth)
		}
		body, _ := io.ReadAll(r.Body)
		v, err := cbor.Decode(body)
		if err != nil {
			t.Errorf("testenv: CloudWatch body is not CBOR: %v", err)
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		in, _ := v.(cbor.Map)
		p := MetricPut{Values: map[string]float64{}, Units: map[string]string{}, Dimensions: map[string]map[string]string{}}
		if ns, ok := in["Namespace"].(cbor.String); ok {
			p.Namespace = string(ns)
		}
		data, _ := in["MetricData"].(cbor.List)
		for _, d := range data {
			m, _ := d.(cbor.Map)
			name, _ := m["MetricName"].(cbor.String)
			dims := map[string]string{}
			l, _ := m["Dimensions"].(cbor.List)
			for _, e := range l {
				em, _ := e.(cbor.Map)
				dn, _ := em["Name"].(cbor.String)
				dv, _ := em["Value"].(cbor.String)
				dims[string(dn)] = string(dv)
			}
			key := string(name)
			if q, ok := dims["Queue"]; ok {
				key += "/" + q
			}
			val, err := cbor.AsFloat64(m["Value"])
			if err != nil {
				t.Errorf("testenv: CloudWatch datum %s: value %v", key, m["Value"])
			}
			p.Values[key] = val
			if u, ok := m["Unit"].(cbor.String); ok {
				p.Units[key] = string(u)
			}
			p.Dimensions[key] = dims
		}
		cw.mu.Lock()
		cw.puts = append(cw.puts, p)
		cw.mu.Unlock()
		w.Header().Set("Content-Type", "application/cbor")
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
		_, _ = w.Write(cbor.Encode(cbor.Map{}))
	}
}
