package testenv

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromiumPath is Debian 12's chromium package, installed by
// scripts/setup.sh: the browser the flags below were checked against.
const chromiumPath = "/usr/bin/chromium"

const chromiumTimeout = 60 * time.Second

// ScreenshotDirEnv names a directory where Screenshot also saves its PNGs,
// for a human to look at.
const ScreenshotDirEnv = "RENDERFARM_SCREENSHOT_DIR"

// Chromium returns the path of the headless browser for tests that look at
// pages as a user would.
func Chromium(t testing.TB) string {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%s=1: skipping Chromium integration test", SkipEnv)
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("testenv: chromium unavailable (run `bash scripts/setup.sh`, or set %s=1 to skip): %v", SkipEnv, err)
	}
	return chromiumPath
}

// Screenshot loads rawURL (loopback only) in a fresh headless Chromium with
// a width x height window and returns what it shows. The picture is taken
// at the load event, so <img> elements in the served HTML are loaded
// (even slow ones), but what scripts add after the load event is not
// waited for. --virtual-time-budget would wait for that, but it hangs on a
// page holding a request open (an EventSource), so it is not used.
//
// HTTP Basic credentials can go in the URL (http://user:pass@127.0.0.1:PORT/):
// Chromium answers the page's 401 challenge with them, and those of its
// same-origin subresources (any path or realm; not cross-origin ones, and
// localhost is another origin than 127.0.0.1). If the server refuses them,
// headless Chromium shows nothing at all, not even the 401 body;
// Screenshot then returns a blank (transparent) image, so a test can
// assert that nothing of the page shows. Any other failure to load fails
// the test.
func Screenshot(t testing.TB, rawURL string, width, height int) image.Image {
	t.Helper()
	file := filepath.Join(t.TempDir(), "screenshot.png")
	_, log := runChromium(t, rawURL, "--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height), "--screenshot="+file)
	b, err := os.ReadFile(file)
	if err != nil {
		// A failed navigation still exits 0; it just writes nothing.
		if credentialsRefused(t, rawURL, log) {
			return image.NewRGBA(image.Rect(0, 0, width, height))
		}
		t.Fatalf("testenv: chromium took no screenshot of %s: %v\n%s", redactURL(rawURL), err, chromiumLogTail(log))
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("testenv: decoding chromium's screenshot: %v", err)
	}
	if dir := os.Getenv(ScreenshotDirEnv); dir != "" {
		saveScreenshot(t, dir, b)
	}
	return img
}

// DumpDOM loads rawURL (loopback only) as Screenshot does and returns the
// DOM serialised as HTML, or "" if the server refused the credentials.
func DumpDOM(t testing.TB, rawURL string) string {
	t.Helper()
	dom, log := runChromium(t, rawURL, "--dump-dom")
	if len(bytes.TrimSpace(dom)) == 0 {
		if credentialsRefused(t, rawURL, log) {
			return ""
		}
		t.Fatalf("testenv: chromium dumped no DOM for %s\n%s", redactURL(rawURL), chromiumLogTail(log))
	}
	return string(dom)
}

// credentialsRefused tells from Chromium's log whether the page failed to
// load because its 401 could not be answered (wrong or no credentials). If
// a later Chromium words this differently, the caller fails the test
// instead: loud, never a silent pass.
func credentialsRefused(t testing.TB, rawURL, log string) bool {
	t.Helper()
	if !strings.Contains(log, "Page load failed: net::ERR_INVALID_AUTH_CREDENTIALS") {
		return false
	}
	t.Logf("testenv: %s refused the credentials: chromium shows nothing", redactURL(rawURL))
	return true
}

// CountColour returns how many pixels of img are c, each channel within tol.
func CountColour(img image.Image, c color.RGBA, tol uint8) int {
	near := func(a, b uint8) bool { return max(a, b)-min(a, b) <= tol }
	n := 0
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			p := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			if near(p.R, c.R) && near(p.G, c.G) && near(p.B, c.B) && near(p.A, c.A) {
				n++
			}
		}
	}
	return n
}

// runChromium runs one headless Chromium on rawURL with the extra flags and
// returns its standard output and its log (standard error) minus the noise.
func runChromium(t testing.TB, rawURL string, extra ...string) (stdout []byte, log string) {
	t.Helper()
	bin := Chromium(t)
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// Tests must not reach out: the machine's network is closed, and a page
	// elsewhere would make the test depend on it.
	switch u.Hostname() {
	case "127.0.0.1", "::1", "localhost":
	default:
		t.Fatalf("testenv: chromium may only load loopback URLs, not %s", u.Redacted())
	}
	dir := t.TempDir()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		// Without these Chromium keeps connecting to Google's services,
		// which this machine's closed network refuses.
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--user-data-dir=" + dir,
	}
	args = append(append(args, extra...), rawURL)
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// Crash reports and GTK's dconf would otherwise land in $HOME.
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "XDG_CACHE_HOME="+dir)
	// Chromium forks zygote, renderer and utility processes: a timeout kills
	// them all, and a test binary killed by -timeout takes the browser along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second // should a child outlive it holding stderr
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err = cmd.Run()
	// This machine has no D-Bus; Chromium's complaints about it would fill
	// the tail of the log shown on failure.
	var keep strings.Builder
	for line := range strings.Lines(stderr.String()) {
		if !strings.Contains(line, "dbus") {
			keep.WriteString(line)
		}
	}
	log = keep.String()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v", chromiumTimeout)
	}
	if err != nil {
		t.Fatalf("testenv: chromium on %s: %v\n%s", u.Redacted(), err, chromiumLogTail(log))
	}
	return out.Bytes(), log
}

func chromiumLogTail(log string) string { return string(s3LogTail([]byte(log), 2000)) }

func redactURL(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Redacted()
	}
	return rawURL
}

func saveScreenshot(t testing.TB, dir string, b []byte) {
	t.Helper()
	name := strings.ReplaceAll(t.Name(), "/", "_")
	err := os.MkdirAll(dir, 0o755)
	var f *os.File
	if err == nil {
		f, err = os.CreateTemp(dir, name+"-*.png")
	}
	if err == nil {
		_, err = f.Write(b)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Errorf("testenv: saving the screenshot in %s=%s: %v", ScreenshotDirEnv, dir, err)
		return
	}
	t.Logf("screenshot saved as %s", f.Name())
}
