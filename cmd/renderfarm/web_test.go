package main

import (
	"context"
	"github.com/renderfarm/renderfarm/broker/celery"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/internal/testenv"
)

// Settings that cannot work stop the command with a message rather than
// leaving a web tier that answers 503 for ever.
func TestWebRefusesBadSettings(t *testing.T) {
	short := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(short, []byte("# ops\nshort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	amqpURL := testenv.RabbitMQ(t)
	refused, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	refused.User = url.UserPassword("guest", "wrong")
	// The workers' queue, as a classic queue: a web tier told --quorum
	// declares it otherwise.
	conn, err := broker.Dial(context.Background(), broker.Config{URL: amqpURL})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Declare(context.Background(), celery.Queue{Name: "classic"}.Topology(celery.DefaultDeadLetter)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"refused login", []string{"--broker", refused.String(), "--tokens", webToken, "--journal", "file://" + t.TempDir() + "/"}, 1, "403"},
		{"queue declared otherwise", []string{"--broker", amqpURL, "--queue", "classic", "--quorum", "--tokens", webToken, "--journal", "file://" + t.TempDir() + "/"}, 1, "PRECONDITION_FAILED"},
		{"no tokens", []string{"--broker", "amqp://127.0.0.1:1/"}, 2, "API tokens"},
		{"short token", []string{"--broker", "amqp://127.0.0.1:1/", "--tokens-file", short}, 2, "at least 16 characters"},
		{"not an AMQP URL", []string{"--broker", "http://127.0.0.1/", "--tokens", webToken}, 2, "invalid URL"},
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
	w.Signal(syscall.SIGHUP)
	w.WaitOutput(t, "tokens reloaded", 10*time.Second)
	expect("after rotation", map[string]int{first: 401, second: 404})

	writeFile("# emptied by mistake\n")
	w.Signal(syscall.SIGHUP)
	w.WaitOutput(t, "tokens not reloaded", 10*time.Second)
	expect("after an empty file", map[string]int{first: 401, second: 404})

	if err := w.Stop(30 * time.Second); err != nil {
		t.Fatalf("web after SIGTERM: %v", err)
	}
}

// A web tier booted while RabbitMQ is unreachable serves at once: up for
// /healthz, 503 for /readyz and enqueues, and ready by itself once the
// broker answers.
func TestWebStartsBeforeTheBroker(t *testing.T) {
	amqpURL, brokerUp := testenv.LateRabbitMQ(t)
	dir := t.TempDir()
	w := startWeb(t, "--broker", amqpURL, "--tokens", webToken, "--journal", "file://"+dir+"/jobs/", "--file-root", dir)
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

	brokerUp()
	w.waitReady(t)
	if code := w.do(t, webToken, "POST", "/v1/renders", body); code != 202 {
		t.Fatalf("POST once connected: %d, want 202", code)
	}
	if err := w.Stop(30 * time.Second); err != nil {
		t.Fatalf("web after SIGTERM: %v", err)
	}
}

const webToken = "web-test-token-0123456789"

// webProc is `renderfarm web` in its own process, as production runs it.
type webProc struct {
	*testenv.Process
	base string
}

// startWeb runs `renderfarm web ARGS...` on a free loopback port and waits
// until it serves.
func startWeb(t *testing.T, args ...string) *webProc {
	t.Helper()
	p := testenv.Start(t, nil, append([]string{"web", "--listen", "127.0.0.1:0", "--shutdown-grace", "5s"}, args...)...)
	line := p.WaitOutput(t, "web: serving", 30*time.Second)
	_, addr, _ := strings.Cut(line, " addr=")
	addr, _, _ = strings.Cut(addr, " ")
	return &webProc{Process: p, base: "http://" + addr}
}

// do sends a request with token (none if empty) and returns the status
// code.
func (w *webProc) do(t *testing.T, token, method, path, body string) int {
	t.Helper()
	code, _ := w.send(t, token, method, path, body)
	return code
}

// post sends a POST and returns the status code and the body.
func (w *webProc) post(t *testing.T, token, path, body string) (int, string) {
	t.Helper()
	return w.send(t, token, "POST", path, body)
}

func (w *webProc) send(t *testing.T, token, method, path, body string) (int, string) {
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
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
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
