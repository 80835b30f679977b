package broker

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/renderfarm/renderfarm/internal/testenv"
)

// threeNodes is a "cluster" of three loopback ports in front of one vhost,
// each an Outage that the test can take away as a node going down.
func threeNodes(t *testing.T) (list string, nodes []*testenv.Outage, urls []string) {
	t.Helper()
	u0, first := testenv.RabbitMQOutage(t)
	base, err := url.Parse(u0)
	if err != nil {
		t.Fatal(err)
	}
	upstream := testenv.RabbitMQ(t) // only for its host:port
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	nodes = []*testenv.Outage{first, testenv.NewOutage(t, target.Host), testenv.NewOutage(t, target.Host)}
	for _, n := range nodes {
		u := *base
		u.Host = n.Addr()
		urls = append(urls, u.String())
	}
	return strings.Join(urls, ";"), nodes, urls
}

// A node that goes away hands the Conn to the next one in the list
// (round-robin from the lost node, wrapping), where its queues and
// consumers are back without the caller doing anything.
func TestFailoverRoundRobin(t *testing.T) {
	list, nodes, urls := threeNodes(t)
	nodes[0].Cut() // down from the start: the first connection goes to the second
	cfg := testConfig(t, list)
	cfg.ReconnectPoll = 200 * time.Millisecond
	c := dialWith(t, cfg)
	if got := c.Node(); got != redactURL(urls[1]) {
		t.Fatalf("connected to %s, want the second node %s", got, redactURL(urls[1]))
	}
	mustDeclare(t, c, Topology{Queues: []Queue{{Name: "jobs", Durable: true}}})
	deliveries := mustConsume(t, c, context.Background(), ConsumeOptions{Queue: "jobs", Prefetch: 1})
	reconnected := c.NotifyReconnect()
	nodes[0].Restore()

	for _, step := range []struct {
		cut  int // the node that goes
		want int // where the Conn must go: the next after it
	}{{1, 2}, {2, 0}} {
		start := time.Now()
		nodes[step.cut].Cut()
		select {
		case <-reconnected:
		case <-time.After(10 * time.Second):
			t.Fatalf("no reconnect within 10 s of node %d going", step.cut)
		}
		if got := c.Node(); got != redactURL(urls[step.want]) {
			t.Fatalf("after node %d went: on %s, want %s", step.cut, got, redactURL(urls[step.want]))
		}
		t.Logf("node %d went: on node %d after %v", step.cut, step.want, time.Since(start).Round(time.Millisecond))
		// The consumer is back: a message published now arrives.
		body := "after node " + string(rune('0'+step.cut))
		if err := c.Publish(testCtx(t, 5*time.Second), "", "jobs", text(body)); err != nil {
			t.Fatalf("publish after failover: %v", err)
		}
		d := receive(t, deliveries, 10*time.Second)
		if string(d.Body) != body {
			t.Fatalf("got %q, want %q", d.Body, body)
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
		// Acks are asynchronous: cut the next node before the broker has
		// this one and the message comes back as the next step's.
		waitQueue(t, urls[0], "jobs", queueCounts{})
		nodes[step.cut].Restore()
	}
}

// A node that is down costs the first connection nothing: the next is
// tried at once, not after a poll or a backoff; a node that takes TCP but
// fails the handshake is passed over the same way.
func TestFailoverSkipsDeadNodesAtOnce(t *testing.T) {
	good := testenv.RabbitMQ(t)
	gu, err := url.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	refusing, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusingAddr := refusing.Addr().String()
	refusing.Close()
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	go func() {
		for {
			nc, err := mute.Accept()
			if err != nil {
				return
			}
			nc.Close()
		}
	}()
	at := func(addr string) string { u := *gu; u.Host = addr; return u.String() }
	cfg := testConfig(t, at(refusingAddr)+";"+at(mute.Addr().String())+";"+good)
	cfg.ReconnectPoll = 5 * time.Second // a wait between nodes would show
	cfg.ReconnectMin = 5 * time.Second
	start := time.Now()
	c := dialWith(t, cfg)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("connected after %v, want at once", took)
	}
	if got := c.Node(); got != redactURL(good) {
		t.Errorf("connected to %s, want %s", got, redactURL(good))
	}
}

// A refused login is not a node being down: retrying elsewhere cannot
// fix it (a cluster's nodes share their users), so Dial fails at once.
func TestFailoverRefusedLoginIsFatal(t *testing.T) {
	good := testenv.RabbitMQ(t)
	bad, err := url.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	bad.User = url.UserPassword("guest", "wrong-secret")
	start := time.Now()
	c, err := Dial(testCtx(t, 30*time.Second), testConfig(t, bad.String()+";"+good))
	if err == nil {
		_ = c.Close()
		t.Fatal("Dial succeeded past a refused login")
	}
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.AccessRefused {
		t.Fatalf("Dial = %v, want ACCESS_REFUSED", err)
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("the error shows the password: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("failed after %v, want at once", took)
	}
}
