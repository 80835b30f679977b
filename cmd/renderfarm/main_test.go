package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// run runs the CLI in-process and returns what it printed and its error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runWithStdin(t, nil, args...)
}

// runWithStdin is run with the command's stdin read from in (nil: the
// test's own).
func runWithStdin(t *testing.T, in io.Reader, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &out
	if in != nil {
		app.Reader = in
	}
	err := app.Run(flagsFirst(app, append([]string{"renderfarm"}, args...)))
	return out.String(), err
}

func exitCode(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestRenderRecipeNamesOutputsAndSummarises(t *testing.T) {
	dir := t.TempDir()
	out, err := run(t, "render", "--recipe", "default", "--out", dir, "../../testdata/photo.jpg", "../../testdata/orient-6.jpg")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, name := range []string{"photo_thumb.jpg", "photo_medium.jpg", "photo_large.jpg", "orient-6_thumb.jpg"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("missing output %s", name)
		}
	}
	for _, want := range []string{"FILE", "VARIANT", "SIZE", "BYTES", "MS", "200x200", "800x533", "2 sources, 6 outputs", "0 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

// Flags may follow the files, as in most CLIs: both orders write the same.
func TestFlagsAfterArguments(t *testing.T) {
	first, after := t.TempDir(), t.TempDir()
	if out, err := run(t, "render", "--recipe", "default", "--out", first, "../../testdata/photo.jpg"); err != nil {
		t.Fatalf("flags first: %v\n%s", err, out)
	}
	if out, err := run(t, "render", "../../testdata/photo.jpg", "--recipe", "default", "--out="+after); err != nil {
		t.Fatalf("flags after: %v\n%s", err, out)
	}
	for _, name := range []string{"photo_thumb.jpg", "photo_medium.jpg", "photo_large.jpg"} {
		a, errA := os.ReadFile(filepath.Join(first, name))
		b, errB := os.ReadFile(filepath.Join(after, name))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between the two orders (%v, %v)", name, errA, errB)
		}
	}
	app := newApp()
	for _, tc := range []struct{ in, want string }{
		{"renderfarm render a.jpg --recipe gallery --out o", "renderfarm render --recipe gallery --out o a.jpg"},
		{"renderfarm worker --events=false -c 2", "renderfarm worker --events=false -c 2"},
		{"renderfarm render a.jpg --help", "renderfarm render --help a.jpg"},
		{"renderfarm replay m1 --no-such m2", "renderfarm replay --no-such m1 m2"}, // left for urfave/cli to refuse
		{"renderfarm render -- --odd-name.jpg --out o", "renderfarm render -- --odd-name.jpg --out o"},
		{"renderfarm --version", "renderfarm --version"},
		// Subcommands take their flags after their own name.
		{"renderfarm dlq show id1 --output json", "renderfarm dlq show --output json id1"},
		{"renderfarm dlq replay id1 id2 --queue renders --all", "renderfarm dlq replay --queue renders --all id1 id2"},
		// urfave/cli looks for the completion flag last only.
		{"renderfarm render a.jpg --out o --generate-bash-completion", "renderfarm render --out o a.jpg --generate-bash-completion"},
		{"renderfarm dl --generate-bash-completion", "renderfarm dl --generate-bash-completion"},
	} {
		if got := strings.Join(flagsFirst(app, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestOutputBasesKeepSourcesApart(t *testing.T) {
	got := strings.Join(outputBases([]string{"a/photo.jpg", "b/photo.png", "c/cat.jpg", "c/cat.jpg", "x.tar.gz"}), " ")
	if want := "photo-jpg photo-png cat cat x.tar"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRenderFailureExitsNonZeroWithTheTypedMessage(t *testing.T) {
	dir := t.TempDir()
	out, err := run(t, "render", "--json", "--variant", `{"width":64,"format":"webp"}`, "--out", dir,
		"../../testdata/photo.jpg", "../../testdata/bomb.png")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "60000x60000") {
		t.Fatalf("exit %d, error %v", exitCode(err), err)
	}
	var doc struct {
		Files []struct {
			Source, Error, Code string
			Outputs             []struct {
				Path          string
				Width, Height int
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if len(doc.Files) != 2 || doc.Files[1].Code != "too_many_pixels" || len(doc.Files[0].Outputs) != 1 {
		t.Fatalf("unexpected results: %+v", doc.Files)
	}
	if o := doc.Files[0].Outputs[0]; o.Path != filepath.Join(dir, "photo_64w.webp") || o.Width != 64 || o.Height != 43 {
		t.Errorf("output %+v", o)
	}
}

func TestRenderRequestWithFileLocations(t *testing.T) {
	dir := t.TempDir()
	src, _ := filepath.Abs("../../testdata/photo.jpg")
	req := `{"source":"file://` + src + `","recipe":"gallery","dest":"file://` + dir + `/photo/"}`
	reqFile := filepath.Join(dir, "req.json")
	os.WriteFile(reqFile, []byte(req), 0o644)
	if out, err := run(t, "render", "--request", reqFile); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, name := range []string{"64.webp", "200.webp", "800.webp", "1600.webp", "64.jpg", "1600.jpg"} {
		if _, err := os.Stat(filepath.Join(dir, "photo", name)); err != nil {
			t.Errorf("missing %s", name)
		}
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"source":"s3://b/k","outputs":[{"key":"x","width":10}]}`), 0o644)
	if _, err := run(t, "render", "--request", bad); exitCode(err) != 2 || !strings.Contains(err.Error(), "local files") {
		t.Errorf("s3 source in the CLI: exit %d, %v", exitCode(err), err)
	}
}

func TestRenderUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"render", "../../testdata/photo.jpg"},
		{"render", "--recipe", "default", "--variant", `{"width":1}`, "x.jpg"},
		{"render", "--recipe", "default"},
		{"render", "--recipe", "nope", "x.jpg"},
		{"render", "--variant", `{"width":1,"fit":"squash"}`, "x.jpg"},
	} {
		if _, err := run(t, args...); exitCode(err) != 2 {
			t.Errorf("%v: exit %d (%v), want 2", args, exitCode(err), err)
		}
	}
}

func TestTuneJSONAndOverrides(t *testing.T) {
	t.Setenv("RENDERFARM_SLOTS", "3")
	out, err := run(t, "tune", "--json", "--memory", "4GiB")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Slots        int               `json:"slots"`
		VipsThreads  int               `json:"vips_threads"`
		MemoryBudget int64             `json:"memory_budget_bytes"`
		From         map[string]string `json:"from"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if doc.Slots != 3 || doc.From["slots"] != "override" || doc.MemoryBudget != 3<<30-256<<20 || doc.VipsThreads < 1 {
		t.Errorf("tune --json: %+v", doc)
	}
	if out, err := run(t, "tune"); err != nil || !strings.Contains(out, "memory budget") || !strings.Contains(out, "FROM") {
		t.Errorf("tune table: %v\n%s", err, out)
	}
	if _, err := run(t, "tune", "--memory-budget", "lots"); err == nil || !strings.Contains(err.Error(), "--memory-budget") {
		t.Errorf("bad size: %v", err)
	}
}
