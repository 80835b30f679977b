package main

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/job"
)

// replay MANIFEST publishes the request a manifest recorded, as the task
// Python apps send; a file outside the journal is not read.
func TestReplayEnqueuesTheRecordedRequest(t *testing.T) {
	r := newJobsRig(t)
	manifest := filepath.Join(r.journal, "2026", "11", "22", "old-id.json")
	os.MkdirAll(filepath.Dir(manifest), 0o755)
	os.WriteFile(manifest, []byte(`{"task_id": "old-id", "status": "FAILURE", "attempts": 5,
	  "request": {"source": "s3://uploads/a.jpg", "recipe": "gallery", "dest": "s3://renders/a/", "cache_control": "public"}}`), 0o644)

	out, err := r.cli(t, nil, "replay", manifest)
	if err != nil || !strings.Contains(out, "old-id") || !strings.Contains(out, "enqueued") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	m := r.take(t, 1)[0]
	if m.Task != "renderfarm.render" || m.Kwargs["source"] != "s3://uploads/a.jpg" || m.Kwargs["recipe"] != "gallery" ||
		m.Kwargs["cache_control"] != "public" || m.ID == "old-id" || !strings.Contains(out, m.ID) {
		t.Errorf("replayed message: task %s id %s kwargs %v\n%s", m.Task, m.ID, m.Kwargs, out)
	}
	// Outside the journal, a manifest is refused.
	if _, err := r.cli(t, nil, "replay", "/etc/passwd"); err == nil {
		t.Error("replay read a file outside the journal")
	}
	r.take(t, 0)
}

// The story: a job fails because its source is not there yet;
// once it is uploaded the job replays by its id and succeeds, whichever
// client sent it, under a new id or its own.
func TestReplayByID(t *testing.T) {
	r := newJobsRig(t)
	r.worker(t)
	out, err := r.cli(t, nil, "enqueue", "--source", r.loc("in/late.jpg"), "--recipe", "default", "--dest", r.loc("out/late")+"/",
		"--wait", "--output", "json")
	if exitCode(err) != exitFailure {
		t.Fatalf("a missing source: exit %d (%v)\n%s", exitCode(err), err, out)
	}
	v7 := items[enqueueItem](t, out)[0].ID
	py := sendTask(t, r.url, map[string]any{"source": r.loc("in/late.jpg"), "recipe": "default", "dest": r.loc("out/py") + "/"})
	v4, _ := py["id"].(string)
	if py["state"] != "FAILURE" || uuid.MustParse(v4).Version() != 4 {
		t.Fatalf("the Python client's job: %v", py)
	}
	r.put(t, "in/late.jpg", testenv.Testdata(t, "photo.jpg"))

	for _, tc := range []struct {
		name, id string
		sameID   bool
	}{
		{"a UUIDv7, searched from its day", v7, false},
		{"a Python client's UUIDv4, searched back from today", v4, false},
		{"under its own id", v7, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"replay", tc.id, "--wait", "--output", "json"}
			if tc.sameID {
				args = append(args, "--same-id")
			}
			out, err := r.cli(t, nil, args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			it := items[replayItem](t, out)[0]
			if it.TaskID != tc.id || it.Outcome != "succeeded" || (it.NewID == tc.id) != tc.sameID {
				t.Errorf("replay of %s: %+v", tc.id, it)
			}
			if m := r.manifest(t, it.NewID); m == nil || m.Status != job.StatusSuccess {
				t.Errorf("the journal's record of %s: %+v", it.NewID, m)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(r.root, "out/late/thumb.jpg")); err != nil {
		t.Errorf("the replays' outputs: %v", err)
	}

	for _, tc := range []struct {
		name string
		args []string
		exit int
	}{
		{"an unknown UUIDv4", []string{uuid.NewString()}, exitNotFound},
		{"an unknown UUIDv7", []string{uuid.Must(uuid.NewV7()).String()}, exitNotFound},
		{"a manifest that is not there", []string{filepath.Join(r.journal, "2026/01/01/x.json")}, exitNotFound},
		{"one found, one not", []string{v4, uuid.NewString()}, exitPartial},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := r.cli(t, nil, append([]string{"replay", "--output", "json"}, tc.args...)...)
			if exitCode(err) != tc.exit {
				t.Fatalf("exit %d (%v), want %d\n%s", exitCode(err), err, tc.exit, out)
			}
			its := items[replayItem](t, out)
			if last := its[len(its)-1]; last.Outcome != "not_found" {
				t.Errorf("the missing job's item: %+v", last)
			}
		})
	}
}

// --local reruns here what the worker ran, to the same bytes, without the
// broker; --diff scores an unchanged job zero and a changed recipe not.
func TestReplayLocalAndDiff(t *testing.T) {
	r := newJobsRig(t)
	r.worker(t)
	out, err := r.cli(t, nil, "enqueue", "--source", r.loc("in/photo.jpg"), "--recipe", "default", "--dest", r.loc("out/p")+"/",
		"--wait", "--output", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	id := items[enqueueItem](t, out)[0].ID
	// No broker listens on port 1: --local must not need one.
	local := func(t *testing.T, args ...string) []replayItem {
		t.Helper()
		out, err := runWithStdin(t, nil, append(append([]string{"replay", id, "--output", "json", "--broker", "amqp://guest:guest@127.0.0.1:1/"},
			r.flags[2:]...), args...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return items[replayItem](t, out)
	}

	dir := t.TempDir()
	it := local(t, "--local", dir)[0]
	if it.Outcome != "rendered" || len(it.Outputs) != 3 {
		t.Fatalf("--local: %+v", it)
	}
	for _, o := range it.Outputs {
		want := filepath.Join(dir, r.root, "out/p", filepath.Base(o.Path))
		mine, err1 := os.ReadFile(o.Path)
		theirs, err2 := os.ReadFile(filepath.Join(r.root, "out/p", filepath.Base(o.Path)))
		if o.Path != want || err1 != nil || err2 != nil || !bytes.Equal(mine, theirs) || o.Key != r.loc("out/p/"+filepath.Base(o.Path)) {
			t.Errorf("output %+v: want it at %s with the worker's bytes (%v, %v)", o, want, err1, err2)
		}
	}

	changed := filepath.Join(t.TempDir(), "recipes.yaml")
	os.WriteFile(changed, []byte(`recipes:
  default:
    - {name: thumb, width: 200, height: 200, fit: cover, gravity: attention, format: jpeg, quality: 30}
    - {name: medium, width: 800, height: 800, format: jpeg, quality: 30, sharpen: 1}
    - {name: large, width: 1600, height: 1600, format: jpeg, quality: 30}
`), 0o644)
	for _, tc := range []struct {
		name    string
		args    []string
		changed bool
	}{
		{"unchanged", []string{"--diff"}, false},
		{"the recipe changed", []string{"--diff", "--recipes", changed}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := local(t, tc.args...)[0]
			if len(it.Outputs) != 3 {
				t.Fatalf("%+v", it)
			}
			for _, o := range it.Outputs {
				if o.Stored == nil || o.MeanAbsDiff == nil || o.Stored.Width != o.Width || o.Stored.Height != o.Height || o.Error != "" {
					t.Errorf("%s: %+v", o.Key, o)
					continue
				}
				if d := *o.MeanAbsDiff; (d > 0) != tc.changed || (o.PSNR != nil) != tc.changed || (o.Bytes != o.Stored.Bytes) != tc.changed {
					t.Errorf("%s: mean abs diff %v, psnr %v, bytes %d vs stored %d; changed = %v", o.Key, d, o.PSNR, o.Bytes, o.Stored.Bytes, tc.changed)
				}
			}
		})
	}
}

// A --since selection is counted and confirmed: refused without a terminal
// unless --yes, asked on one, then throttled by --rate and reported item by
// item.
func TestReplaySelection(t *testing.T) {
	r := newJobsRig(t)
	now := time.Now().UTC()
	failed := func(id, code, recipe string, ago time.Duration) {
		m := &job.Manifest{TaskID: id, Status: job.StatusFailure, Attempts: 1, Started: now.Add(-ago), Finished: now.Add(-ago + time.Second),
			Error:   &job.ManifestError{Code: code, Message: "storage " + r.loc("in/"+id) + ": " + code, Permanent: code == "not_found"},
			Request: &job.Request{}}
		m.Request.Source, m.Request.Recipe, m.Request.Dest = r.loc("in/"+id), recipe, r.loc("out/"+id)+"/"
		r.record(t, m)
	}
	for i := range 8 {
		failed(fmt.Sprintf("missing-%d", i), "not_found", "gallery", time.Duration(i+1)*time.Minute)
	}
	failed("outage", "unavailable", "default", 20*time.Minute)
	failed("long-ago", "not_found", "gallery", 5*time.Hour)
	r.record(t, &job.Manifest{TaskID: "fine", Status: job.StatusSuccess, Started: now.Add(-time.Minute), Finished: now,
		Request: &job.Request{}})

	console, tty := testenv.Pty(t)
	for _, tc := range []struct {
		name   string
		answer string // typed at the terminal; "" runs with a pipe for stdin
		args   []string
		exit   int
		sent   int
	}{
		{"no terminal, no --yes", "", []string{"--status", "failed"}, exitUsage, 0},
		{"the question answered no", "n", []string{"--status", "failed"}, exitFailure, 0},
		{"the question answered yes", "y", []string{"--status", "failed", "--recipe", "default"}, 0, 1},
		{"nothing matches", "", []string{"--status", "failed", "--error", "no-such-error", "--yes"}, exitNotFound, 0},
		{"--yes on a pipe", "", []string{"--status", "retrying", "--yes"}, exitNotFound, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in *os.File
			if tc.answer != "" {
				console.WriteString(tc.answer + "\n")
				in = tty
			} else {
				pr, pw, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				pw.WriteString("y\n") // a pipe's "y" is no answer
				pw.Close()
				defer pr.Close()
				in = pr
			}
			out, err := r.cli(t, in, append([]string{"replay", "--since", "2h"}, tc.args...)...)
			if exitCode(err) != tc.exit {
				t.Fatalf("exit %d (%v), want %d\n%s", exitCode(err), err, tc.exit, out)
			}
			if tc.answer != "" && !strings.Contains(out, "9 jobs match") && !strings.Contains(out, "1 job matches") {
				t.Errorf("the question did not give the count:\n%s", out)
			}
			if tc.sent > 0 && (!strings.Contains(out, "OUTCOME") || strings.Count(out, "enqueued") != tc.sent) {
				t.Errorf("the report:\n%s", out)
			}
			r.take(t, tc.sent)
		})
	}

	// Eight at 4/s: evenly spaced, so no more than 4 (and the first) in
	// any one second; unthrottled all eight would go at once.
	out, err := r.cli(t, nil, "replay", "--since", "2h", "--status", "failed", "--error", "NOT_FOUND", "--rate", "4/s", "--yes", "--output", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	its := items[replayItem](t, out)
	if len(its) != 8 {
		t.Fatalf("%d items, want the 8 not_found failures in the window:\n%s", len(its), out)
	}
	for _, it := range its {
		if !strings.HasPrefix(it.TaskID, "missing-") || it.Outcome != "enqueued" || it.At.IsZero() {
			t.Errorf("item %+v", it)
		}
		inASecond := 0
		for _, other := range its {
			if d := other.At.Sub(it.At); d >= 0 && d < time.Second {
				inASecond++
			}
		}
		if inASecond > 5 {
			t.Errorf("%d replays within a second of %s at --rate 4/s", inASecond, it.At)
		}
	}
	r.take(t, 8)
	if _, err := r.cli(t, nil, "replay", "--since", "2h", "--rate", "fast", "--yes"); exitCode(err) != exitUsage {
		t.Errorf("--rate fast: %v", err)
	}
}

// --diff against outputs on S3 (versitygw): the rerun reads each stored
// object back and scores it; an object changed since the job ran is the
// one that differs.
func TestReplayDiffOnS3(t *testing.T) {
	srv := testenv.S3(t, false)
	srv.CreateBucket(t, "uploads")
	srv.CreateBucket(t, "renders")
	for _, kv := range srv.Env() { // the in-process CLI's SDK reads these
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	s3c := srv.Client(t)
	ctx := context.Background()
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("uploads"), Key: aws.String("in/photo.jpg"),
		Body: bytes.NewReader(testenv.Testdata(t, "photo.jpg"))}); err != nil {
		t.Fatal(err)
	}
	r := newJobsRig(t)
	r.flags = append(r.flags, "--s3-path-style")
	testenv.Worker(t, r.url, srv.Env(), append([]string{"--concurrency", "2", "--events=false"}, r.flags[2:]...)...)
	out, err := r.cli(t, nil, "enqueue", "--source", "s3://uploads/in/photo.jpg", "--recipe", "default", "--dest", "s3://renders/p/",
		"--wait", "--output", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	id := items[enqueueItem](t, out)[0].ID
	diff := func(t *testing.T) map[string]outputDiff {
		t.Helper()
		// No broker listens on port 1: --diff must not need one.
		out, err := runWithStdin(t, nil, append([]string{"replay", id, "--diff", "--output", "json", "--broker", "amqp://guest:guest@127.0.0.1:1/"},
			r.flags[2:]...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		byKey := map[string]outputDiff{}
		for _, o := range items[replayItem](t, out)[0].Outputs {
			byKey[o.Key] = o
		}
		if len(byKey) != 3 {
			t.Fatalf("%d outputs compared, want the default recipe's 3: %s", len(byKey), out)
		}
		return byKey
	}
	for key, o := range diff(t) {
		if o.Stored == nil || o.MeanAbsDiff == nil || *o.MeanAbsDiff != 0 || o.Bytes != o.Stored.Bytes || o.Error != "" {
			t.Errorf("unchanged %s: %+v", key, o)
		}
	}

	// Re-encode one stored output much worse, same size.
	const changed = "s3://renders/p/thumb.jpg"
	obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("renders"), Key: aws.String("p/thumb.jpg")})
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(obj.Body)
	obj.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var worse bytes.Buffer
	if err := jpeg.Encode(&worse, img, &jpeg.Options{Quality: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("renders"), Key: aws.String("p/thumb.jpg"),
		Body: bytes.NewReader(worse.Bytes())}); err != nil {
		t.Fatal(err)
	}
	for key, o := range diff(t) {
		if o.Stored == nil || o.MeanAbsDiff == nil || o.Error != "" {
			t.Errorf("%s: %+v", key, o)
			continue
		}
		if got := *o.MeanAbsDiff > 0 && o.PSNR != nil && o.Stored.Bytes == worse.Len(); got != (key == changed) {
			psnr := "none"
			if o.PSNR != nil {
				psnr = fmt.Sprintf("%.1f dB", *o.PSNR)
			}
			t.Errorf("%s: mean abs diff %v, PSNR %s, stored %d bytes; changed on S3: %v", key, *o.MeanAbsDiff, psnr, o.Stored.Bytes, key == changed)
		}
	}
}
