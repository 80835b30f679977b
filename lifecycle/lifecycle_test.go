package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/smithy-go"
	"github.com/renderfarm/renderfarm/internal/testenv"
)

const interval = 50 * time.Millisecond

func startWatcher(t *testing.T, m *testenv.IMDS) (*Watcher, *testenv.SyncBuffer) {
	t.Helper()
	logs := &testenv.SyncBuffer{}
	w := New(Config{Endpoint: m.URL, Interval: interval, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w, logs
}

func noNotice(t *testing.T, w *Watcher, d time.Duration) {
	t.Helper()
	select {
	case n := <-w.Notices():
		t.Fatalf("a notice with nothing posted: %+v", n)
	case <-time.After(d):
	}
}

func waitNotice(t *testing.T, w *Watcher) Notice {
	t.Helper()
	select {
	case n := <-w.Notices():
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no notice within 5s of posting it")
		return Notice{}
	}
}

// A notice that appears while the watcher runs is reported once, read
// from the metadata the way EC2 words it; the 404s and in-service states
// before it are not notices.
func TestWatcherReportsRetirement(t *testing.T) {
	at := time.Now().Add(2 * time.Minute).Truncate(time.Second)
	for _, tc := range []struct {
		name string
		post func(*testenv.IMDS)
		want Notice
	}{
		{"spot terminate", func(m *testenv.IMDS) { m.SetSpotNotice("terminate", at) }, Notice{Reason: SpotInterruption, Action: "terminate", Time: at}},
		{"spot stop", func(m *testenv.IMDS) { m.SetSpotNotice("stop", at) }, Notice{Reason: SpotInterruption, Action: "stop", Time: at}},
		{"spot notice unreadable", func(m *testenv.IMDS) { m.SetSpotBody("{garbled") }, Notice{Reason: SpotInterruption}},
		{"auto-scaling terminated", func(m *testenv.IMDS) { m.SetTargetLifecycleState("Terminated") }, Notice{Reason: ASGTermination}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testenv.FakeIMDS(t, "i-0123456789abcdef0", "eu-west-1")
			w, _ := startWatcher(t, m)
			if w.InstanceID() != "i-0123456789abcdef0" {
				t.Errorf("instance id %q", w.InstanceID())
			}
			noNotice(t, w, 6*interval)
			m.SetTargetLifecycleState("Pending:Wait") // not yet going
			noNotice(t, w, 3*interval)
			tc.post(m)
			if n := waitNotice(t, w); n.Reason != tc.want.Reason || n.Action != tc.want.Action || !n.Time.Equal(tc.want.Time) {
				t.Errorf("notice %+v, want %+v", n, tc.want)
			}
			// One notice, and polling stops with it.
			_, before, _ := m.Stats()
			noNotice(t, w, 4*interval)
			_, after, refused := m.Stats()
			if after[spotPath] != before[spotPath] {
				t.Errorf("still polling after the notice: %d then %d", before[spotPath], after[spotPath])
			}
			if refused != 0 {
				t.Errorf("%d GETs went without a valid IMDSv2 token", refused)
			}
			if before[spotPath] < 4 {
				t.Errorf("spot/instance-action asked %d times in ~%v", before[spotPath], 10*interval)
			}
		})
	}
}

// Without a metadata service Start fails at once with ErrNoMetadata, so a
// worker told to watch does not run blind.
func TestWatcherStartWithoutMetadata(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	gone := srv.URL
	srv.Close()
	w := New(Config{Endpoint: gone})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Start(ctx); !errors.Is(err, ErrNoMetadata) {
		t.Fatalf("Start with nothing listening: %v, want ErrNoMetadata", err)
	}
	w.Stop() // nothing started: returns at once
}

// Metadata failures while watching are logged once per kind, not every
// poll, and do not stop the watcher: a notice after they clear is seen.
func TestWatcherOutlivesMetadataErrors(t *testing.T) {
	m := testenv.FakeIMDS(t, "i-1", "eu-west-1")
	w, logs := startWatcher(t, m)
	m.FailWith(http.StatusInternalServerError)
	noNotice(t, w, 10*interval)
	m.FailWith(http.StatusServiceUnavailable)
	noNotice(t, w, 10*interval)
	m.FailWith(0)
	noNotice(t, w, 8*interval)
	m.FailWith(http.StatusInternalServerError)
	noNotice(t, w, 6*interval)
	m.FailWith(0)
	m.SetSpotNotice("terminate", time.Now().Add(2*time.Minute))
	if n := waitNotice(t, w); n.Reason != SpotInterruption {
		t.Errorf("notice %+v", n)
	}
	out := logs.String()
	for _, tc := range []struct {
		line string
		want int
	}{
		{"StatusCode: 500", 2}, // once, then again after the recovery
		{"StatusCode: 503", 1},
		{"answering again", 2},
	} {
		if got := strings.Count(out, tc.line); got != tc.want {
			t.Errorf("%q logged %d times, want %d:\n%s", tc.line, got, tc.want, out)
		}
	}
}

// The group name comes from the instance's tags when they are on.
func TestGroupName(t *testing.T) {
	m := testenv.FakeIMDS(t, "i-1", "eu-west-1")
	w, _ := startWatcher(t, m)
	if _, err := w.GroupName(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Errorf("tags off: %v, want ErrNotFound", err)
	}
	m.SetGroupTag("render-workers")
	if g, err := w.GroupName(context.Background()); err != nil || g != "render-workers" {
		t.Errorf("tags on: %q %v", g, err)
	}
}

// Complete sends the request AWS expects, signed for autoscaling in the
// client's region; an API error comes back as one.
func TestHookComplete(t *testing.T) {
	api := testenv.FakeAutoScaling(t)
	client := autoscaling.New(autoscaling.Options{
		Region:       api.Region,
		BaseEndpoint: aws.String(api.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDHOOK", "secret", ""),
	})
	h := Hook{Name: "drain-renders", Group: "render-workers", Client: client}
	if err := h.Complete(context.Background(), "i-0abc"); err != nil {
		t.Fatal(err)
	}
	reqs := api.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	for k, want := range map[string]string{
		"Action": "CompleteLifecycleAction", "LifecycleHookName": "drain-renders", "AutoScalingGroupName": "render-workers",
		"InstanceId": "i-0abc", "LifecycleActionResult": "CONTINUE",
	} {
		if got := reqs[0].Form.Get(k); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if want := "Credential=AKIDHOOK/"; !strings.Contains(reqs[0].Authorization, want) ||
		!strings.Contains(reqs[0].Authorization, "/"+api.Region+"/autoscaling/aws4_request") {
		t.Errorf("Authorization %q is not SigV4 for autoscaling in %s", reqs[0].Authorization, api.Region)
	}

	api.FailWith(http.StatusBadRequest)
	var apiErr smithy.APIError
	if err := h.Complete(context.Background(), "i-0abc"); !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ValidationError" {
		t.Errorf("a refused completion: %v, want the API's ValidationError", err)
	}
}
