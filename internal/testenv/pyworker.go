package testenv

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// PythonWorker runs a stock Celery worker (Debian's python3-celery) of the
// app module in dir against amqpURL, named hostname, with events on, until
// the test ends: the peer that shows a Celery-compatible tool works with
// Celery itself and not only with our worker. The caller waits for it to
// be ready (a ping answers) since that is what it tests. Its output is
// logged if the test fails.
func PythonWorker(t testing.TB, amqpURL, dir, module, hostname string, args ...string) {
	t.Helper()
	cmd := exec.Command(PythonCelery, append([]string{"-m", "celery", "-A", module, "-b", amqpURL, "worker",
		"-n", hostname, "-E", "--without-gossip", "--without-mingle", "--loglevel=WARNING"}, args...)...)
	cmd.Dir = dir
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: starting a python celery worker: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("python celery worker output:\n%s", out.String())
		}
	})
}
