package testenv

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
)

// ClusterPorts are the AMQP ports of RabbitMQCluster's nodes (their Erlang
// distribution on port+20000): clear of the system node (5672) and the
// chaos suite's private node (5681).
var ClusterPorts = [3]int{5701, 5702, 5703}

// Cluster is three private RabbitMQ nodes joined into one RabbitMQ
// cluster, for tests of what a farm sees when one node of its cluster
// goes.
type Cluster struct {
	Nodes []*Node
}

const clusterLockPath = "/tmp/renderfarm-testenv-cluster.lock"

// RabbitMQCluster starts three private nodes (see PrivateRabbitMQ) on
// ClusterPorts and joins the second and third to the first, so queues
// and users are the cluster's. Nodes of an earlier run that did not clean
// up are stopped first, and the nodes are stopped and their directories
// deleted when the test ends. Test processes that want the cluster take
// turns (a file lock), since its ports are fixed.
func RabbitMQCluster(t testing.TB) *Cluster {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%s=1: skipping a test that needs a RabbitMQ cluster", SkipEnv)
	}
	lock, err := os.OpenFile(clusterLockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() }) // runs last: after the nodes stopped
	c := &Cluster{}
	for _, port := range ClusterPorts {
		n := newNode(t, port)
		n.stopStale(port) // the lock says no other test process has it
		c.Nodes = append(c.Nodes, n)
	}
	// Booting a node takes several seconds of mostly waiting: boot all
	// three at once.
	errs := make(chan error, len(c.Nodes))
	for _, n := range c.Nodes {
		go func() { errs <- n.start() }()
	}
	var all []error
	for range c.Nodes {
		all = append(all, <-errs)
	}
	if err := errors.Join(all...); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes[1:] {
		n.Ctl(t, "stop_app")
		n.Ctl(t, "join_cluster", c.Nodes[0].Name)
		n.Ctl(t, "start_app")
	}
	return c
}

// URL is the cluster's broker URL as --broker and Celery's broker_url take
// it: every node's URL, ';'-separated, in node order.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL
	}
	return strings.Join(urls, ";")
}
