package web_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/web"
)

// TestBrokerOutage stops RabbitMQ under a running web tier: every render
// posted meanwhile gets a 503 with Retry-After (never a 202: nothing
// could be confirmed), /readyz turns 503, and once the broker is back the
// same server enqueues again without a restart.
func TestBrokerOutage(t *testing.T) {
	st := startStack(t, false)
	body := mustJSON(map[string]any{"source": "s3://uploads/u/photo.jpg", "recipe": "default", "dest": "s3://renders/outage/"})
	post := func() answer { return call(t, "POST", st.url+"/v1/renders", bearer(token), body) }
	if a := post(); a.status != 202 {
		t.Fatalf("before the outage: %d %s", a.status, a.body)
	}

	testenv.StopBroker(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		a := post()
		if a.status == 202 {
			t.Fatalf("202 while the broker is stopped: %s", a.body)
		}
		code, _ := a.errorOf(t)
		if a.status != 503 || code != "broker_unavailable" || a.header.Get("Retry-After") == "" {
			t.Fatalf("during the outage: %d %v %s", a.status, a.header, a.body)
		}
		if strings.Contains(string(a.body), "unreachable") {
			break // the connection loss is seen: publishes now fail at once
		}
		if time.Now().After(deadline) {
			t.Fatalf("no immediate 503 within 15s of the outage: %s", a.body)
		}
	}
	start := time.Now()
	if a := post(); a.status != 503 || time.Since(start) > 2*time.Second {
		t.Errorf("a post during the outage took %v for %d: it must not wait for the broker", time.Since(start), a.status)
	}
	if a := call(t, "GET", st.url+"/readyz", "", nil); a.status != 503 || a.header.Get("Retry-After") == "" {
		t.Errorf("/readyz during the outage: %d %s", a.status, a.body)
	}
	if a := call(t, "GET", st.url+"/healthz", "", nil); a.status != 200 {
		t.Errorf("/healthz during the outage: %d", a.status)
	}

	testenv.StartBroker(t)
	deadline = time.Now().Add(60 * time.Second)
	for {
		a := post()
		if a.status == 202 {
			break
		}
		if a.status != 503 || time.Now().After(deadline) {
			t.Fatalf("after the broker restarted: %d %s", a.status, a.body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if a := call(t, "GET", st.url+"/readyz", "", nil); a.status != 200 {
		t.Errorf("/readyz after the restart: %d %s", a.status, a.body)
	}
}

// TestGracefulShutdown: a request in flight when shutdown starts is
// finished and answered; connections after it are refused; Serve returns
// cleanly.
func TestGracefulShutdown(t *testing.T) {
	st := startStack(t, false)
	srv, err := web.New(web.Config{Broker: st.conn, Exchange: "celery", RoutingKey: "celery", Store: st.store,
		Journal: &job.Journal{Store: st.jstore, Prefix: journal}, Tokens: []string{token}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, shutdown := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, 10*time.Second) }()
	base := "http://" + ln.Addr().String()

	// The request's body arrives in two halves, shutdown starting between.
	body := mustJSON(map[string]any{"source": "s3://uploads/u/photo.jpg", "recipe": "default", "dest": "s3://renders/drain/"})
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/v1/renders", pr)
	req.Header.Set("Authorization", bearer(token))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = int64(len(body))
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("the in-flight request failed: %v", err)
			answered <- nil
			return
		}
		answered <- resp
	}()
	go pw.Write(body[:10])
	time.Sleep(300 * time.Millisecond) // the handler is now reading the body
	shutdown()
	time.Sleep(300 * time.Millisecond) // the listener is closed
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("a new connection was accepted during shutdown")
	}
	go func() { pw.Write(body[10:]); pw.Close() }()
	if resp := <-answered; resp == nil || resp.StatusCode != 202 {
		t.Fatalf("in-flight request: %v", resp)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}
