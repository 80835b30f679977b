// Command benchweb is the Go side of tools/bench/web.sh: the web tier's
// enqueue throughput (POST /v1/renders, 202 once the broker confirmed the
// task) against raw amqp091-go publishing with confirms of the same task
// message. Both passes run through one measuring loop (measure): C
// goroutines take request numbers from a shared counter until N are done,
// each timing its own request from start to answer; an untimed warm-up of
// -warmup requests goes first.
//
//	benchweb -mode load -url http://127.0.0.1:PORT/v1/renders -token T
//	    -c C -n N -body FILE [-warmup W]
//	    an HTTP load generator: C keep-alive clients on one http.Transport
//	    POST FILE (JSON) with the bearer token, N in all; anything but a 202
//	    with {"id", "status_url": "/v1/renders/<id>"} is an error, as is an
//	    id answered twice. The warm-up requests are real enqueues too: the
//	    queue holds W+N afterwards.
//
//	benchweb -mode raw -url AMQP_URL -queue Q -c C -n N -body FILE [-warmup W]
//	    the reference: plain amqp091-go, not the repo's broker package. One
//	    connection, one channel in confirm mode; declare Q as a Celery client
//	    does (durable queue, durable direct exchange Q, binding Q); C
//	    goroutines each publish a persistent renderfarm.render task (exchange
//	    Q, key Q, mandatory) and wait for its own confirm, N in all. The
//	    message is what the web tier publishes for FILE: celery.Encode of a
//	    Message with FILE's JSON as kwargs, ignore_result, encoded per
//	    message (a fresh id each) inside the timing. A nack or a returned
//	    (unroutable) message is an error.
//
//	benchweb -mode purge -url AMQP_URL -queue Q -want N
//	    check that Q has no consumer and holds exactly N messages, take one
//	    and purge the rest (and check that made N). Off the clock, between
//	    passes. Prints {"messages","task","body_bytes","kwargs_sha",...} of
//	    the message taken, to compare what the passes sent.
//
// load and raw print one JSON line: {"requests","seconds","rate","p50_ms",
// "p99_ms","errors",...}, latency being per request (load) or per publish
// (raw), and exit 1 if any request failed, after printing it and the first
// distinct failures on stderr. -server-pid and -broker-pid add the CPU
// seconds those processes used over the timed part, self_cpu_s this one's.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/renderfarm/renderfarm/tools/bench/kit"
)

// taskName is job.TaskName, spelled out so the reference does not import
// the code it is compared with.
const taskName = "renderfarm.render"

type options struct {
	mode, url, token, queue, bodyPath string
	c, n, warmup, want                int
	serverPID, brokerPID              int
	reqTimeout, timeout               time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "", "load, raw or purge")
	flag.StringVar(&o.url, "url", "", "load: the POST URL; raw, purge: AMQP URL with vhost")
	flag.StringVar(&o.token, "token", "", "load: API token")
	flag.StringVar(&o.queue, "queue", "", "raw, purge: queue (also the exchange and routing key)")
	flag.StringVar(&o.bodyPath, "body", "", "load, raw: request body, JSON")
	flag.IntVar(&o.c, "c", 32, "concurrent clients / publishers")
	flag.IntVar(&o.n, "n", 20000, "timed requests / publishes")
	flag.IntVar(&o.warmup, "warmup", -1, "untimed requests first (default 2c)")
	flag.IntVar(&o.want, "want", 0, "purge: messages the queue must hold")
	flag.IntVar(&o.serverPID, "server-pid", 0, "report this process's CPU over the timed part (the web tier)")
	flag.IntVar(&o.brokerPID, "broker-pid", 0, "report this process's CPU over the timed part (RabbitMQ)")
	flag.DurationVar(&o.reqTimeout, "request-timeout", 30*time.Second, "bound of one request or publish")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "overall bound")
	flag.Parse()
	if o.warmup < 0 {
		o.warmup = 2 * o.c
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	var (
		res *result
		err error
	)
	switch o.mode {
	case "load":
		res, err = runLoad(ctx, o)
	case "raw":
		res, err = runRaw(ctx, o)
	case "purge":
		var p *purgeResult
		if p, err = runPurge(o); err == nil {
			_ = json.NewEncoder(os.Stdout).Encode(p)
			return
		}
	default:
		err = fmt.Errorf("unknown -mode %q (load, raw or purge)", o.mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchweb:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	if res.Errors > 0 {
		what := map[string]string{"load": "requests", "raw": "publishes"}[o.mode]
		fmt.Fprintf(os.Stderr, "benchweb: %d of %d %s failed:\n%s", res.Errors, res.Requests, what, res.failures)
		os.Exit(1)
	}
}

// ---- measuring -----------------------------------------------------------

// result is what load and raw print.
type result struct {
	Requests    int     `json:"requests"`
	Seconds     float64 `json:"seconds"`
	Rate        float64 `json:"rate"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	Errors      int     `json:"errors"`
	Warmup      int     `json:"warmup"`
	Concurrency int     `json:"concurrency"`
	// load: TCP connections opened, warm-up included (C when keep-alive
	// holds); raw: the task message's body size and the broker's version.
	Connections   int    `json:"connections,omitempty"`
	BodyBytes     int    `json:"body_bytes,omitempty"`
	ServerVersion string `json:"server_version,omitempty"`
	// CPU seconds over the timed part.
	SelfCPUS   *float64 `json:"self_cpu_s,omitempty"`
	ServerCPUS *float64 `json:"server_cpu_s,omitempty"`
	BrokerCPUS *float64 `json:"broker_cpu_s,omitempty"`

	failures string // the first distinct errors, for stderr
}

// op does request i and says why it failed: the warm-up's requests are
// 0 to warmup-1, the timed ones warmup to warmup+n-1.
type op func(ctx context.Context, i int) error

// measure runs warmup untimed requests, then n timed ones, c at a time,
// and sums them up. A failed warm-up request ends the run at once (the
// thing under test does not work); failed timed requests are counted.
func measure(ctx context.Context, o options, do op) (*result, error) {
	if o.c < 1 || o.n < 1 {
		return nil, errors.New("-c and -n must be at least 1")
	}
	if o.warmup > 0 {
		if _, fails := run(ctx, o.c, 0, o.warmup, o.reqTimeout, do); fails.count > 0 {
			return nil, fmt.Errorf("warm-up: %d of %d failed:\n%s", fails.count, o.warmup, fails)
		}
	}
	cpu := startCPU(os.Getpid(), o.serverPID, o.brokerPID)
	start := time.Now()
	lat, fails := run(ctx, o.c, o.warmup, o.n, o.reqTimeout, do)
	secs := time.Since(start).Seconds()
	self, server, broker := cpu.stop()

	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return &result{
		Requests: o.n, Seconds: secs, Rate: float64(o.n) / secs,
		P50ms: ms(percentile(lat, 50)), P99ms: ms(percentile(lat, 99)), MaxMs: ms(lat[len(lat)-1]),
		Errors: fails.count, Warmup: o.warmup, Concurrency: o.c,
		SelfCPUS: self, ServerCPUS: server, BrokerCPUS: broker,
		failures: fails.String(),
	}, nil
}

// run is the loop itself: c goroutines, requests first to first+n-1, each
// one's latency in its own slot (no lock on the hot path).
func run(ctx context.Context, c, first, n int, timeout time.Duration, do op) ([]time.Duration, *failures) {
	lat := make([]time.Duration, n)
	fails := &failures{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(c, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				rctx, cancel := context.WithTimeout(ctx, timeout)
				t := time.Now()
				err := do(rctx, first+i)
				lat[i] = time.Since(t)
				cancel()
				if err != nil {
					fails.add(err)
				}
			}
		})
	}
	wg.Wait()
	return lat, fails
}

// percentile is the nearest-rank p-th percentile of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

// failures counts errors and keeps the first few distinct ones verbatim.
type failures struct {
	mu     sync.Mutex
	count  int
	byText map[string]int
	order  []string
}

const keepFailures = 8

func (f *failures) add(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	if f.byText == nil {
		f.byText = map[string]int{}
	}
	s := err.Error()
	if _, ok := f.byText[s]; !ok && len(f.order) < keepFailures {
		f.order = append(f.order, s)
	}
	f.byText[s]++
}

func (f *failures) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, s := range f.order {
		fmt.Fprintf(&b, "  x%d  %s\n", f.byText[s], s)
	}
	if more := len(f.byText) - len(f.order); more > 0 {
		fmt.Fprintf(&b, "  (and %d other distinct errors)\n", more)
	}
	return b.String()
}

// cpuWatch reads processes' CPU time at the start and the end of the timed
// part; a pid of 0 (or one that vanished) gives nil.
type cpuWatch struct {
	pids [3]int
	t0   [3]float64
	ok   [3]bool
}

func startCPU(pids ...int) *cpuWatch {
	w := &cpuWatch{}
	for k, p := range pids {
		w.pids[k] = p
		w.t0[k], w.ok[k] = benchkit.ProcCPU(p)
	}
	return w
}

func (w *cpuWatch) stop() (self, server, broker *float64) {
	var out [3]*float64
	for k, p := range w.pids {
		if t1, ok := benchkit.ProcCPU(p); ok && w.ok[k] {
			v := math.Round((t1-w.t0[k])*100) / 100
			out[k] = &v
		}
	}
	return out[0], out[1], out[2]
}

// ---- load: the web tier over HTTP ------------------------------------------

func runLoad(ctx context.Context, o options) (*result, error) {
	if o.url == "" || o.token == "" || o.bodyPath == "" {
		return nil, errors.New("load needs -url, -token and -body")
	}
	body, err := os.ReadFile(o.bodyPath)
	if err != nil {
		return nil, err
	}
	var dials atomic.Int64
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy: nil, // loopback, never through an *_PROXY of the environment
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        2 * o.c,
		MaxIdleConnsPerHost: 2 * o.c,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	auth := "Bearer " + o.token

	// ids[i] is the id answered to request i, warm-up included; repeats
	// are looked for afterwards, off the clock.
	ids := make([]string, o.warmup+o.n)
	do := func(ctx context.Context, i int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body) // all of it, so the connection is reused
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("HTTP %d, reading the body: %w", resp.StatusCode, err)
		}
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		var a struct {
			ID        string `json:"id"`
			StatusURL string `json:"status_url"`
		}
		if err := json.Unmarshal(b, &a); err != nil || a.ID == "" || a.StatusURL != "/v1/renders/"+a.ID {
			return fmt.Errorf("HTTP 202 without an id and its status_url: %s", strings.TrimSpace(string(b)))
		}
		ids[i] = a.ID
		return nil
	}
	res, err := measure(ctx, o, do)
	if err != nil {
		return nil, err
	}
	res.Connections = int(dials.Load())
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id == "" {
			continue // failed, counted already
		}
		if seen[id] {
			res.Errors++
			res.failures += fmt.Sprintf("  id %s answered twice\n", id)
		}
		seen[id] = true
	}
	return res, nil
}

// ---- raw: amqp091-go with confirms -----------------------------------------

func runRaw(ctx context.Context, o options) (*result, error) {
	if o.url == "" || o.queue == "" || o.bodyPath == "" {
		return nil, errors.New("raw needs -url, -queue and -body")
	}
	raw, err := os.ReadFile(o.bodyPath)
	if err != nil {
		return nil, err
	}
	// The web tier's kwargs are the request as JSON; Encode only reads the
	// map, so the goroutines share it.
	var kwargs map[string]any
	if err := json.Unmarshal(raw, &kwargs); err != nil {
		return nil, fmt.Errorf("%s: %w", o.bodyPath, err)
	}
	encode := func() (amqp.Publishing, error) {
		return celery.Encode(&celery.Message{ID: uuid.NewString(), Task: taskName, Args: []any{},
			Kwargs: kwargs, IgnoreResult: true})
	}
	sample, err := encode()
	if err != nil {
		return nil, err
	}

	conn, ch, err := benchkit.Channel(o.url, "benchweb raw")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := ch.ExchangeDeclare(o.queue, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("declaring exchange %s: %w", o.queue, err)
	}
	if _, err := ch.QueueDeclare(o.queue, true, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("declaring queue %s: %w", o.queue, err)
	}
	if err := ch.QueueBind(o.queue, o.queue, o.queue, false, nil); err != nil {
		return nil, fmt.Errorf("binding queue %s: %w", o.queue, err)
	}
	if err := ch.Confirm(false); err != nil {
		return nil, err
	}
	// A mandatory message that no queue takes comes back (basic.return)
	// before its confirm, which is still an ack: count those apart.
	returns := ch.NotifyReturn(make(chan amqp.Return, 64))
	var returned atomic.Int64
	returnsDone := make(chan struct{})
	go func() {
		defer close(returnsDone)
		for range returns {
			returned.Add(1)
		}
	}()

	do := func(ctx context.Context, i int) error {
		pub, err := encode()
		if err != nil {
			return err
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, o.queue, o.queue, true, false, pub)
		if err != nil {
			return err
		}
		ack, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("waiting for the confirm: %w", err)
		}
		if !ack {
			return errors.New("nacked by the broker (or the channel closed)")
		}
		return nil
	}
	res, err := measure(ctx, o, do)
	if err != nil {
		return nil, err
	}
	// Closing the channel closes returns once every basic.return that came
	// before the last confirm is through.
	if err := ch.Close(); err != nil {
		return nil, fmt.Errorf("closing the channel: %w", err)
	}
	select {
	case <-returnsDone:
	case <-time.After(10 * time.Second):
		return nil, errors.New("the return listener did not finish")
	}
	if n := int(returned.Load()); n > 0 {
		res.Errors += n
		res.failures += fmt.Sprintf("  x%d  returned unroutable (mandatory): no queue bound to %s with key %s\n", n, o.queue, o.queue)
	}
	res.BodyBytes = len(sample.Body)
	res.ServerVersion, _ = conn.Properties["version"].(string)
	return res, nil
}

// ---- purge: between passes ---------------------------------------------------

// purgeResult is what purge prints: the count, and one message taken
// from the queue first, so the script can tell that both passes sent the
// same task (kwargs_sha is of the kwargs as canonical JSON).
type purgeResult struct {
	Messages     int    `json:"messages"`
	Task         string `json:"task,omitempty"`
	IgnoreResult bool   `json:"ignore_result,omitempty"`
	BodyBytes    int    `json:"body_bytes,omitempty"`
	KwargsSHA    string `json:"kwargs_sha,omitempty"`
}

func runPurge(o options) (*purgeResult, error) {
	if o.url == "" || o.queue == "" || o.want < 0 {
		return nil, errors.New("purge needs -url, -queue and -want >= 0")
	}
	conn, ch, err := benchkit.Channel(o.url, "benchweb purge")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	q, err := ch.QueueDeclarePassive(o.queue, true, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("passive declare of %s: %w", o.queue, err)
	}
	if q.Consumers != 0 {
		return nil, fmt.Errorf("queue %s has %d consumers; nothing may consume it during the bench", o.queue, q.Consumers)
	}
	res := &purgeResult{}
	got := 0
	if q.Messages > 0 {
		d, ok, err := ch.Get(o.queue, true)
		if err != nil {
			return nil, fmt.Errorf("basic.get from %s: %w", o.queue, err)
		}
		if ok {
			got = 1
			m, err := celery.Decode(d)
			if err != nil {
				return nil, fmt.Errorf("a message in %s: %w", o.queue, err)
			}
			kw, err := json.Marshal(m.Kwargs) // map keys sorted: canonical
			if err != nil {
				return nil, err
			}
			sum := sha256.Sum256(kw)
			res.Task, res.IgnoreResult, res.BodyBytes = m.Task, m.IgnoreResult, len(d.Body)
			res.KwargsSHA = hex.EncodeToString(sum[:6])
		}
	}
	n, err := ch.QueuePurge(o.queue, false)
	if err != nil {
		return nil, fmt.Errorf("purging %s: %w", o.queue, err)
	}
	res.Messages = got + n
	if q.Messages != o.want || res.Messages != o.want {
		return nil, fmt.Errorf("queue %s held %d messages (%d taken and purged), want exactly %d: %s",
			o.queue, q.Messages, res.Messages, o.want, diff(res.Messages, o.want))
	}
	return res, nil
}

func diff(got, want int) string {
	switch {
	case got < want:
		return fmt.Sprintf("%d missing", want-got)
	case got > want:
		return fmt.Sprintf("%d extra", got-want)
	}
	return "the purge and the declare disagree"
}
