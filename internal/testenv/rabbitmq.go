// Package testenv gives integration tests access to real external services.
// Every integration test goes through it, so the way a service is started,
// isolated and skipped is decided in one place.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SkipEnv set to "1" skips integration tests instead of failing them when a
// service is unavailable. Without it a broken environment is a test failure:
// silently skipped integration tests look green while testing nothing.
const SkipEnv = "RENDERFARM_SKIP_INTEGRATION"

const (
	rabbitHost = "127.0.0.1:5672"
	ctlTimeout = 60 * time.Second
)

var (
	rabbitOnce sync.Once
	rabbitErr  error

	// brokerMu serialises StopBroker/StartBroker within a test process; two
	// outage tests interleaving would see each other's outages.
	brokerMu      sync.Mutex
	brokerStopped bool // by StopBroker, not yet restarted
)

// RabbitMQ makes sure the local RabbitMQ node runs (via scripts/rabbitmq.sh,
// once per test process), creates a fresh vhost for the caller, deletes it when
// the test ends and returns an AMQP URL for it. Queues and exchanges left by
// one test (or a crashed earlier run) therefore never leak into another.
func RabbitMQ(t testing.TB) string {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%s=1: skipping RabbitMQ integration test", SkipEnv)
	}
	rabbitOnce.Do(func() { rabbitErr = startRabbitMQ() })
	if rabbitErr != nil {
		t.Fatalf("testenv: RabbitMQ unavailable (set %s=1 to skip): %v", SkipEnv, rabbitErr)
	}

	holdBroker(t)
	vhost := vhostName(t.Name())
	addVhost(t, vhost)
	t.Cleanup(func() {
		// A test that stopped the broker and failed before restarting it
		// gets it back first (StopBroker's own cleanup runs later, LIFO).
		ensureAppRunning(t)
		if _, err := rabbitmqctl("delete_vhost", vhost); err != nil {
			t.Logf("testenv: delete_vhost %s: %v", vhost, err)
		}
	})
	return "amqp://guest:guest@" + rabbitHost + "/" + url.PathEscape(vhost)
}

// addVhost creates vhost with full permissions for guest. Every rabbitmqctl
// call boots an Erlang VM (over half a second), so both steps go in one eval;
// the two plain commands are the fallback should the internal API change.
// vhost is restricted to [A-Za-z0-9_.-], safe inside an Erlang binary.
func addVhost(t testing.TB, vhost string) {
	t.Helper()
	expr := fmt.Sprintf(`ok = rabbit_vhost:add(<<"%[1]s">>, <<"testenv">>), `+
		`ok = rabbit_auth_backend_internal:set_permissions(<<"guest">>, <<"%[1]s">>, <<".*">>, <<".*">>, <<".*">>, <<"testenv">>).`, vhost)
	if out, err := rabbitmqctl("eval", expr); err == nil && strings.TrimSpace(out) == "ok" {
		return
	}
	RabbitMQCtl(t, "add_vhost", vhost)
	RabbitMQCtl(t, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
}

// RabbitMQCtl runs `rabbitmqctl -q args...` against the local node and
// returns its standard output; any failure fails the test.
func RabbitMQCtl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := rabbitmqctl(args...)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return out
}

// QueueCount is a queue's messages as RabbitMQ itself counts them.
type QueueCount struct{ Ready, Unacked int }

// QueueCounts is each queue of amqpURL's vhost with its ready and
// unacknowledged messages, asked of RabbitMQ itself (rabbitmqctl), not of
// the code under test.
func QueueCounts(t testing.TB, amqpURL string) map[string]QueueCount {
	t.Helper()
	out := RabbitMQCtl(t, "list_queues", "-p", Vhost(t, amqpURL), "--no-table-headers",
		"name", "messages_ready", "messages_unacknowledged")
	counts := map[string]QueueCount{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		r, err1 := strconv.Atoi(f[1])
		u, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			t.Fatalf("testenv: list_queues: %q", line)
		}
		counts[f[0]] = QueueCount{r, u}
	}
	return counts
}

// QueueMessages is how many messages each queue of amqpURL's vhost holds,
// ready and unacknowledged together.
func QueueMessages(t testing.TB, amqpURL string) map[string]int {
	t.Helper()
	n := map[string]int{}
	for q, c := range QueueCounts(t, amqpURL) {
		n[q] = c.Ready + c.Unacked
	}
	return n
}

// StopBroker stops the RabbitMQ application (`rabbitmqctl stop_app`) while
// leaving the Erlang node up, which closes every client connection, as a
// broker restart does. Non-durable queues and exchanges are lost. The broker
// is started again when the test ends if the test did not do it.
func StopBroker(t testing.TB) {
	t.Helper()
	brokerMu.Lock()
	defer brokerMu.Unlock()
	t.Cleanup(func() { ensureAppRunning(t) })
	// Test packages run in parallel processes against one node: wait until
	// no other process is inside a test that uses it.
	lockNode(syscall.LOCK_EX)
	brokerStopped = true // even if stop_app fails half-way
	RabbitMQCtl(t, "stop_app")
}

// StartBroker starts the RabbitMQ application again after StopBroker and
// returns once it accepts connections.
func StartBroker(t testing.TB) {
	t.Helper()
	brokerMu.Lock()
	defer brokerMu.Unlock()
	// start_app is synchronous: the listeners are up when it returns.
	RabbitMQCtl(t, "start_app")
	brokerStopped = false
	lockNode(syscall.LOCK_SH)
}

func ensureAppRunning(t testing.TB) {
	brokerMu.Lock()
	defer brokerMu.Unlock()
	if !brokerStopped {
		return
	}
	if _, err := rabbitmqctl("start_app"); err != nil {
		t.Errorf("testenv: restarting broker app: %v", err)
		return
	}
	brokerStopped = false
	lockNode(syscall.LOCK_SH)
}

// The node lock keeps outage tests in one test process from pulling the
// broker out from under tests in another: every test using RabbitMQ holds
// a shared flock on a file for its duration; StopBroker converts this
// process's hold to an exclusive one until StartBroker.
var (
	nodeMu    sync.Mutex
	nodeFile  *os.File
	nodeUsers int
)

const nodeLockPath = "/tmp/renderfarm-testenv-rabbitmq.lock"

func holdBroker(t testing.TB) {
	nodeMu.Lock()
	nodeUsers++
	first := nodeUsers == 1
	nodeMu.Unlock()
	if first {
		lockNode(syscall.LOCK_SH)
	}
	t.Cleanup(func() {
		nodeMu.Lock()
		defer nodeMu.Unlock()
		nodeUsers--
		if nodeUsers == 0 && nodeFile != nil {
			syscall.Flock(int(nodeFile.Fd()), syscall.LOCK_UN)
		}
	})
}

// lockNode takes (or converts to) a shared or exclusive lock; it only
// logs failure, since the lock guards against flakiness, not corruption.
func lockNode(how int) {
	nodeMu.Lock()
	defer nodeMu.Unlock()
	if nodeFile == nil {
		f, err := os.OpenFile(nodeLockPath, os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testenv: node lock:", err)
			return
		}
		nodeFile = f
	}
	if err := syscall.Flock(int(nodeFile.Fd()), how); err != nil {
		fmt.Fprintln(os.Stderr, "testenv: node lock:", err)
	}
}

func startRabbitMQ() error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "rabbitmq.sh"))
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if _, err := cmd.Output(); err != nil {
		return fmt.Errorf("scripts/rabbitmq.sh: %w\n%s", err, stderr.Bytes())
	}
	return nil
}

func rabbitmqctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-q"}, args...)...)
	// Same loopback-only distribution settings as scripts/rabbitmq.sh, so a
	// CLI call that has to start epmd does not bind it to all interfaces.
	cmd.Env = append(os.Environ(),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("rabbitmqctl %s: %w\n%s%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String(), nil
}

var unsafeVhostChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// vhostName is readable in `rabbitmqctl list_vhosts` (it carries the test
// name) and unique across runs and parallel tests (random suffix).
func vhostName(testName string) string {
	name := unsafeVhostChars.ReplaceAllString(testName, "_")
	if len(name) > 60 {
		name = name[:60]
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "test-" + name + "-" + hex.EncodeToString(b[:])
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Vhost is the vhost of an AMQP URL that RabbitMQ returned, for
// rabbitmqctl's -p.
func Vhost(t testing.TB, amqpURL string) string {
	t.Helper()
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}
