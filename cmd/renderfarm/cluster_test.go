//go:build cluster

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/job"
)

// A farm on a three-node RabbitMQ cluster with --quorum: the node the
// worker and the web tier use goes down mid-batch; both move to another
// node by themselves, the web tier accepts renders again within seconds,
// and every render it accepted (202: the broker confirmed it) completes.
func TestClusterNodeLossMidBatch(t *testing.T) {
	cl := testenv.RabbitMQCluster(t)
	brokers := cl.URL()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "in", "photo.jpg"), testenv.Testdata(t, "photo.jpg"), 0o644); err != nil {
		t.Fatal(err)
	}
	journal := "file://" + root + "/jobs/"
	flags := []string{"--broker", brokers, "--quorum", "--file-root", root, "--journal", journal}
	const host = "cluster@test"
	w := testenv.Worker(t, brokers, nil, append([]string{"--hostname", host, "--concurrency", "2"}, flags...)...)
	web := startWeb(t, append([]string{"--tokens", webToken}, flags...)...)
	web.waitReady(t)
	first := strings.TrimPrefix(cl.Nodes[0].URL, "amqp://guest:guest@")
	for name, p := range map[string]*testenv.Process{"worker": w, "web": web.Process} {
		if line := p.WaitOutput(t, "broker: connected", 30*time.Second); !strings.Contains(line, first) || strings.Contains(line, "guest:guest") {
			t.Fatalf("%s connected: %q, want the first node %s, password hidden", name, line, first)
		}
	}

	// --quorum replicates the task queue on every node; the queues that
	// cannot be quorum (the worker's pidbox, Celery's reply queues) stay
	// classic.
	queues := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(cl.Nodes[0].Ctl(t, "list_queues", "--no-table-headers", "name", "type", "members")), "\n") {
		f := strings.Fields(line)
		queues[f[0]] = f[1:]
	}
	if q := queues["celery"]; len(q) < 1 || q[0] != "quorum" || strings.Count(strings.Join(q, " "), "renderfarm-private-") != 3 {
		t.Fatalf("queue celery: %v, want a quorum queue with 3 members\n%v", q, queues)
	}
	if q := queues[host+".celery.pidbox"]; len(q) < 1 || q[0] != "classic" {
		t.Errorf("the pidbox queue: %v, want classic\n%v", q, queues)
	}

	body := func(i int) string {
		return fmt.Sprintf(`{"source": "file://%s/in/photo.jpg", "recipe": "gallery", "dest": "file://%s/out/%d/"}`, root, root, i)
	}
	var ids []string
	post := func(i int) int {
		code, answer := web.post(t, webToken, "/v1/renders", body(i))
		if code == 202 {
			var a struct{ ID string }
			if err := json.Unmarshal([]byte(answer), &a); err != nil || a.ID == "" {
				t.Fatalf("202 with %q", answer)
			}
			ids = append(ids, a.ID)
		}
		return code
	}
	const before, total = 12, 30
	for i := range before {
		if code := post(i); code != 202 {
			t.Fatalf("render %d before the node went: %d", i, code)
		}
	}

	stopped := make(chan time.Time, 1)
	go func() {
		cl.Nodes[0].Stop(t)
		stopped <- time.Now()
	}()
	var (
		down    time.Time // when the node had stopped
		refused int
		back    time.Duration
	)
	for i := before; i < total; i++ {
		code := post(i)
		select {
		case down = <-stopped:
		default:
		}
		switch {
		case code == 202 && !down.IsZero() && back == 0:
			back = time.Since(down)
		case code == 503:
			refused++
			i-- // the client retries a refusal, as a real one would
			time.Sleep(100 * time.Millisecond)
		case code != 202:
			t.Fatalf("render %d: %d", i, code)
		}
		if !down.IsZero() && time.Since(down) > time.Minute {
			t.Fatal("the web tier did not accept renders within a minute of the node going")
		}
	}
	if down.IsZero() {
		down = <-stopped
		for post(total) != 202 {
			if time.Since(down) > time.Minute {
				t.Fatal("the web tier did not accept renders within a minute of the node going")
			}
			time.Sleep(100 * time.Millisecond)
		}
		back = time.Since(down)
	}
	t.Logf("%d renders accepted, %d refused meanwhile; 202 again %v after the node stopped", len(ids), refused, back.Round(time.Millisecond))
	if back > 10*time.Second {
		t.Errorf("the web tier answered 202 again %v after the node stopped, want within a few seconds", back)
	}

	for name, p := range map[string]*testenv.Process{"worker": w, "web": web.Process} {
		line := p.WaitOutput(t, "broker: reconnected", 30*time.Second)
		if strings.Contains(line, first) || !strings.Contains(line, "127.0.0.1:570") {
			t.Errorf("%s reconnected: %q, want another node", name, line)
		}
	}

	// Every accepted render completes: its manifest says SUCCESS.
	deadline := time.Now().Add(3 * time.Minute)
	for _, id := range ids {
		for {
			m := readManifest(t, journal, id)
			if m != nil && m.Status == job.StatusSuccess {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("render %s: manifest %+v, want SUCCESS", id, m)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// A stock Celery client given the same list fails over past the
	// stopped node too, and `celery inspect stats` names the node the
	// worker is on now.
	stats := testenv.CeleryClient(t, brokers, "inspect", "stats")["reply"].(map[string]any)[host].(map[string]any)
	b := stats["broker"].(map[string]any)
	if port := fmt.Sprint(b["port"]); port == "5701" || !strings.HasPrefix(port, "570") {
		t.Errorf("inspect stats broker: %v, want a node still up", b)
	}
}

// readManifest is a task's manifest in a file:// journal, nil while there
// is none.
func readManifest(t *testing.T, journal, id string) *job.Manifest {
	t.Helper()
	path := strings.TrimPrefix(job.ManifestLocation(journal, id, time.Now()), "file://")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var m job.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil
	}
	return &m
}
