package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/testenv"
)

// Settings that cannot work stop the command with a message rather than
// leaving a web tier that answers 503 for ever.
func TestWebRefusesBadSettings(t *testing.T) {
	short := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(short, []byte("# ops\nshort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no tokens", []string{"--broker", "amqp://127.0.0.1:1/"}, 2, "API tokens"},
		{"short token", []string{"--broker", "amqp://127.0.0.1:1/", "--tokens-file", short}, 2, "at least 16 characters"},
		{"not an AMQP URL", []string{"--broker", "http://127.0.0.1/", "--tokens", webToken}, 1, "invalid URL"},
		{"two queues", []string{"--queue", "a,b", "--tokens", webToken}, 2, "--queue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, append([]string{"web", "--listen", "127.0.0.1:0"}, tc.args...)...)
			if exitCode(err) != tc.code || err == nil || !strings.Contains(err.Error()+out, tc.want) {
				t.Fatalf("exit %d (want %d), %v\n%s", exitCode(err), tc.code, err, out)
			}
		})
	}
}

// Ops rotate tokens by rewriting the file and sending SIGHUP; a broken
// file keeps the tokens in force, and SIGTERM ends the process cleanly.
func TestWebCommandRotatesTokensAndStopsCleanly(t *testing.T) {
	amqpURL := testenv.RabbitMQ(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	const first, second = "first-token-0123456789", "second-token-0123456789"
	writeFile := func(s string) {
		if err := os.WriteFile(tokens, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile("# the web tier's clients\n" + first + "\n")
	w := startWeb(t, "--broker", amqpURL, "--tokens-file", tokens, "--journal", "file://"+dir+"/jobs/")
	w.waitReady(t)

	// An id never issued: 404 from the journal for a known token.
	expect := func(when string, want map[string]int) {
		t.Helper()
		for token, code := range want {
			if got := w.do(t, token, "GET", "/v1/renders/never-issued", ""); got != code {
				t.Fatalf("%s: token %q: %d, want %d", when, token, got, code)
			}
		}
	}
	expect("at start", map[string]int{first: 404, second: 401, "": 401})

	writeFile(second + "\n")
	w.cmd.Process.Signal(syscall.SIGHUP)
	w.waitLog(t, "tokens reloaded")
	expect("after rotation", map[string]int{first: 401, second: 404})

	writeFile("# emptied by mistake\n")
	w.cmd.Process.Signal(syscall.SIGHUP)
	w.waitLog(t, "tokens not reloaded")
	expect("after an empty file", map[string]int{first: 401, second: 404})

	w.stop(t)
}

// A web tier booted while RabbitMQ is unreachable serves at once: up for
// /healthz, 503 for /readyz and enqueues, and ready by itself once the
// broker answers.
func TestWebStartsBeforeTheBroker(t *testing.T) {
	amqpURL := testenv.RabbitMQ(t)
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	// The broker's address for the web tier: a port that refuses
	// connections until the test puts a proxy to RabbitMQ on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	late := ln.Addr().String()
	ln.Close()
	rabbit := u.Host
	u.Host = late

	dir := t.TempDir()
	w := startWeb(t, "--broker", u.String(), "--tokens", webToken, "--journal", "file://"+dir+"/jobs/", "--file-root", dir)
	body := `{"source": "file://` + dir + `/in.jpg", "recipe": "gallery", "dest": "file://` + dir + `/out/"}`
	if code := w.do(t, "", "GET", "/healthz", ""); code != 200 {
		t.Fatalf("/healthz while connecting: %d", code)
	}
	if code := w.do(t, "", "GET", "/readyz", ""); code != 503 {
		t.Fatalf("/readyz while connecting: %d, want 503", code)
	}
	if code := w.do(t, webToken, "POST", "/v1/renders", body); code != 503 {
		t.Fatalf("POST while connecting: %d, want 503", code)
	}

	proxy(t, late, rabbit)
	w.waitReady(t)
	if code := w.do(t, webToken, "POST", "/v1/renders", body); code != 202 {
		t.Fatalf("POST once connected: %d, want 202", code)
	}
	w.stop(t)
}

const webToken = "web-test-token-0123456789"

// webProc is `renderfarm web` in its own process, as production runs it.
type webProc struct {
	base   string
	log    *syncBuffer
	cmd    *exec.Cmd
	exited chan error
}

// startWeb runs `renderfarm web ARGS...` on a free loopback port and waits
// until it serves; the process is killed when the test ends.
func startWeb(t *testing.T, args ...string) *webProc {
	t.Helper()
	w := &webProc{log: &syncBuffer{}, exited: make(chan error, 1)}
	w.cmd = exec.Command(testenv.Renderfarm(t), append([]string{"web", "--listen", "127.0.0.1:0", "--shutdown-grace", "5s"}, args...)...)
	stderr, err := w.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			w.log.WriteLine(line)
			if i := strings.Index(line, "web: serving"); i >= 0 {
				for _, f := range strings.Fields(line[i:]) {
					if a, ok := strings.CutPrefix(f, "addr="); ok {
						addr <- a
					}
				}
			}
		}
		w.exited <- w.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = w.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("web log:\n%s", w.log.String())
		}
	})
	select {
	case a := <-addr:
		w.base = "http://" + a
	case err := <-w.exited:
		t.Fatalf("web exited before serving: %v\n%s", err, w.log.String())
	case <-time.After(30 * time.Second):
		t.Fatal("web did not start serving within 30s")
	}
	return w
}

// do sends a request with token (none if empty) and returns the status
// code.
func (w *webProc) do(t *testing.T, token, method, path, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, w.base+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady waits for /readyz to say the broker is connected.
func (w *webProc) waitReady(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); w.do(t, "", "GET", "/readyz", "") != 200; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("/readyz not 200 within 30s")
		}
	}
}

// waitLog waits for s to appear in the process's log.
func (w *webProc) waitLog(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(w.log.String(), s); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log within 10s", s)
		}
	}
}

// stop sends SIGTERM and expects a clean exit.
func (w *webProc) stop(t *testing.T) {
	t.Helper()
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.exited:
		if err != nil {
			t.Fatalf("web after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("web still running 30s after SIGTERM")
	}
}

// proxy forwards connections on addr to target until the test ends.
func proxy(t *testing.T, addr, target string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the broker's stand-in port was taken meanwhile: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
}

// syncBuffer is a log written by one goroutine and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) WriteLine(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s + "\n")
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
