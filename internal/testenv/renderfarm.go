package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
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

// Worker runs `renderfarm worker ARGS...` against the broker at amqpURL,
// with env added to the test's environment, and stops it with a warm
// shutdown (SIGTERM) when the test ends. Its log is printed if the test
// failed.
func Worker(t testing.TB, amqpURL string, env []string, args ...string) {
	t.Helper()
	bin := Renderfarm(t)
	cmd := exec.Command(bin, append([]string{"worker", "--broker", amqpURL, "--state-dir", t.TempDir()}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: starting the worker: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("worker log:\n%s", log.String())
		}
	})
}
