package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/renderfarm/renderfarm/internal/testenv"
)

// replay publishes a manifest's request again, as the task Python apps send.
func TestReplayEnqueuesTheRecordedRequest(t *testing.T) {
	url := testenv.RabbitMQ(t)
	conn, err := broker.Dial(context.Background(), broker.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Declare(context.Background(), broker.Topology{
		Exchanges: []broker.Exchange{{Name: "celery", Kind: "direct", Durable: true}},
		Queues:    []broker.Queue{{Name: "celery", Durable: true}},
		Bindings:  []broker.Binding{{Queue: "celery", Exchange: "celery", Key: "celery"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	manifest := filepath.Join(dir, "2026", "11", "22", "old-id.json")
	os.MkdirAll(filepath.Dir(manifest), 0o755)
	os.WriteFile(manifest, []byte(`{"task_id": "old-id", "status": "FAILURE", "attempts": 5,
	  "request": {"source": "s3://uploads/a.jpg", "recipe": "gallery", "dest": "s3://renders/a/", "cache_control": "public"}}`), 0o644)

	out, err := run(t, "replay", "--broker", url, "--journal", "file://"+dir+"/", manifest)
	if err != nil || !strings.Contains(out, "replayed old-id as ") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := conn.Consume(ctx, broker.ConsumeOptions{Queue: "celery", Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-ch:
		d.Ack()
		m, err := celery.Decode(d.Delivery)
		if err != nil {
			t.Fatal(err)
		}
		if m.Task != "renderfarm.render" || m.Kwargs["source"] != "s3://uploads/a.jpg" || m.Kwargs["recipe"] != "gallery" ||
			m.Kwargs["cache_control"] != "public" || m.ID == "old-id" || !strings.Contains(out, m.ID) {
			t.Errorf("replayed message: task %s id %s kwargs %v", m.Task, m.ID, m.Kwargs)
		}
	case <-ctx.Done():
		t.Fatal("nothing was enqueued")
	}
	// Outside the file roots, a manifest is refused.
	if _, err := run(t, "replay", "--broker", url, "/etc/passwd"); err == nil {
		t.Error("replay read a file outside --file-root")
	}
}
