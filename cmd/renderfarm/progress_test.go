package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/testenv"
)

// readConsole collects what a pseudo-terminal's tty was given until want
// shows up or 10 s pass.
func readConsole(t *testing.T, console *os.File, want string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var seen []byte
		buf := make([]byte, 4096)
		for !bytes.Contains(seen, []byte(want)) {
			n, err := console.Read(buf)
			seen = append(seen, buf[:n]...)
			if err != nil {
				break
			}
		}
		got <- string(seen)
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("the terminal never showed %q", want)
		return ""
	}
}

// `render` over a batch draws a bar on a terminal, one step per source,
// and ends the line; on a pipe it draws nothing.
func TestRenderProgressBarOnATerminal(t *testing.T) {
	var srcs []string
	for range progressThreshold {
		srcs = append(srcs, "../../testdata/photo.jpg")
	}
	console, tty := testenv.Pty(t)
	for _, tc := range []struct {
		name     string
		terminal bool
		args     []string
		bar      bool
	}{
		{"terminal", true, nil, true},
		{"terminal, --quiet", true, []string{"--quiet"}, false},
		{"pipe", false, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, pipe bytes.Buffer
			app := newApp()
			app.Writer, app.ErrWriter = &out, &pipe
			if tc.terminal {
				app.ErrWriter = tty
			}
			args := append([]string{"renderfarm", "render", "--slots", "1", "--variant", `{"key":"t","width":64,"format":"jpeg"}`, "--out", t.TempDir()}, tc.args...)
			if err := app.Run(flagsFirst(app, append(args, srcs...))); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(pipe.String(), "\r") {
				t.Errorf("a bar on a pipe: %q", pipe.String())
			}
			if !tc.terminal {
				return
			}
			// The marker ends every case, so what one case drew is not
			// read as the next one's.
			tty.WriteString("<end>\n")
			drawn := readConsole(t, console, "<end>")
			last := fmt.Sprintf("] %d/%d", progressThreshold, progressThreshold)
			if bar := strings.Contains(drawn, "\r[") && strings.Contains(drawn, last); bar != tc.bar {
				t.Errorf("bar drawn: %v, want %v: %q", bar, tc.bar, drawn)
			}
			if tc.bar && strings.Count(drawn, "\r[") != progressThreshold {
				t.Errorf("%d bar steps for %d sources: %q", strings.Count(drawn, "\r["), progressThreshold, drawn)
			}
		})
	}
}

// `enqueue` of a batch draws the same bar instead of a line per task.
func TestEnqueueProgressBarOnATerminal(t *testing.T) {
	r := newJobsRig(t)
	var srcs []string
	for i := range progressThreshold {
		name := fmt.Sprintf("in/batch-%d.jpg", i)
		r.put(t, name, testenv.Testdata(t, "photo.jpg"))
		srcs = append(srcs, r.loc(name))
	}
	console, tty := testenv.Pty(t)
	var out bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, tty
	args := append([]string{"renderfarm", "enqueue", "--recipe", "default", "--dest", r.loc("out") + "/"}, srcs...)
	if err := app.Run(flagsFirst(app, append(args, r.flags...))); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	tty.WriteString("<end>\n")
	drawn := readConsole(t, console, "<end>")
	if strings.Count(drawn, "\r[") != progressThreshold || !strings.Contains(drawn, fmt.Sprintf("] %d/%d", progressThreshold, progressThreshold)) {
		t.Errorf("want a bar of %d steps on the terminal: %q", progressThreshold, drawn)
	}
	if strings.Contains(drawn, "enqueued\t") || strings.Contains(out.String(), "enqueued\t") {
		t.Errorf("per-task lines beside the bar: terminal %q, stdout %q", drawn, out.String())
	}
	if got := len(r.take(t, progressThreshold)); got != progressThreshold {
		t.Errorf("%d tasks sent, want %d", got, progressThreshold)
	}
}
