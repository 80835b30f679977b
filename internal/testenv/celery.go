package testenv

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// PythonCelery is Debian's interpreter, the one with python3-celery; the
// python3 first on PATH may be another without it.
const PythonCelery = "/usr/bin/python3"

// SendTask sends task with args and kwargs through the stock Python
// Celery client (worker/testdata/celery_client.py), as an app would, waits
// up to timeoutSec for its result and returns what the client saw: state,
// id, result or exc_type/exc_message.
func SendTask(t testing.TB, amqpURL, task string, args []any, kwargs any, timeoutSec int) map[string]any {
	t.Helper()
	return SendTaskWith(t, amqpURL, task, args, kwargs, nil, timeoutSec)
}

// SendTaskWith is SendTask with send_task's options (queue, countdown,
// expires_in, eta_in, ...), e.g. {"queue": "renders"} for a worker that
// does not consume Celery's default queue.
func SendTaskWith(t testing.TB, amqpURL, task string, args []any, kwargs any, options map[string]any, timeoutSec int) map[string]any {
	t.Helper()
	kw, err := json.Marshal(kwargs)
	if err != nil {
		t.Fatal(err)
	}
	if args == nil {
		args = []any{}
	}
	a, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	if options == nil {
		options = map[string]any{}
	}
	o, err := json.Marshal(options)
	if err != nil {
		t.Fatal(err)
	}
	return CeleryClient(t, amqpURL, "send", task, string(a), string(kw), string(o), strconv.Itoa(timeoutSec))
}

// CeleryClient runs one command of the stock Python Celery client
// (worker/testdata/celery_client.py: send, inspect METHOD, control ...)
// against amqpURL, which may list a cluster's nodes as broker_url does,
// and returns the JSON object it printed.
func CeleryClient(t testing.TB, amqpURL, command string, args ...string) map[string]any {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(PythonCelery, append([]string{filepath.Join(root, "worker", "testdata", "celery_client.py"),
		amqpURL, command}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("testenv: python client: %v\n%s", err, stderr.String())
	}
	var out map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("testenv: the python client printed %q", stdout.String())
	}
	return out
}
