package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// Renderfarm builds bin/renderfarm from this checkout once per test
// process and returns its path, for tests that need the real binary (a
// worker in its own process, as production runs it).
func Renderfarm(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			binary.err = err
			return
		}
		if binary.dir, err = os.MkdirTemp("", "renderfarm-bin-"); err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(binary.dir, "renderfarm")
		cmd := exec.Command("go", "build", "-o", binary.path, "./cmd/renderfarm")
		cmd.Dir = root
		binary.out, binary.err = cmd.CombinedOutput()
	})
	if binary.err != nil {
		t.Fatalf("testenv: building renderfarm: %v\n%s", binary.err, binary.out)
	}
	return binary.path
}

// Process is a renderfarm command running in its own process, as
// production runs it.
type Process struct {
	cmd    *exec.Cmd
	out    lockedBuffer
	exited chan struct{}
	err    error // how it exited, once exited is closed
}

// Start runs `renderfarm ARGS...` with env added to the test's
// environment. When the test ends a process still running gets SIGTERM
// (a warm shutdown) and, 30 s later, SIGKILL; its output is printed if
// the test failed.
func Start(t testing.TB, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(Renderfarm(t), args...), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("testenv: starting renderfarm %s: %v", args[0], err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.Stop(30 * time.Second)
		if t.Failed() {
			t.Logf("renderfarm %s output:\n%s", args[0], p.Output())
		}
	})
	return p
}

// Output is what the process has printed so far, stdout and stderr.
func (p *Process) Output() string { return p.out.String() }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// KilledBy reports whether the process has exited, killed by sig.
func (p *Process) KilledBy(sig syscall.Signal) bool {
	select {
	case <-p.exited:
	default:
		return false
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) { _ = p.cmd.Process.Signal(sig) }

// WaitOutput waits up to within for a line of output containing s and
// returns that line; the test fails if the process exits first or the
// time runs out.
func (p *Process) WaitOutput(t testing.TB, s string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, line := range strings.Split(p.Output(), "\n") {
			if strings.Contains(line, s) {
				return line
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("testenv: renderfarm exited (%v) before printing %q:\n%s", p.err, s, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: no %q in renderfarm's output within %v", s, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends SIGTERM, waits up to grace for the process to exit (killing
// it then) and returns how it exited: nil for a clean exit.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return p.err
	default:
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("still running %v after SIGTERM: killed", grace)
	}
}

// Worker runs `renderfarm worker ARGS...` against the broker at amqpURL,
// with env added to the test's environment, until the test ends (see
// Start).
func Worker(t testing.TB, amqpURL string, env []string, args ...string) *Process {
	t.Helper()
	// A free port for the metrics, so several workers run side by side;
	// args may name another (the last --metrics-listen wins).
	return Start(t, env, append([]string{"worker", "--broker", amqpURL, "--state-dir", t.TempDir(), "--metrics-listen", "127.0.0.1:0"}, args...)...)
}

// lockedBuffer is output written by the process's copying goroutine and
// read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// SyncBuffer is a buffer safe to write from one goroutine (a logger) and
// read from the test's.
type SyncBuffer = lockedBuffer

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Testdata reads a file of the repository's testdata/ corpus.
func Testdata(t testing.TB, name string) []byte {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "testdata", name))
	if err != nil {
		t.Fatalf("testenv: %v (regenerate with `make testdata`)", err)
	}
	return b
}
