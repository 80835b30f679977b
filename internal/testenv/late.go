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
	u, err := url.Parse(RabbitMQ(t))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr, target := ln.Addr().String(), u.Host
	ln.Close() // refused from now until up
	u.Host = addr
	var once sync.Once
	return u.String(), func() {
		once.Do(func() { forward(t, addr, target) })
	}
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
