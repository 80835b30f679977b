package testenv

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// LateRabbitMQ is RabbitMQ(t) as a client sees a broker that is not up yet:
// the URL it returns names a loopback port that refuses connections until
// up is called, and from then on forwards them to the test's vhost. It
// tests starting before the broker without stopping the node other tests
// share.
func LateRabbitMQ(t testing.TB) (amqpURL string, up func()) {
	t.Helper()
	u, ln := vhostBehindPort(t)
	addr, target := ln.Addr().String(), u.Host
	ln.Close() // refused from now until up
	u.Host = addr
	var once sync.Once
	return u.String(), func() {
		once.Do(func() { forward(t, addr, target) })
	}
}

// vhostBehindPort makes a vhost for the test and a loopback listener on a
// free port, for a proxy in front of the broker.
func vhostBehindPort(t testing.TB) (*url.URL, net.Listener) {
	t.Helper()
	u, err := url.Parse(RabbitMQ(t))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return u, ln
}

// forward accepts on addr and copies each connection to and from target
// until the test ends.
func forward(t testing.TB, addr, target string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("testenv: the late broker's port was taken meanwhile: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
}

// Outage is a loopback port in front of the test's vhost that the test can
// cut and restore, so a client sees its broker connection die and the
// broker come back, while the RabbitMQ node other tests share keeps
// running. Cutting closes both ends of every proxied connection: RabbitMQ
// sees the client go and requeues its unacked deliveries, exactly as when
// the broker itself restarts.
type Outage struct {
	t      testing.TB
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

// RabbitMQOutage returns an AMQP URL for a fresh vhost, reached through an
// Outage that starts up (accepting).
func RabbitMQOutage(t testing.TB) (amqpURL string, o *Outage) {
	t.Helper()
	u, ln := vhostBehindPort(t)
	o = outageOn(t, ln, u.Host)
	u.Host = o.addr
	return u.String(), o
}

// NewOutage puts an Outage, up, in front of target (host:port on
// loopback): for an S3 server or a private broker node. Addr is where
// clients connect instead.
func NewOutage(t testing.TB, target string) *Outage {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return outageOn(t, ln, target)
}

func outageOn(t testing.TB, ln net.Listener, target string) *Outage {
	o := &Outage{t: t, addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	o.serve(ln)
	t.Cleanup(o.Cut)
	return o
}

// Addr is the proxy's host:port.
func (o *Outage) Addr() string { return o.addr }

// Cut refuses new connections and closes every open one.
func (o *Outage) Cut() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ln != nil {
		o.ln.Close()
		o.ln = nil
	}
	for c := range o.conns {
		c.Close()
	}
	clear(o.conns)
}

// Restore accepts connections again on the same port.
func (o *Outage) Restore() {
	o.t.Helper()
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		o.t.Fatalf("testenv: the outage port was taken meanwhile: %v", err)
	}
	o.serve(ln)
}

func (o *Outage) serve(ln net.Listener) {
	o.mu.Lock()
	o.ln = ln
	o.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go o.pipe(c)
		}
	}()
}

// pipe copies one connection both ways until either end closes or Cut.
func (o *Outage) pipe(c net.Conn) {
	up, err := net.Dial("tcp", o.target)
	if err != nil {
		c.Close()
		return
	}
	o.mu.Lock()
	if o.ln == nil { // cut while dialling
		o.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	o.conns[c], o.conns[up] = struct{}{}, struct{}{}
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		delete(o.conns, c)
		delete(o.conns, up)
		o.mu.Unlock()
		c.Close()
		up.Close()
	}()
	go func() {
		io.Copy(up, c)
		up.Close()
		c.Close()
	}()
	io.Copy(c, up)
}
