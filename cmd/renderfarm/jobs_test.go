package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/storage"
)

// jobsRig is what the enqueue and replay tests share: a vhost of their
// own, file storage under root (photos in root/in), a file:// journal, and
// the flags that name them to the CLI and to workers.
type jobsRig struct {
	url, root, journal string
	flags              []string
}

func newJobsRig(t *testing.T) *jobsRig {
	t.Helper()
	r := &jobsRig{url: testenv.RabbitMQ(t), root: t.TempDir(), journal: t.TempDir()}
	r.flags = []string{"--broker", r.url, "--file-root", r.root, "--journal", "file://" + r.journal + "/"}
	for _, name := range []string{"photo.jpg", "orient-6.jpg"} {
		r.put(t, "in/"+name, testenv.Testdata(t, name))
	}
	return r
}

// put writes a file under the storage root.
func (r *jobsRig) put(t *testing.T, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(r.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// loc is the file:// location of a path under the root.
func (r *jobsRig) loc(rel string) string { return "file://" + filepath.Join(r.root, rel) }

// cli runs the CLI in-process with the rig's flags, stdin from in (nil:
// the test's own).
func (r *jobsRig) cli(t *testing.T, in io.Reader, args ...string) (string, error) {
	t.Helper()
	return runWithStdin(t, in, append(args, r.flags...)...)
}

// worker starts a real worker process on the rig's vhost and storage.
func (r *jobsRig) worker(t *testing.T) {
	t.Helper()
	testenv.Worker(t, r.url, nil, append([]string{"--concurrency", "2", "--events=false"}, r.flags[2:]...)...)
}

// take consumes n tasks from the celery queue, failing the test if fewer
// arrive within 10 s, and then makes sure no more are waiting.
func (r *jobsRig) take(t *testing.T, n int) []*celery.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, broker.Config{URL: r.url, Topology: celery.Queue{Name: "celery"}.Topology(celery.DefaultDeadLetter)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Consume(ctx, broker.ConsumeOptions{Queue: "celery", Prefetch: n + 1})
	if err != nil {
		t.Fatal(err)
	}
	var got []*celery.Message
	for len(got) < n {
		select {
		case d := <-ch:
			d.Ack()
			m, err := celery.Decode(d.Delivery)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, m)
		case <-ctx.Done():
			t.Fatalf("%d of %d tasks arrived", len(got), n)
		}
	}
	select {
	case d := <-ch:
		d.Ack()
		t.Fatalf("a task more than the %d expected: %s", n, d.Body)
	case <-time.After(300 * time.Millisecond):
	}
	return got
}

// record writes a manifest into the journal as a worker would have.
func (r *jobsRig) record(t *testing.T, m *job.Manifest) {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := strings.TrimPrefix(job.ManifestLocation("file://"+r.journal+"/", m.TaskID, m.Started), "file://")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// manifest is the journal's record of a task, nil if there is none.
func (r *jobsRig) manifest(t *testing.T, id string) *job.Manifest {
	t.Helper()
	store, err := storage.New(context.Background(), storage.Config{FileRoots: []string{r.journal}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := (&job.Journal{Store: store, Prefix: "file://" + r.journal + "/"}).Find(context.Background(), id)
	if err != nil {
		return nil
	}
	return m
}

// items decodes the --output json of enqueue or replay.
func items[T any](t *testing.T, out string) []T {
	t.Helper()
	var doc struct{ Items []T }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--output json: %v\n%s", err, out)
	}
	return doc.Items
}
