package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Node is a RabbitMQ node of the caller's own, beside the system one: its
// own name, ports and directories, so a fault suite can stop and start it
// without touching the node every other test and engineer shares.
type Node struct {
	Name string // NAME@localhost
	URL  string // amqp URL of its default vhost
	env  []string
}

// PrivateRabbitMQ starts a node listening on 127.0.0.1:port (its Erlang
// distribution on port+20000) with no plugins, and stops it and deletes
// its directories when the test ends. Debian's rabbitmq-server drops to
// the rabbitmq user, so the directories are made world-traversable and
// owned by that user; otherwise the node silently never starts.
func PrivateRabbitMQ(t testing.TB, port int) *Node {
	t.Helper()
	n := newNode(t, port)
	n.Start(t)
	return n
}

// newNode prepares a private node (name, directories, environment) and
// arranges for it to be stopped and its directories deleted when the test
// ends. It does not start it.
func newNode(t testing.TB, port int) *Node {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%s=1: skipping a test that needs a private RabbitMQ node", SkipEnv)
	}
	dir, err := os.MkdirTemp("", "renderfarm-rabbit-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("renderfarm-private-%d@localhost", port)
	for _, d := range []string{"mnesia", "log"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// No plugins: the system node's management and prometheus plugins
	// would try to take the same HTTP ports.
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[].\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := chownTree(dir, "rabbitmq"); err != nil {
		t.Fatalf("testenv: private RabbitMQ directories: %v", err)
	}
	n := &Node{
		Name: name,
		URL:  "amqp://guest:guest@127.0.0.1:" + strconv.Itoa(port) + "/",
		env: append(os.Environ(),
			"RABBITMQ_NODENAME="+name,
			"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
			"RABBITMQ_DIST_PORT="+strconv.Itoa(port+20000),
			"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
			"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
			"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
			"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
			"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
			"ERL_EPMD_ADDRESS=127.0.0.1",
			// The Erlang distribution (clustering) on loopback too.
			"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
			"RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		),
	}
	t.Cleanup(func() {
		_, _ = n.ctl("stop")
		_ = os.RemoveAll(dir)
	})
	return n
}

// stopStale stops a node of this name left by a run killed before its
// cleanup: it would keep the name and ports. Its Erlang distribution port
// tells, since a node killed while joining a cluster has its AMQP port
// closed (stop_app) but the node, and its name, alive. Only for a caller
// that knows no other test process uses the port.
func (n *Node) stopStale(port int) {
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port+20000), time.Second); err == nil {
		c.Close()
		_, _ = n.ctl("stop")
	}
}

// Start starts the node (again, with the same directories: durable queues
// and their messages come back) and waits until it serves.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
}

func (n *Node) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rabbitmq-server", "-detached")
	cmd.Env = n.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testenv: starting %s: %w\n%s", n.Name, err, out)
	}
	// -detached returns before the node has registered with epmd, and
	// await_startup fails at once on a node it cannot see yet: poll.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := n.ctl("await_startup", "--timeout", "60")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testenv: %s did not start: %w\n%s", n.Name, err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Stop stops the node (the whole Erlang node, as a host restart would):
// every client connection drops.
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	if out, err := n.ctl("stop"); err != nil {
		t.Fatalf("testenv: stopping %s: %v\n%s", n.Name, err, out)
	}
}

// Ctl runs `rabbitmqctl -q -n NODE args...` and returns its output; any
// failure fails the test.
func (n *Node) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.ctl(args...)
	if err != nil {
		t.Fatalf("testenv: rabbitmqctl -n %s %v: %v\n%s", n.Name, args, err, out)
	}
	return out
}

func (n *Node) ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-q", "-n", n.Name}, args...)...)
	cmd.Env = n.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// chownTree gives dir and everything in it to the named user.
func chownTree(dir, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
}
