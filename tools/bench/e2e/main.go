// Command benche2e is the Go side of tools/bench/e2e.sh: it talks to the
// local S3 (versitygw, configured from the AWS_* environment, path-style)
// and to RabbitMQ through the repo's broker and broker/celery packages.
//
//	benche2e -mode upload -buckets src,out -bucket src -copies 2 FILES...
//	    create the buckets, PutObject each file COPIES times as cK/BASENAME;
//	    prints the keys, one a line.
//	benche2e -mode publish -url URL -queue Q -keys FILE -src BUCKET -dest s3://b/p/
//	    declare Q as a Celery client does and publish one renderfarm.render
//	    task per key (ignore_result, recipe default, dest DEST<n>/), each
//	    waiting for its confirm.
//	benche2e -mode drain-wait -url URL -vhost V -queue Q -n N -bucket B
//	    -journal PREFIX [-timeout 10m] [-log F] -- WORKER ARGS...
//	    check Q holds N ready messages, start the worker (own process group),
//	    time it until Q has nothing ready and N manifests are in the journal
//	    (the worker writes a task's manifest last, then acks), polling every
//	    50 ms (S3 listed only once nothing is ready), confirm off
//	    the clock with rabbitmqctl that nothing is unacknowledged, then
//	    SIGTERM it and wait for its exit. Prints JSON.
//	benche2e -mode timings -bucket B -prefix P
//	    sum the timings_ms of the job manifests under P (fetch, render,
//	    upload, total; status counts), and their span from first start to
//	    last finish.
//	benche2e -mode verify -bucket B -prefix P -want N
//	    count objects under P; fail unless exactly N.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/renderfarm/renderfarm/tools/bench/kit"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
)

func main() {
	mode := flag.String("mode", "", "upload, publish, drain-wait or verify")
	url := flag.String("url", "", "AMQP URL with vhost")
	vhost := flag.String("vhost", "/", "vhost, for rabbitmqctl")
	queue := flag.String("queue", "", "queue")
	n := flag.Int("n", 0, "tasks expected")
	buckets := flag.String("buckets", "", "upload: buckets to create")
	bucket := flag.String("bucket", "", "bucket")
	copies := flag.Int("copies", 2, "upload: copies of each file")
	keys := flag.String("keys", "", "publish: file of source keys")
	src := flag.String("src", "", "publish: source bucket")
	dest := flag.String("dest", "", "publish: dest prefix, s3://bucket/prefix/")
	journal := flag.String("journal", "", "drain-wait: journal key prefix in -bucket")
	prefix := flag.String("prefix", "", "verify: key prefix")
	want := flag.Int("want", 0, "verify: objects expected")
	logPath := flag.String("log", "", "drain-wait: worker output file")
	s3pid := flag.Int("s3-pid", 0, "drain-wait: report this process's CPU over the pass (versitygw)")
	timeout := flag.Duration("timeout", 10*time.Minute, "overall bound")
	flag.Parse()
	// Quiet: the broker package logs connects and closes at info.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var (
		out any
		err error
	)
	switch *mode {
	case "upload":
		err = upload(ctx, strings.Split(*buckets, ","), *bucket, *copies, flag.Args())
	case "publish":
		out, err = publish(ctx, *url, *queue, *keys, *src, *dest)
	case "drain-wait":
		out, err = drainWait(ctx, *url, *vhost, *queue, *n, *bucket, *journal, *logPath, *s3pid, flag.Args())
	case "timings":
		out, err = timings(ctx, *bucket, *prefix)
	case "verify":
		var got int
		got, err = count(ctx, s3Client(ctx), *bucket, *prefix)
		if err == nil && got != *want {
			err = fmt.Errorf("s3://%s/%s holds %d objects, want %d", *bucket, *prefix, got, *want)
		}
		out = map[string]int{"objects": got}
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benche2e:", err)
		os.Exit(1)
	}
	if out != nil {
		_ = json.NewEncoder(os.Stdout).Encode(out)
	}
}

func s3Client(ctx context.Context) *s3.Client {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benche2e: aws config:", err)
		os.Exit(1)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

func upload(ctx context.Context, buckets []string, bucket string, copies int, files []string) error {
	c := s3Client(ctx)
	for _, b := range buckets {
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	for k := range copies {
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			key := fmt.Sprintf("c%d/%s", k, filepath.Base(f))
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
				Body: bytes.NewReader(data), ContentType: aws.String("image/jpeg")}); err != nil {
				return fmt.Errorf("put %s: %w", key, err)
			}
			fmt.Println(key)
		}
	}
	return nil
}

func publish(ctx context.Context, url, queue, keysFile, src, dest string) (any, error) {
	b, err := os.ReadFile(keysFile)
	if err != nil {
		return nil, err
	}
	keys := strings.Fields(string(b))
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	conn, err := broker.Dial(dctx, broker.Config{URL: url, Name: "benche2e"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.Declare(ctx, broker.Topology{
		Exchanges: []broker.Exchange{{Name: queue, Kind: "direct", Durable: true}},
		Queues:    []broker.Queue{{Name: queue, Durable: true}},
		Bindings:  []broker.Binding{{Queue: queue, Exchange: queue, Key: queue}},
	}); err != nil {
		return nil, err
	}
	for i, k := range keys {
		m := &celery.Message{ID: uuid.NewString(), Task: "renderfarm.render", IgnoreResult: true,
			Kwargs: map[string]any{"source": "s3://" + src + "/" + k, "recipe": "default",
				"dest": fmt.Sprintf("%s%d/", dest, i)}}
		pub, err := celery.Encode(m)
		if err == nil {
			err = conn.Publish(ctx, "", queue, pub)
		}
		if err != nil {
			return nil, fmt.Errorf("task %d: %w", i, err)
		}
	}
	return map[string]int{"published": len(keys)}, nil
}

func count(ctx context.Context, c *s3.Client, bucket, prefix string) (int, error) {
	n := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		n += len(page.Contents)
	}
	return n, nil
}

type drainResult struct {
	N           int     `json:"n"`
	Seconds     float64 `json:"seconds"`        // worker start to N manifests and nothing ready
	SubscribeS  float64 `json:"subscribe_s"`    // worker start to its consumer on the queue
	WorkerCPUS  float64 `json:"worker_cpu_s"`   // over the worker's life
	S3CPUS      float64 `json:"s3_cpu_s"`       // versitygw over the timed part
	UnackedWait float64 `json:"unacked_wait_s"` // off the clock
	StopS       float64 `json:"stop_s"`
	Exit        string  `json:"exit"`
}

func drainWait(ctx context.Context, url, vhost, queue string, n int, bucket, journal, logPath string, s3pid int, argv []string) (*drainResult, error) {
	if queue == "" || n < 1 || len(argv) == 0 || bucket == "" || journal == "" {
		return nil, errors.New("drain-wait needs -queue, -n, -bucket, -journal and a worker command after --")
	}
	runtime.LockOSThread() // Pdeathsig belongs to the forking thread
	c := s3Client(ctx)
	aconn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		return nil, err
	}
	defer aconn.Close()
	ch, err := aconn.Channel()
	if err != nil {
		return nil, err
	}
	stat := func() (int, int, error) {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return q.Messages, q.Consumers, err
	}
	if ready, cons, err := stat(); err != nil || ready != n || cons != 0 {
		return nil, fmt.Errorf("queue %s: %d ready, %d consumers, err %v; want %d and 0", queue, ready, cons, err, n)
	}
	if got, err := count(ctx, c, bucket, journal); err != nil || got != 0 {
		return nil, fmt.Errorf("journal s3://%s/%s not empty before the pass (%d, %v)", bucket, journal, got, err)
	}

	logw, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logw.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)

	s3cpu0, _ := benchkit.ProcCPU(s3pid)
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pgid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stopped := false
	defer func() {
		if !stopped {
			benchkit.KillGroup(pgid, syscall.SIGKILL)
			<-exited
		}
	}()
	fail := func(what string) error { return fmt.Errorf("%s%s", what, benchkit.LogTail(logPath)) }

	res := &drainResult{N: n}
	last, lastDone, lastChange := n, 0, time.Now()
	for {
		select {
		case <-exited:
			return nil, fail("worker exited during the pass: " + cmd.ProcessState.String())
		case s := <-sigs:
			return nil, fmt.Errorf("interrupted by %v", s)
		case <-ctx.Done():
			return nil, fail("timed out")
		case <-time.After(50 * time.Millisecond):
		}
		// The cheap AMQP poll first; the S3 listing (which costs versitygw
		// CPU the worker competes for) only for the last prefetch window.
		ready, cons, err := stat()
		if err != nil {
			return nil, err
		}
		if cons > 0 && res.SubscribeS == 0 {
			res.SubscribeS = time.Since(t0).Seconds()
		}
		if ready != last {
			last, lastChange = ready, time.Now()
		}
		if ready == 0 {
			done, err := count(ctx, c, bucket, journal)
			if err != nil {
				return nil, err
			}
			if done >= n {
				break
			}
			if done != lastDone {
				lastDone, lastChange = done, time.Now()
			}
		}
		if time.Since(lastChange) > 120*time.Second {
			return nil, fail(fmt.Sprintf("no progress for 120s (%d ready, %d/%d manifests)", ready, lastDone, n))
		}
	}
	res.Seconds = time.Since(t0).Seconds()
	s3cpu1, _ := benchkit.ProcCPU(s3pid)
	res.S3CPUS = s3cpu1 - s3cpu0

	// Off the clock: the broker itself must show nothing unacknowledged.
	tu := time.Now()
	for i := 0; ; i++ {
		settled, status := benchkit.QueueSettled(ctx, "rabbitmqctl", vhost, queue)
		if settled {
			break
		}
		if i >= 30 {
			return nil, fail(fmt.Sprintf("queue %s not settled: %s", queue, status))
		}
		time.Sleep(500 * time.Millisecond)
	}
	res.UnackedWait = time.Since(tu).Seconds()

	ts := time.Now()
	killed := benchkit.StopGroup(pgid, exited, 45*time.Second)
	stopped = true
	if killed {
		return nil, fail("worker needed SIGKILL after SIGTERM")
	}
	res.StopS = time.Since(ts).Seconds()
	res.Exit = cmd.ProcessState.String()
	res.WorkerCPUS = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return res, nil
}

type timingsResult struct {
	Jobs     int            `json:"jobs"`
	Status   map[string]int `json:"status"`
	FetchS   float64        `json:"fetch_s"`
	RenderS  float64        `json:"render_s"`
	UploadS  float64        `json:"upload_s"`
	TotalS   float64        `json:"total_s"`
	SpanS    float64        `json:"span_s"` // first Started to last Finished
	Attempts int            `json:"attempts"`
}

func timings(ctx context.Context, bucket, prefix string) (*timingsResult, error) {
	c := s3Client(ctx)
	res := &timingsResult{Status: map[string]int{}}
	var first, last time.Time
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				return nil, err
			}
			var m struct {
				Status   string    `json:"status"`
				Attempts int       `json:"attempts"`
				Started  time.Time `json:"started"`
				Finished time.Time `json:"finished"`
				Result   *struct {
					T struct{ Fetch, Render, Upload, Total float64 } `json:"timings_ms"`
				} `json:"result"`
			}
			err = json.NewDecoder(g.Body).Decode(&m)
			g.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", *o.Key, err)
			}
			res.Jobs++
			res.Status[m.Status]++
			res.Attempts += m.Attempts
			if m.Result != nil {
				res.FetchS += m.Result.T.Fetch / 1000
				res.RenderS += m.Result.T.Render / 1000
				res.UploadS += m.Result.T.Upload / 1000
				res.TotalS += m.Result.T.Total / 1000
			}
			if first.IsZero() || m.Started.Before(first) {
				first = m.Started
			}
			if m.Finished.After(last) {
				last = m.Finished
			}
		}
	}
	res.SpanS = last.Sub(first).Seconds()
	return res, nil
}
