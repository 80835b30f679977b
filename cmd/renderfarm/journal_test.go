package main

import (
	"bytes"
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

// The journal inside a --file-root is carved out of it: neither the web
// tier nor a worker lets a request read or write there, in any spelling,
// so no request can overwrite another task's manifest or leave a file
// where a future day's folder must go.
func TestJournalOutOfReachOfRequests(t *testing.T) {
	root := t.TempDir()
	journal := filepath.Join(root, "_jobs")
	for _, d := range []string{filepath.Join(root, "in"), filepath.Join(journal, "2026", "12", "02")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{"in/j": journal, "in/jrel": "../_jobs", "in/up": root} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	photo, err := os.ReadFile("../../testdata/photo.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "in", "photo.jpg"), photo, 0o644); err != nil {
		t.Fatal(err)
	}
	src := "file://" + root + "/in/photo.jpg"
	flags := []string{"--file-root", root, "--journal", "file://" + journal + "/"}

	amqpURL := testenv.RabbitMQ(t)
	testenv.Worker(t, amqpURL, nil, append([]string{"--concurrency", "1", "--events=false"}, flags...)...)
	web := startWeb(t, append([]string{"--broker", amqpURL, "--tokens", webToken}, flags...)...)
	web.waitReady(t)

	// A real task's manifest, the one an attacker would overwrite.
	victim := sendTask(t, amqpURL, map[string]any{"source": src, "recipe": "default", "dest": "file://" + root + "/out/"})
	if victim["state"] != "SUCCESS" {
		t.Fatalf("a plain render: %v", victim)
	}
	victimPath := strings.TrimPrefix(job.ManifestLocation("file://"+journal+"/", victim["id"].(string), time.Now()), "file://")
	before, err := os.ReadFile(victimPath)
	if err != nil {
		t.Fatalf("the victim's manifest: %v", err)
	}
	rel := strings.TrimPrefix(victimPath, journal+"/")
	nextYear := fmt.Sprint(time.Now().Year() + 1)

	keys := []string{
		"file://" + journal + "/" + rel,
		"file://localhost" + journal + "/" + rel,
		"file://" + root + "/%5fjobs/" + rel,
		"file://" + journal + "/" + nextYear,
		"file://" + journal,
		"file://" + root + "/in/j/" + rel,
		"file://" + root + "/in/j/" + nextYear,
		"file://" + root + "/in/jrel/" + nextYear,
		"file://" + root + "/in/up/_jobs/" + nextYear,
		// Not valid locations at all, refused before any guard:
		"file://" + journal + "//" + nextYear,
		"file://" + journal + "/./" + nextYear,
		"file://" + journal + "/" + nextYear + "/",
	}
	for _, key := range keys {
		req := map[string]any{"source": src, "outputs": []any{map[string]any{"key": key, "width": 16, "format": "jpeg"}}}
		body, _ := json.Marshal(req)
		if code := web.do(t, webToken, "POST", "/v1/renders", string(body)); code != 400 {
			t.Errorf("web tier: output %s answered %d, want 400", key, code)
		}
		out := sendTask(t, amqpURL, req)
		if out["state"] != "FAILURE" || !strings.Contains(fmt.Sprint(out["exc_message"]), "invalid_location") &&
			!strings.Contains(fmt.Sprint(out["exc_message"]), "reserved for the job journal") {
			t.Errorf("worker: output %s gave %v, want a FAILURE naming the journal or the location", key, out)
		}
	}
	// A source in the journal: its manifests are not for requests to read.
	req := map[string]any{"source": "file://" + root + "/in/j/" + rel, "recipe": "default", "dest": "file://" + root + "/out2/"}
	body, _ := json.Marshal(req)
	if code := web.do(t, webToken, "POST", "/v1/renders", string(body)); code != 400 {
		t.Errorf("web tier: a source in the journal answered %d, want 400", code)
	}
	if out := sendTask(t, amqpURL, req); out["state"] != "FAILURE" || !strings.Contains(fmt.Sprint(out["exc_message"]), "reserved for the job journal") {
		t.Errorf("worker: a source in the journal gave %v", out)
	}

	// A symlink out of the root answers alike whether its target exists,
	// from both commands: no probing the host's files.
	for name, target := range map[string]string{"etc-missing": "/etc/no-such-file", "etc-passwd": "/etc/passwd"} {
		if err := os.Symlink(target, filepath.Join(root, "in", name)); err != nil {
			t.Fatal(err)
		}
	}
	var webAnswers, workerAnswers []string
	for _, name := range []string{"etc-missing", "etc-passwd"} {
		loc := "file://" + root + "/in/" + name
		req := map[string]any{"source": loc, "recipe": "default", "dest": "file://" + root + "/out4/"}
		body, _ := json.Marshal(req)
		code, answer := web.post(t, webToken, "/v1/renders", string(body))
		if code != 400 {
			t.Errorf("web tier: source %s answered %d, want 400", name, code)
		}
		webAnswers = append(webAnswers, strings.ReplaceAll(answer, name, "NAME"))
		out := sendTask(t, amqpURL, req)
		workerAnswers = append(workerAnswers, strings.ReplaceAll(fmt.Sprint(out["exc_message"]), name, "NAME"))
	}
	for _, answers := range [][]string{webAnswers, workerAnswers} {
		if answers[0] != answers[1] || !strings.Contains(answers[0], "outside the file roots") {
			t.Errorf("a missing and an existing target answer differently:\n%s\n%s", answers[0], answers[1])
		}
	}

	if after, _ := os.ReadFile(victimPath); !bytes.Equal(before, after) {
		t.Errorf("the victim's manifest changed:\n%s", after)
	}
	if fi, err := os.Lstat(filepath.Join(journal, nextYear)); err == nil {
		t.Errorf("%s exists (%v): next year's folder is blocked", filepath.Join(journal, nextYear), fi.Mode())
	}
	// The worker still records jobs: the refusals did not break the journal.
	if out := sendTask(t, amqpURL, map[string]any{"source": src, "recipe": "default", "dest": "file://" + root + "/out3/"}); out["state"] != "SUCCESS" {
		t.Errorf("a render after the attempts: %v", out)
	}
}

func sendTask(t *testing.T, amqpURL string, request any) map[string]any {
	t.Helper()
	return testenv.SendTask(t, amqpURL, job.TaskName, nil, request, 60)
}
