package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/job"
)

// enqueue sends what it is given, exactly as a Celery client would, and
// reports the task ids; whatever a worker would refuse publishes nothing
// and exits 2 with the field and the reason.
func TestEnqueue(t *testing.T) {
	r := newJobsRig(t)
	r.put(t, "in/notes.txt", []byte("not a photo")) // left out of the batch
	r.put(t, "more/photo.png", testenv.Testdata(t, "photo.png"))
	reqFile := filepath.Join(t.TempDir(), "req.json")
	if err := os.WriteFile(reqFile, []byte(`{"source": "`+r.loc("in/photo.jpg")+`", "recipe": "gallery", "dest": "`+r.loc("out/f")+`/",
	  "cache_control": "public, max-age=60", "metadata": {"upload-id": "7"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	two := `{"source": "` + r.loc("in/photo.jpg") + `", "recipe": "default", "dest": "` + r.loc("out/s1") + `/"}
	        {"source": "` + r.loc("in/orient-6.jpg") + `", "outputs": [{"key": "` + r.loc("out/s2/t.webp") + `", "width": 64, "format": "webp"}]}`

	type task struct{ source, recipe, dest, key string }
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  []task // sorted by source then dest
	}{
		{"one from flags, local paths", "", []string{"enqueue", "--source", filepath.Join(r.root, "in/photo.jpg"), "--recipe", "default", "--dest", filepath.Join(r.root, "out/a")},
			[]task{{r.loc("in/photo.jpg"), "default", r.loc("out/a") + "/", ""}}},
		{"one with variants", "", []string{"enqueue", "--source", r.loc("in/photo.jpg"), "--variant", `{"key":"` + r.loc("out/v/64.webp") + `","width":64,"format":"webp"}`,
			"--variant", `{"key":"` + r.loc("out/v/32.png") + `","width":32,"format":"png"}`},
			[]task{{r.loc("in/photo.jpg"), "", "", r.loc("out/v/64.webp")}}},
		{"a file", "", []string{"enqueue", "--file", reqFile},
			[]task{{r.loc("in/photo.jpg"), "gallery", r.loc("out/f") + "/", ""}}},
		{"stdin, two in a row", two, []string{"enqueue", "-"},
			[]task{{r.loc("in/orient-6.jpg"), "", "", r.loc("out/s2/t.webp")}, {r.loc("in/photo.jpg"), "default", r.loc("out/s1") + "/", ""}}},
		{"a batch: a directory's images and a file", "", []string{"enqueue", "--recipe", "default", "--dest", r.loc("out/b") + "/", filepath.Join(r.root, "in"), r.loc("more/photo.png")},
			[]task{{r.loc("in/orient-6.jpg"), "default", r.loc("out/b/orient-6") + "/", ""},
				{r.loc("in/photo.jpg"), "default", r.loc("out/b/photo-jpg") + "/", ""}, {r.loc("more/photo.png"), "default", r.loc("out/b/photo-png") + "/", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in io.Reader
			if tc.stdin != "" {
				in = strings.NewReader(tc.stdin)
			}
			out, err := r.cli(t, in, append(tc.args, "--output", "json")...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			reported := map[string]string{}
			for _, it := range items[enqueueItem](t, out) {
				if it.Status != "enqueued" || it.ID == "" {
					t.Errorf("item %+v", it)
				}
				if _, ok := job.IDTime(it.ID); !ok {
					t.Errorf("task id %s is not a UUIDv7", it.ID)
				}
				reported[it.ID] = it.Item
			}
			var got []task
			for _, m := range r.take(t, len(tc.want)) {
				if m.Task != job.TaskName || reported[m.ID] == "" {
					t.Errorf("task %s id %s: not what enqueue reported (%v)", m.Task, m.ID, reported)
				}
				req, err := job.RequestFromTask(m.Args, m.Kwargs)
				if err != nil {
					t.Fatalf("the task's request: %v", err)
				}
				tk := task{req.Source, req.Recipe, req.Dest, ""}
				if len(req.Outputs) > 0 {
					tk.key = req.Outputs[0].Key
				}
				got = append(got, tk)
				if tc.name == "a file" && (req.CacheControl != "public, max-age=60" || req.Metadata["upload-id"] != "7") {
					t.Errorf("the object settings were lost: %+v", req)
				}
			}
			sort.Slice(got, func(a, b int) bool { return fmt.Sprint(got[a]) < fmt.Sprint(got[b]) })
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("tasks\n got %v\nwant %v", got, tc.want)
			}
		})
	}

	for _, tc := range []struct {
		name, stdin, wantErr string
		args                 []string
	}{
		{"unknown recipe", "", "recipe", []string{"enqueue", "--source", r.loc("in/photo.jpg"), "--recipe", "nope", "--dest", r.loc("out/x") + "/"}},
		{"source outside the file roots", "", "source", []string{"enqueue", "--source", "file:///etc/passwd", "--recipe", "default", "--dest", r.loc("out/x") + "/"}},
		{"output outside the file roots", "", "outputs[0].key", []string{"enqueue", "--source", r.loc("in/photo.jpg"), "--variant", `{"key":"file://` + r.journal + `/x.jpg","width":9}`}},
		{"a variant's unknown field", "", "widht", []string{"enqueue", "--source", r.loc("in/photo.jpg"), "--variant", `{"key":"` + r.loc("o.jpg") + `","widht":9}`}},
		{"recipe without dest", "", "dest", []string{"enqueue", "--source", r.loc("in/photo.jpg"), "--recipe", "default"}},
		{"nothing to send", "", "give a request", []string{"enqueue"}},
		{"a batch with variants", "", "batch", []string{"enqueue", "--variant", `{"key":"k","width":9}`, r.loc("in/photo.jpg")}},
		{"the second of two on stdin is bad: neither is sent", `{"source":"` + r.loc("in/photo.jpg") + `","recipe":"default","dest":"` + r.loc("o") + `/"} {"source":""}`,
			"stdin#2", []string{"enqueue", "-"}},
		{"not JSON", "{nope", "not JSON", []string{"enqueue", "-"}},
		{"JSON and flags", `{}`, "not both", []string{"enqueue", "-", "--recipe", "default"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := r.cli(t, strings.NewReader(tc.stdin), tc.args...)
			if exitCode(err) != exitUsage || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("exit %d, %v; want %d naming %q\n%s", exitCode(err), err, exitUsage, tc.wantErr, out)
			}
		})
	}
	r.take(t, 0) // nothing refused was sent

	// With no worker to run it, --wait gives up after --wait-timeout and
	// says so; the task stays queued.
	out, err := r.cli(t, nil, "enqueue", "--source", r.loc("in/photo.jpg"), "--recipe", "default", "--dest", r.loc("out/w")+"/",
		"--wait", "--wait-timeout", "1s", "--output", "json")
	if exitCode(err) != exitFailure {
		t.Errorf("--wait with no worker: exit %d (%v), want %d", exitCode(err), err, exitFailure)
	}
	if its := items[enqueueItem](t, out); len(its) != 1 || its[0].Status != "unfinished" || !strings.Contains(its[0].Error, "1s") {
		t.Errorf("--wait with no worker: %+v", its)
	}
	r.take(t, 1)
}

// --wait follows each task to its manifest: the batch's failures are
// reported with the worker's reason and the exit code says some failed.
func TestEnqueueWaitReportsEachResult(t *testing.T) {
	r := newJobsRig(t)
	r.worker(t)
	out, err := r.cli(t, nil, "enqueue", "--recipe", "default", "--dest", r.loc("out")+"/", "--wait", "--output", "json",
		r.loc("in/photo.jpg"), r.loc("in/orient-6.jpg"), r.loc("in/missing.jpg"))
	if exitCode(err) != exitPartial {
		t.Fatalf("exit %d (%v), want %d\n%s", exitCode(err), err, exitPartial, out)
	}
	got := map[string]enqueueItem{}
	for _, it := range items[enqueueItem](t, out) {
		got[filepath.Base(it.Item)] = it
	}
	for name, want := range map[string]string{"photo.jpg": "succeeded", "orient-6.jpg": "succeeded", "missing.jpg": "failed"} {
		if it := got[name]; it.Status != want {
			t.Errorf("%s: %+v, want %s", name, it, want)
		}
	}
	if it := got["missing.jpg"]; !strings.Contains(it.Error, "not_found") {
		t.Errorf("the failure's reason: %q", it.Error)
	}
	if it := got["photo.jpg"]; it.Result == nil || len(it.Result.Outputs) != 3 {
		t.Errorf("the result: %+v", it.Result)
	}
	for _, p := range []string{"out/photo/thumb.jpg", "out/orient-6/large.jpg"} {
		if _, err := os.Stat(filepath.Join(r.root, p)); err != nil {
			t.Errorf("output %s: %v", p, err)
		}
	}
	// Plain lines, one per task sent and per result, when no bar is drawn.
	out, err = r.cli(t, nil, "enqueue", "--recipe", "default", "--dest", r.loc("out2")+"/", "--wait", r.loc("in/photo.jpg"), r.loc("in/orient-6.jpg"))
	if err != nil || strings.Count(out, "enqueued\t") != 2 || strings.Count(out, "succeeded\t") != 2 {
		t.Errorf("progress lines: %v\n%s", err, out)
	}
}
