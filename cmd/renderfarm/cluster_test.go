//go:build cluster

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

	// A client posts a render every 150 ms and retries refusals; the node
	// stops once 12 are in, and the batch goes on until 12 more are.
	const each = 12
	render := func(i int) string {
		return fmt.Sprintf(`{"source": "file://%s/in/photo.jpg", "recipe": "gallery", "dest": "file://%s/out/%d/"}`, root, root, i)
	}
	b := startBatch(web, render)
	if err := b.waitAccepted(each, time.Minute); err != nil {
		t.Fatal(err)
	}
	cl.Nodes[0].Stop(t)
	stoppedAt := b.accepted()
	if err := b.waitAccepted(stoppedAt+each, time.Minute); err != nil {
		// Publishes nacked all along mean the task queue has no leader:
		// say what the cluster thinks of it.
		t.Fatalf("%v\nqueues as %s sees them:\n%s", err, cl.Nodes[1].Name,
			cl.Nodes[1].Ctl(t, "list_queues", "name", "type", "leader", "members", "online"))
	}
	ids, refused, gap := b.stop(t)
	t.Logf("%d renders accepted, %d refused (503) meanwhile; the longest wait between two 202s: %v", len(ids), refused, gap.Round(time.Millisecond))
	if gap > 10*time.Second {
		t.Errorf("the web tier accepted nothing for %v around the node's loss, want a few seconds at most", gap)
	}

	for name, p := range map[string]*testenv.Process{"worker": w, "web": web.Process} {
		line := p.WaitOutput(t, "broker: reconnected", 30*time.Second)
		if strings.Contains(line, first) || !strings.Contains(line, "127.0.0.1:570") || strings.Contains(line, "guest:guest") {
			t.Errorf("%s reconnected: %q, want another node, password hidden", name, line)
		}
		t.Logf("%s: %s", name, line)
		for _, l := range strings.Split(p.Output(), "\n") {
			if strings.Contains(l, "re-declaring topology") {
				t.Logf("%s: %s", name, l)
			}
		}
	}

	// A worker and a web tier started now, the first node still down,
	// come up on another: the classic queues that live on the stopped node
	// (delay queues, renderfarm.dead) do not keep them from starting.
	const host2 = "cluster2@test"
	w2 := testenv.Worker(t, brokers, nil, append([]string{"--hostname", host2, "--concurrency", "1"}, flags...)...)
	web2 := startWeb(t, append([]string{"--tokens", webToken}, flags...)...)
	web2.waitReady(t)
	code, answer := web2.post(t, webToken, "/v1/renders", render(1000))
	var a struct{ ID string }
	if err := json.Unmarshal([]byte(answer), &a); code != 202 || err != nil {
		t.Fatalf("a web tier started with the first node down: %d %s", code, answer)
	}
	ids = append(ids, a.ID)
	w2.WaitOutput(t, "broker: connected", 30*time.Second)

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
	reply := testenv.CeleryClient(t, brokers, "inspect", "stats")["reply"].(map[string]any)
	if _, ok := reply[host2]; !ok {
		t.Errorf("the worker started with the first node down does not answer inspect: %v", reply)
	}
	stats := reply[host].(map[string]any)
	sb := stats["broker"].(map[string]any)
	if port := fmt.Sprint(sb["port"]); port == "5701" || !strings.HasPrefix(port, "570") {
		t.Errorf("inspect stats broker: %v, want a node still up", sb)
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

// batch is a client of the web tier posting renders one after another in
// the background, retrying each refusal as a real client would.
type batch struct {
	stopped chan struct{}
	done    chan struct{}

	mu      sync.Mutex
	ids     []string    // accepted (202), in order
	times   []time.Time // when each was accepted
	refused int         // 503s
	err     error       // anything else, which ends the batch
}

func startBatch(web *webProc, body func(i int) string) *batch {
	b := &batch{stopped: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for i := 0; ; {
			select {
			case <-b.stopped:
				return
			case <-time.After(150 * time.Millisecond):
			}
			req, _ := http.NewRequest("POST", web.base+"/v1/renders", strings.NewReader(body(i)))
			req.Header.Set("Authorization", "Bearer "+webToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.fail(err)
				return
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var a struct{ ID string }
			switch {
			case resp.StatusCode == 503:
				b.mu.Lock()
				b.refused++
				b.mu.Unlock()
			case resp.StatusCode == 202 && json.Unmarshal(answer, &a) == nil && a.ID != "":
				b.mu.Lock()
				b.ids, b.times = append(b.ids, a.ID), append(b.times, time.Now())
				b.mu.Unlock()
				i++
			default:
				b.fail(fmt.Errorf("render %d: %d %s", i, resp.StatusCode, answer))
				return
			}
		}
	}()
	return b
}

func (b *batch) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err = err
}

func (b *batch) accepted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.ids)
}

// waitAccepted waits until n renders are accepted.
func (b *batch) waitAccepted(n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for b.accepted() < n {
		b.mu.Lock()
		err := b.err
		b.mu.Unlock()
		if err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d renders accepted within %v, want %d", b.accepted(), within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// stop ends the batch and returns the accepted ids, the number of
// refusals and the longest time between two acceptances.
func (b *batch) stop(t *testing.T) (ids []string, refused int, gap time.Duration) {
	t.Helper()
	close(b.stopped)
	<-b.done
	if b.err != nil {
		t.Fatal(b.err)
	}
	for i := 1; i < len(b.times); i++ {
		gap = max(gap, b.times[i].Sub(b.times[i-1]))
	}
	return b.ids, b.refused, gap
}
