package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// IMDS is a fake EC2 instance metadata service on loopback that speaks
// IMDSv2 only, as an instance configured with HttpTokens=required does: a
// token from PUT /latest/api/token (which must carry a TTL) on every GET,
// 401 without one. It serves the paths renderfarm reads; the test changes
// what they say while a worker runs.
type IMDS struct {
	URL string // http://127.0.0.1:PORT, for AWS_EC2_METADATA_SERVICE_ENDPOINT

	mu         sync.Mutex
	instanceID string
	region     string
	group      string // the instance tag aws:autoscaling:groupName; "" = tags off
	spot       string // spot/instance-action's body; "" = 404
	state      string // autoscaling/target-lifecycle-state; "" = 404
	failWith   int    // a status every meta-data GET answers; 0 = none
	tokens     map[string]bool
	puts       int
	gets       map[string]int
	refused    int // GETs without a valid token
}

// FakeIMDS starts a fake metadata service for instance id, in region,
// closed when the test ends. The instance is in service and has no spot
// notice.
func FakeIMDS(t testing.TB, instanceID, region string) *IMDS {
	t.Helper()
	m := &IMDS{instanceID: instanceID, region: region, state: "InService", tokens: map[string]bool{}, gets: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(srv.Close)
	m.URL = srv.URL
	return m
}

// Env points a renderfarm process's AWS SDK at this service.
func (m *IMDS) Env() []string { return []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + m.URL} }

// SetSpotNotice posts a spot interruption notice: action (terminate, stop,
// hibernate) at the time given, as EC2 does two minutes ahead.
func (m *IMDS) SetSpotNotice(action string, at time.Time) {
	b, _ := json.Marshal(map[string]string{"action": action, "time": at.UTC().Format(time.RFC3339)})
	m.SetSpotBody(string(b))
}

// SetSpotBody makes spot/instance-action answer body verbatim.
func (m *IMDS) SetSpotBody(body string) {
	m.set(func() { m.spot = body })
}

// SetTargetLifecycleState sets what autoscaling/target-lifecycle-state
// says (InService, Terminated, ...; "" answers 404, as outside a group).
func (m *IMDS) SetTargetLifecycleState(s string) {
	m.set(func() { m.state = s })
}

// SetGroupTag makes the instance's tags, instance metadata tags on, name
// its auto-scaling group.
func (m *IMDS) SetGroupTag(group string) {
	m.set(func() { m.group = group })
}

// FailWith makes every meta-data GET answer status (0: answer again).
func (m *IMDS) FailWith(status int) {
	m.set(func() { m.failWith = status })
}

// Stats says how many tokens were issued, how many GETs each meta-data
// path had, and how many GETs were refused for lack of a valid token.
func (m *IMDS) Stats() (tokens int, gets map[string]int, refused int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := make(map[string]int, len(m.gets))
	for k, v := range m.gets {
		g[k] = v
	}
	return m.puts, g, m.refused
}

func (m *IMDS) set(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f()
}

func (m *IMDS) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.URL.Path == "/latest/api/token" {
		ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		if r.Method != http.MethodPut || err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "a token needs PUT and a TTL of 1 to 21600 seconds", http.StatusBadRequest)
			return
		}
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		tok := hex.EncodeToString(b)
		m.tokens[tok] = true
		m.puts++
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", strconv.Itoa(ttl))
		_, _ = w.Write([]byte(tok))
		return
	}
	if r.Method != http.MethodGet || !m.tokens[r.Header.Get("X-aws-ec2-metadata-token")] {
		m.refused++
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	if r.URL.Path == "/latest/dynamic/instance-identity/document" {
		// The SDK's region look-up reads it.
		b, _ := json.Marshal(map[string]string{"instanceId": m.instanceID, "region": m.region})
		_, _ = w.Write(b)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/latest/meta-data/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	m.gets[path]++
	if m.failWith != 0 {
		http.Error(w, "", m.failWith)
		return
	}
	var body string
	switch path {
	case "instance-id":
		body = m.instanceID
	case "spot/instance-action":
		body = m.spot
	case "autoscaling/target-lifecycle-state":
		body = m.state
	case "tags/instance/aws:autoscaling:groupName":
		body = m.group
	}
	if body == "" {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write([]byte(body))
}

// AutoScaling is a fake of the EC2 Auto Scaling API (the query protocol,
// as the SDK speaks it) on loopback that records each request's form and
// answers CompleteLifecycleAction.
type AutoScaling struct {
	URL    string
	Region string

	mu       sync.Mutex
	requests []AutoScalingRequest
	status   int // an error status to answer with; 0 = success
}

// AutoScalingRequest is one request the fake received.
type AutoScalingRequest struct {
	Form          url.Values // Action, LifecycleHookName, ...
	Authorization string     // the SigV4 header, which names the service and region
	At            time.Time
}

// FakeAutoScaling starts a fake Auto Scaling API, closed when the test
// ends.
func FakeAutoScaling(t testing.TB) *AutoScaling {
	t.Helper()
	a := &AutoScaling{Region: "eu-west-1"}
	srv := httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// Env points a renderfarm process's AWS SDK at this API, with fake
// credentials and a region.
func (a *AutoScaling) Env() []string {
	return []string{"AWS_ENDPOINT_URL_AUTO_SCALING=" + a.URL, "AWS_ACCESS_KEY_ID=AKIDLIFECYCLETEST",
		"AWS_SECRET_ACCESS_KEY=lifecycle-test-secret", "AWS_REGION=" + a.Region}
}

// FailWith makes the API answer a ValidationError with status (0: succeed
// again), as AWS does for a hook with no pending action.
func (a *AutoScaling) FailWith(status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status = status
}

// Requests returns the requests received so far.
func (a *AutoScaling) Requests() []AutoScalingRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AutoScalingRequest(nil), a.requests...)
}

func (a *AutoScaling) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.requests = append(a.requests, AutoScalingRequest{Form: r.PostForm, Authorization: r.Header.Get("Authorization"), At: time.Now()})
	status := a.status
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	if status != 0 {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code>` +
			`<Message>No active Lifecycle Action found with instance ID i-0</Message></Error><RequestId>1</RequestId></ErrorResponse>`))
		return
	}
	action := r.PostForm.Get("Action")
	_, _ = w.Write([]byte(`<` + action + `Response xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><` + action + `Result></` + action +
		`Result><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></` + action + `Response>`))
}
