// Command benchpub is the Go side of tools/bench/worker.sh: it publishes
// Celery task messages with publisher confirms through the repo's broker and
// broker/celery packages, and it times a worker draining a queue.
//
//	benchpub -url URL -queue Q -n N [-publishers 8] [-ignore-result] [-purge]
//	    declare Q as a Celery client does (durable queue, direct exchange Q,
//	    binding Q), publish N renderfarm.noop messages (protocol 2) to the
//	    default exchange with routing key Q, each waiting for its confirm, P
//	    publishers at once; -purge empties Q afterwards and checks that it
//	    held exactly N. Prints {"published","seconds","rate",...}.
//
//	benchpub -mode drain-wait -url URL -queue Q -n N -vhost V [-pidfile F]
//	    [-log F] -- COMMAND ARGS...
//	    check that Q holds exactly N ready messages and no consumer, start
//	    COMMAND (a worker) in a process group of its own and time it until Q
//	    is empty, polling with a passive queue.declare; then confirm with
//	    rabbitmqctl that nothing is left unacknowledged, stop the worker
//	    (SIGTERM to its group, SIGKILL after -term-timeout) and check that no
//	    message came back. Prints {"seconds","rate","startup_s",...}.
//
//	benchpub -mode consume -url URL -queue Q [-prefetch 8]
//	    the least a consumer can do, as a reference for the workers: consume
//	    Q with that prefetch and ack each delivery on its own, nothing else,
//	    until SIGTERM or SIGINT. Run it under drain-wait.
//
//	benchpub -mode info -url URL
//	    prints the broker's product and version.
//
// Errors (a publish not confirmed, a worker that exits early, a queue that
// stops draining) exit with status 1 and a message on stderr; slowness alone
// never does, up to the stall and overall timeouts.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/renderfarm/renderfarm/tools/bench/kit"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
)

const taskName = "renderfarm.noop"

type options struct {
	mode         string
	url          string
	queue        string
	n            int
	publishers   int
	ignoreResult bool
	purge        bool
	timeout      time.Duration

	// drain-wait
	vhost          string
	ctl            string
	pidfile        string
	logPath        string
	poll           time.Duration
	stallTimeout   time.Duration
	unackedTimeout time.Duration
	termTimeout    time.Duration
	brokerPID      int

	// consume
	prefetch int
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "publish", "publish, drain-wait, consume or info")
	flag.StringVar(&o.url, "url", broker.DefaultURL, "AMQP URL with vhost")
	flag.StringVar(&o.queue, "queue", "", "queue name")
	flag.IntVar(&o.n, "n", 20000, "messages to publish / expected in the queue")
	flag.IntVar(&o.publishers, "publishers", 8, "concurrent publishers (each waits for its confirms)")
	flag.BoolVar(&o.ignoreResult, "ignore-result", false, "set ignore_result in the task headers")
	flag.BoolVar(&o.purge, "purge", false, "publish: purge the queue afterwards and check it held exactly n")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "overall bound of the run")
	flag.StringVar(&o.vhost, "vhost", "/", "drain-wait: the URL's vhost, for rabbitmqctl")
	flag.StringVar(&o.ctl, "ctl", "rabbitmqctl", "drain-wait: rabbitmqctl command")
	flag.StringVar(&o.pidfile, "pidfile", "", "drain-wait: write the worker's process group id here")
	flag.StringVar(&o.logPath, "log", "", "drain-wait: the worker's stdout and stderr go here (default: discarded)")
	flag.DurationVar(&o.poll, "poll", 20*time.Millisecond, "drain-wait: queue poll interval")
	flag.DurationVar(&o.stallTimeout, "stall-timeout", 90*time.Second, "drain-wait: fail when the queue does not shrink for this long")
	flag.DurationVar(&o.unackedTimeout, "unacked-timeout", 120*time.Second, "drain-wait: how long the last deliveries may stay unacknowledged")
	flag.DurationVar(&o.termTimeout, "term-timeout", 30*time.Second, "drain-wait: SIGKILL the worker's group this long after SIGTERM")
	flag.IntVar(&o.brokerPID, "broker-pid", 0, "drain-wait: report this process's CPU time over the drain (RabbitMQ's beam.smp)")
	flag.IntVar(&o.prefetch, "prefetch", 8, "consume: QoS prefetch count")
	flag.Parse()

	// Quiet: the broker package logs connects and closes at info.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	var (
		out any
		err error
	)
	switch o.mode {
	case "publish":
		out, err = runPublish(ctx, o)
	case "drain-wait":
		out, err = runDrainWait(ctx, o, flag.Args())
	case "consume":
		err = runConsume(o)
		if err == nil {
			return
		}
	case "info":
		out, err = runInfo(o)
	default:
		err = fmt.Errorf("unknown -mode %q", o.mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchpub:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

// celeryTopology is what a Celery 5.2 client (and either worker) declares
// for queue q: durable queue, durable direct exchange of the same name,
// bound with the queue name.
func celeryTopology(q string) broker.Topology {
	return broker.Topology{
		Exchanges: []broker.Exchange{{Name: q, Kind: "direct", Durable: true}},
		Queues:    []broker.Queue{{Name: q, Durable: true}},
		Bindings:  []broker.Binding{{Queue: q, Exchange: q, Key: q}},
	}
}

type publishResult struct {
	Published  int     `json:"published"`
	Seconds    float64 `json:"seconds"`
	Rate       float64 `json:"rate"`
	Publishers int     `json:"publishers"`
	BodyBytes  int     `json:"body_bytes"`
	Purged     *int    `json:"purged,omitempty"`
}

func runPublish(ctx context.Context, o options) (*publishResult, error) {
	if o.queue == "" || o.n < 1 || o.publishers < 1 {
		return nil, errors.New("publish needs -queue, -n >= 1 and -publishers >= 1")
	}
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	conn, err := broker.Dial(dctx, broker.Config{URL: o.url, Name: "benchpub"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.Declare(ctx, celeryTopology(o.queue)); err != nil {
		return nil, err
	}
	// Opens the confirm-mode channel and does one round trip (to a routing
	// key no queue has), so the timed part starts on a warm channel.
	if err := conn.Healthy(ctx); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}

	var (
		next      atomic.Int64
		done      atomic.Int64
		bodyBytes atomic.Int64
		firstErr  error
		errOnce   sync.Once
		wg        sync.WaitGroup
	)
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	start := time.Now()
	for range o.publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(o.n) || pctx.Err() != nil {
					return
				}
				// Encoding is part of sending a task, so it is timed too.
				m := &celery.Message{ID: uuid.NewString(), Task: taskName, IgnoreResult: o.ignoreResult}
				pub, err := celery.Encode(m)
				if err == nil {
					if i == 1 {
						bodyBytes.Store(int64(len(pub.Body)))
					}
					err = conn.Publish(pctx, "", o.queue, pub)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("message %d: %w", i, err); pcancel() })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if firstErr != nil {
		return nil, fmt.Errorf("publish failed after %d confirmed: %w", done.Load(), firstErr)
	}
	res := &publishResult{Published: int(done.Load()), Seconds: secs, Rate: float64(done.Load()) / secs,
		Publishers: o.publishers, BodyBytes: int(bodyBytes.Load())}
	if o.purge {
		n, err := conn.PurgeQueue(ctx, o.queue)
		if err != nil {
			return nil, err
		}
		res.Purged = &n
		if n != o.n {
			return nil, fmt.Errorf("purged %d messages from %s, published and confirmed %d", n, o.queue, o.n)
		}
	}
	return res, nil
}

type infoResult struct {
	Product string `json:"product"`
	Version string `json:"version"`
}

func runInfo(o options) (*infoResult, error) {
	conn, err := amqp.DialConfig(o.url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	s := func(k string) string { v, _ := conn.Properties[k].(string); return v }
	return &infoResult{Product: s("product"), Version: s("version")}, nil
}

// runConsume is a bare amqp091-go consumer: one channel, basic.qos
// prefetch, one basic.ack per delivery as a worker with late acks sends,
// and no decoding or bookkeeping at all.
func runConsume(o options) error {
	if o.queue == "" || o.prefetch < 0 {
		return errors.New("consume needs -queue and -prefetch >= 0")
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	conn, err := amqp.DialConfig(o.url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second),
		Properties: amqp.Table{"connection_name": "benchpub consume"}})
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Qos(o.prefetch, 0, false); err != nil {
		return err
	}
	ds, err := ch.Consume(o.queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	for {
		select {
		case d, ok := <-ds:
			if !ok {
				return errors.New("consumer channel closed by the broker")
			}
			if err := d.Ack(false); err != nil {
				return err
			}
		case <-sigs:
			return nil
		}
	}
}

type drainResult struct {
	N       int     `json:"n"`
	Seconds float64 `json:"seconds"` // worker start to queue empty
	Rate    float64 `json:"rate"`    // n / seconds
	// StartupS is worker start to the first delivery (the queue's ready
	// count first dropped); SubscribeS to its consumer showing up.
	StartupS   float64 `json:"startup_s"`
	SubscribeS float64 `json:"subscribe_s"`
	// SteadyRate counts from the first delivery: the ready messages seen
	// then over the time they took to go.
	SteadyRate float64 `json:"steady_rate"`
	// Polls and the ready count at the last poll before the end, for
	// judging the poll's resolution.
	Polls int `json:"polls"`
	// WorkerCPUS is the worker's user+system CPU time over its whole life
	// (start-up and shutdown included, and its reaped children).
	WorkerCPUS float64 `json:"worker_cpu_s"`
	// BrokerCPUS is RabbitMQ's CPU time from worker start to queue empty.
	BrokerCPUS *float64 `json:"broker_cpu_s,omitempty"`
	// UnackedWaitS is how long after the end the rabbitmqctl check that
	// nothing is unacknowledged took (not part of Seconds).
	UnackedWaitS float64 `json:"unacked_wait_s"`
	StopS        float64 `json:"stop_s"` // SIGTERM to the whole group gone
	Killed       bool    `json:"killed"` // SIGKILL was needed
	Exit         string  `json:"exit"`
}

// poller answers "how many ready messages, how many consumers" with a
// passive queue.declare on a channel of its own connection: a cheap,
// synchronous call that needs no management plugin.
type poller struct {
	conn  *amqp.Connection
	ch    *amqp.Channel
	queue string
}

func newPoller(url, queue string) (*poller, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second),
		Properties: amqp.Table{"connection_name": "benchpub drain-wait"}})
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &poller{conn: conn, ch: ch, queue: queue}, nil
}

func (p *poller) stat() (ready, consumers int, err error) {
	q, err := p.ch.QueueDeclarePassive(p.queue, true, false, false, false, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("passive declare of %s: %w", p.queue, err)
	}
	return q.Messages, q.Consumers, nil
}

func (p *poller) close() { _ = p.conn.Close() }

func runDrainWait(ctx context.Context, o options, argv []string) (*drainResult, error) {
	if o.queue == "" || o.n < 1 || len(argv) == 0 {
		return nil, errors.New("drain-wait needs -queue, -n >= 1 and a worker command after --")
	}
	// Pdeathsig is tied to the OS thread that forks the worker: keep this
	// goroutine on one thread so the worker dies with us, whatever happens.
	runtime.LockOSThread()

	p, err := newPoller(o.url, o.queue)
	if err != nil {
		return nil, err
	}
	defer p.close()
	ready, consumers, err := p.stat()
	if err != nil {
		return nil, err
	}
	if ready != o.n || consumers != 0 {
		return nil, fmt.Errorf("queue %s holds %d ready messages and %d consumers before the worker starts; want %d and 0", o.queue, ready, consumers, o.n)
	}

	var logw io.Writer = io.Discard
	if o.logPath != "" {
		f, err := os.Create(o.logPath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		logw = f
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	// Before the start, so the worker inherits default dispositions even if
	// we were started with SIGINT ignored (a background job of a script).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	brokerCPU0, brokerOK := benchkit.ProcCPU(o.brokerPID)
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the worker: %w", err)
	}
	pgid := cmd.Process.Pid
	if o.pidfile != "" {
		if err := os.WriteFile(o.pidfile, []byte(strconv.Itoa(pgid)+"\n"), 0o644); err != nil {
			benchkit.KillGroup(pgid, syscall.SIGKILL)
			return nil, err
		}
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	// Whatever goes wrong from here on, the worker's group does not outlive us.
	stopped := false
	defer func() {
		if !stopped {
			benchkit.KillGroup(pgid, syscall.SIGKILL)
			<-exited
		}
	}()

	workerFailed := func(what string) error {
		return fmt.Errorf("worker %s (%s)%s", what, exitString(cmd.ProcessState), benchkit.LogTail(o.logPath))
	}

	res := &drainResult{N: o.n}
	var tSub, tFirst, tEnd time.Time
	readyAtFirst := 0
	lastReady, lastProgress := o.n, t0
	tick := time.NewTicker(o.poll)
	defer tick.Stop()
	for tEnd.IsZero() {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("queue %s not drained within the overall timeout: %d ready", o.queue, lastReady)
		case s := <-sigs:
			return nil, fmt.Errorf("interrupted by %v", s)
		case <-exited:
			return nil, workerFailed("exited before the queue drained")
		case <-tick.C:
		}
		now := time.Now()
		ready, consumers, err := p.stat()
		if err != nil {
			return nil, err
		}
		res.Polls++
		if consumers > 0 && tSub.IsZero() {
			tSub = now
		}
		if ready < o.n && tFirst.IsZero() {
			tFirst, readyAtFirst = now, ready
		}
		if ready < lastReady {
			lastReady, lastProgress = ready, now
		}
		if ready == 0 {
			tEnd = now
			break
		}
		if now.Sub(lastProgress) > o.stallTimeout {
			return nil, fmt.Errorf("queue %s stalled: %d ready messages, none taken for %v (consumers: %d)", o.queue, ready, o.stallTimeout, consumers)
		}
	}
	brokerCPU1, brokerOK1 := benchkit.ProcCPU(o.brokerPID)

	res.Seconds = tEnd.Sub(t0).Seconds()
	res.Rate = float64(o.n) / res.Seconds
	res.StartupS = tFirst.Sub(t0).Seconds()
	if !tSub.IsZero() {
		res.SubscribeS = tSub.Sub(t0).Seconds()
	} else {
		res.SubscribeS = res.StartupS
	}
	if d := tEnd.Sub(tFirst).Seconds(); d > 0 && readyAtFirst > 0 {
		res.SteadyRate = float64(readyAtFirst) / d
	} else {
		res.SteadyRate = res.Rate
	}
	if brokerOK && brokerOK1 {
		v := brokerCPU1 - brokerCPU0
		res.BrokerCPUS = &v
	}

	// Ready is 0, but up to a prefetch window of deliveries may still be
	// running or unacknowledged. The AMQP declare-ok only counts ready
	// messages, so ask the broker itself (off the clock: the worker only has
	// that last window left) before stopping the worker, which would hand
	// them back.
	tu := time.Now()
	if err := waitUnacked(ctx, o, exited, sigs); err != nil {
		if errors.Is(err, errWorkerExited) {
			return nil, workerFailed("exited while its last deliveries were unacknowledged")
		}
		return nil, err
	}
	res.UnackedWaitS = time.Since(tu).Seconds()

	ts := time.Now()
	res.Killed = benchkit.StopGroup(pgid, exited, o.termTimeout)
	stopped = true
	res.StopS = time.Since(ts).Seconds()
	res.Exit = exitString(cmd.ProcessState)
	if st := cmd.ProcessState; st != nil {
		res.WorkerCPUS = (st.UserTime() + st.SystemTime()).Seconds()
	}

	// The worker's channel is gone now, so any delivery it had not acked is
	// back in the queue: the queue must be empty with no consumer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ready, consumers, err := p.stat()
		if err != nil {
			return nil, err
		}
		if consumers == 0 {
			if ready != 0 {
				return nil, fmt.Errorf("%d messages came back to %s after the worker stopped: it had not acknowledged them%s", ready, o.queue, benchkit.LogTail(o.logPath))
			}
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("queue %s still has %d consumers 10s after the worker exited", o.queue, consumers)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return res, nil
}

var errWorkerExited = errors.New("worker exited")

// waitUnacked polls `rabbitmqctl list_queues` until the queue has nothing
// ready or unacknowledged. Each call boots an Erlang VM (a second or more),
// which is why this is not how the drain itself is timed.
func waitUnacked(ctx context.Context, o options, exited <-chan struct{}, sigs <-chan os.Signal) error {
	deadline := time.Now().Add(o.unackedTimeout)
	var last string
	for attempt := 0; ; attempt++ {
		select {
		case <-exited:
			return errWorkerExited
		case s := <-sigs:
			return fmt.Errorf("interrupted by %v", s)
		default:
		}
		settled, status := benchkit.QueueSettled(ctx, o.ctl, o.vhost, o.queue)
		if settled {
			return nil
		}
		last = status
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("queue %s empty of ready messages, but not settled after %v: %s", o.queue, o.unackedTimeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func exitString(st *os.ProcessState) string {
	if st == nil {
		return "running"
	}
	return st.String()
}
