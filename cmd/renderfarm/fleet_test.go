package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/renderfarm/renderfarm/internal/testenv"
)

// fleetWorker starts our worker, named name, and waits until inspect
// ping reaches it.
func fleetWorker(t *testing.T, amqpURL, name string, args ...string) {
	t.Helper()
	testenv.Worker(t, amqpURL, nil, append([]string{"--hostname", name, "--test-tasks", "--journal", "file://" + t.TempDir() + "/"}, args...)...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := run(t, "inspect", "ping", "--broker", amqpURL, "--destination", name, "--timeout", "500ms")
		if err == nil && strings.Contains(out, "pong") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered: %v\n%s", name, err, out)
		}
	}
}

// publishBacklog puts n no-op tasks on queue, which nobody consumes.
func publishBacklog(t *testing.T, amqpURL, queue string, n int) {
	t.Helper()
	publishTasks(t, amqpURL, queue, n, "renderfarm.noop")
}

// publishTasks declares queue as the workers do and puts n tasks on it.
func publishTasks(t *testing.T, amqpURL, queue string, n int, task string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := broker.Dial(ctx, broker.Config{URL: amqpURL})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Declare(ctx, celery.Queue{Name: queue}.Topology(celery.DefaultDeadLetter)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		pub, err := celery.Encode(&celery.Message{Protocol: 2, ID: uuid.NewString(), Task: task, Args: args})
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Publish(ctx, queue, queue, pub); err != nil {
			t.Fatal(err)
		}
	}
}

func runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, err := run(t, append(args, "--output", "json")...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", args[0], err, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s --output json printed %q: %v", args[0], out, err)
	}
}

// inspect, queues and status against a real worker and a real backlog;
// inspect's JSON is what celery inspect --json prints for the same fleet.
func TestFleetCommands(t *testing.T) {
	u := testenv.RabbitMQ(t)
	fleetWorker(t, u, "go1@cli", "--concurrency", "2")
	publishBacklog(t, u, "backlog", 5)

	var reg map[string][]string
	runJSON(t, &reg, "inspect", "registered", "--broker", u)
	if len(reg) != 1 || len(reg["go1@cli"]) == 0 {
		t.Fatalf("registered: %v", reg)
	}
	py := exec.Command(testenv.PythonCelery, "-m", "celery", "-b", u, "inspect", "registered", "--json", "--timeout", "2")
	pyOut, err := py.Output()
	if err != nil {
		t.Fatalf("celery inspect: %v\n%s", err, pyOut)
	}
	var pyReg map[string][]string
	if err := json.Unmarshal(pyOut, &pyReg); err != nil {
		t.Fatalf("celery inspect --json printed %q", pyOut)
	}
	if !reflect.DeepEqual(reg, pyReg) {
		t.Errorf("renderfarm inspect registered = %v\ncelery inspect registered = %v", reg, pyReg)
	}

	out, err := run(t, "inspect", "stats", "--broker", u)
	if err != nil || !strings.Contains(out, "go1@cli") || !strings.Contains(out, "SLOTS") {
		t.Errorf("inspect stats: %v\n%s", err, out)
	}

	var qs struct {
		Queues []struct {
			Name             string
			Ready, Consumers int
			Missing          bool
		}
		DeadLetter *struct{ Name string } `json:"dead_letter"`
	}
	runJSON(t, &qs, "queues", "--broker", u, "--queues", "celery,backlog,nothere")
	got := map[string][3]any{}
	for _, q := range qs.Queues {
		got[q.Name] = [3]any{q.Ready, q.Consumers, q.Missing}
	}
	want := map[string][3]any{"celery": {0, 1, false}, "backlog": {5, 0, false}, "nothere": {0, 0, true}}
	if !reflect.DeepEqual(got, want) || qs.DeadLetter == nil || qs.DeadLetter.Name != celery.DefaultDeadLetter {
		t.Errorf("queues: %+v, want %v and the dead-letter queue", qs, want)
	}

	var st struct {
		Workers []struct {
			Name          string
			Version       string
			SlotsTotal    int `json:"slots_total"`
			Online        bool
			LastHeartbeat *time.Time `json:"last_heartbeat"`
		}
		Queues []struct{ Name string }
	}
	runJSON(t, &st, "status", "--broker", u, "--queues", "celery,backlog")
	if len(st.Workers) != 1 || st.Workers[0].Name != "go1@cli" || st.Workers[0].SlotsTotal != 2 || !st.Workers[0].Online ||
		st.Workers[0].LastHeartbeat == nil || !strings.HasPrefix(st.Workers[0].Version, "renderfarm ") || len(st.Queues) != 2 {
		t.Errorf("status: %+v", st)
	}
	out, err = run(t, "status", "--broker", u, "--queues", "celery,backlog")
	if err != nil || !strings.Contains(out, "go1@cli") || !strings.Contains(out, "0/2") || !strings.Contains(out, "not available over AMQP") {
		t.Errorf("status table: %v\n%s", err, out)
	}
}

func TestFleetCommandsExitCodes(t *testing.T) {
	u := testenv.RabbitMQ(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"no worker replies", []string{"inspect", "ping", "--broker", u, "--timeout", "300ms"}, exitNotFound},
		{"unknown method", []string{"inspect", "frobnicate", "--broker", u}, exitUsage},
		{"revoke without ids", []string{"inspect", "revoke", "--broker", u}, exitUsage},
		{"ping with an argument", []string{"inspect", "ping", "x", "--broker", u}, exitUsage},
		{"bad queues", []string{"queues", "--broker", u, "--queues", "a:b:c:d"}, exitUsage},
		{"bad output", []string{"status", "--broker", u, "--output", "yaml"}, exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, tc.args...)
			if exitCode(err) != tc.code {
				t.Fatalf("exit %d, want %d: %v\n%s", exitCode(err), tc.code, err, out)
			}
		})
	}
}

// renderfarm web --fleet-view puts the fleet on top of the status page;
// without it (a least-privileged web user) the page has no such section.
func TestWebFleetView(t *testing.T) {
	u := testenv.RabbitMQ(t)
	for _, tc := range []struct {
		flags []string
		want  bool
	}{{[]string{"--fleet-view"}, true}, {nil, false}} {
		w := startWeb(t, append([]string{"--broker", u, "--tokens", webToken, "--journal", "file://" + t.TempDir() + "/"}, tc.flags...)...)
		w.waitReady(t)
		code, body := w.send(t, webToken, "GET", "/", "")
		if code != 200 || strings.Contains(body, `id="workers"`) != tc.want || strings.Contains(body, `<tr id="queue-celery">`) != tc.want {
			t.Errorf("%v: status page %d, fleet section shown: %v, want %v\n%s", tc.flags, code, strings.Contains(body, `id="workers"`), tc.want, body)
		}
	}
}
