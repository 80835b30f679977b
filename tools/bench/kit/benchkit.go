// Package benchkit holds what the benchmark drivers (tools/bench/pub,
// tools/bench/e2e, tools/bench/web) share: reading a process's CPU time,
// stopping a worker's process group, asking RabbitMQ whether a queue has
// settled, opening a plain AMQP channel, and quoting a log's tail in errors.
package benchkit

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ProcCPU is a process's user+system CPU seconds from /proc/PID/stat.
func ProcCPU(pid int) (float64, bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces; count from after ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// Fields 14 and 15 of stat (utime, stime) are 11 and 12 after ")".
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return (u + s) / clockTicks, true
}

// clockTicks is sysconf(_SC_CLK_TCK), 100 on every Linux this runs on.
const clockTicks = 100

// StopGroup sends SIGTERM to a worker's process group (a Python prefork
// pool is a main process and its children), waits up to grace for the main
// process, then SIGKILLs whatever of the group is left and waits until
// nothing is. It reports whether SIGKILL was needed.
func StopGroup(pgid int, exited <-chan struct{}, grace time.Duration) (killed bool) {
	KillGroup(pgid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		killed = true
		KillGroup(pgid, syscall.SIGKILL)
		<-exited
	}
	// Children the main process did not reap (or left behind) are in the
	// group too.
	for i := 0; i < 100 && groupAlive(pgid); i++ {
		if i == 20 {
			killed = true
			KillGroup(pgid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return killed
}

func KillGroup(pgid int, sig syscall.Signal) { _ = syscall.Kill(-pgid, sig) }

func groupAlive(pgid int) bool { return syscall.Kill(-pgid, 0) == nil }

// LogTail is the end of a worker's log, for error messages.
func LogTail(path string) string {
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\n--- worker log (" + path + ", tail) ---\n" + string(b)
}

// QueueSettled asks `rabbitmqctl list_queues` (ctl) whether queue in vhost
// has nothing ready and nothing unacknowledged; status says what it saw.
// Each call boots an Erlang VM (a second or more): use it off the clock.
func QueueSettled(ctx context.Context, ctl, vhost, queue string) (settled bool, status string) {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, ctl, "-q", "list_queues", "-p", vhost,
		"--no-table-headers", "name", "messages_ready", "messages_unacknowledged").Output()
	if err != nil {
		return false, fmt.Sprintf("rabbitmqctl list_queues: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == queue {
			return f[1] == "0" && f[2] == "0", fmt.Sprintf("%s ready, %s unacknowledged", f[1], f[2])
		}
	}
	return false, fmt.Sprintf("queue %s not listed by rabbitmqctl", queue)
}

// Channel dials url with plain amqp091-go (not the repo's broker package),
// connection_name set to name (rabbitmqctl list_connections shows it), and
// opens one channel on it.
// Closing the connection closes the channel too.
func Channel(url, name string) (*amqp.Connection, *amqp.Channel, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second),
		Properties: amqp.Table{"connection_name": name}})
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, ch, nil
}
