package broker

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/testenv"
)

// After a long outage the Conn is back soon after the broker, with the
// production pacing (no test overrides): while the port refuses
// connections it polls, rather than waiting out a backoff grown long.
func TestReconnectsSoonAfterALongOutage(t *testing.T) {
	u, outage := testenv.RabbitMQOutage(t)
	cfg := Config{URL: u, Name: t.Name(), Logger: testLogger(t)}
	c := dialWith(t, cfg)
	reconnected := c.NotifyReconnect()
	outage.Cut()
	time.Sleep(15 * time.Second)
	back := time.Now()
	outage.Restore()
	select {
	case <-reconnected:
	case <-time.After(60 * time.Second):
		t.Fatal("no reconnect within 60 s of the broker's return")
	}
	took := time.Since(back)
	t.Logf("reconnected %v after the broker's return", took.Round(time.Millisecond))
	// About ReconnectPoll (1 s) plus a handshake; the slack is for a
	// loaded two-core machine, not for backoff.
	if took > 4*time.Second {
		t.Errorf("reconnected %v after the broker's return, want within about 2 s", took)
	}
}

// A broker that takes TCP connections but fails every handshake gets
// exponentially fewer of them, not one per poll.
func TestFailedHandshakesBackOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			nc.Close()
		}
	}()
	const poll, window = 200 * time.Millisecond, 6 * time.Second
	c, err := Open(Config{URL: "amqp://guest:guest@" + ln.Addr().String() + "/", Logger: testLogger(t),
		ReconnectMin: 50 * time.Millisecond, ReconnectPoll: poll})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(window)
	c.Close()
	n := accepted.Load()
	t.Logf("%d handshakes in %v", n, window)
	// Polling would make window/poll = 30; exponential backoff from 50 ms
	// makes about 9.
	if n < 3 || n > 15 {
		t.Errorf("%d handshake attempts in %v, want a handful (exponential backoff)", n, window)
	}
}
