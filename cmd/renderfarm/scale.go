package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/fleet"
	"github.com/renderfarm/renderfarm/metrics"
	"github.com/urfave/cli/v2"
)

func scaleCommand() *cli.Command {
	return &cli.Command{
		Name:  "scale",
		Usage: "the scaling signal: backlog per instance and the desired instance count for a target wait",
		Description: `AWS's backlog-per-instance pattern. Reads the queues' ready messages, listens to
the workers' heartbeats for --window to measure tasks finished per second per
worker (a worker without events: its stats totals, before and after), and
prints:

  backlog per instance            ready messages / workers online
  acceptable backlog per instance throughput per instance x --target-wait
  desired instances               ceil(ready / acceptable backlog per instance)

Desired is 0 only when nothing is ready and nothing runs, and at least 1 while
anything does. Until a throughput is measured (no worker online, or none
finished a task within the window) it keeps the instances there are, and asks
for 1 when there are none. Run it once per fleet: from cron, or as a service
with --listen (Prometheus gauges, re-measured every --interval) and/or
--cloudwatch NAMESPACE (PutMetricData for a target-tracking policy; AWS
credentials, region and endpoint come from the standard AWS environment).`,
		UsageText: `renderfarm scale --queues celery,renders --target-wait 60s
renderfarm scale --queues renders --target-wait 2m --window 2m --listen :9181 --cloudwatch Renderfarm --cloudwatch-dimensions AutoScalingGroupName=render-workers`,
		Flags: []cli.Flag{
			brokerFlag(),
			queuesFlag(),
			&cli.DurationFlag{Name: "target-wait", EnvVars: []string{"RENDERFARM_TARGET_WAIT"}, Value: time.Minute, Usage: "the longest a new task should wait before it starts"},
			&cli.DurationFlag{Name: "window", EnvVars: []string{"RENDERFARM_SCALE_WINDOW"}, Value: 10 * time.Second,
				Usage: "heartbeats measured over (several task durations; longer with --listen)"},
			&cli.StringFlag{Name: "listen", EnvVars: []string{"RENDERFARM_SCALE_LISTEN"}, Usage: "serve the figures as Prometheus gauges on this address (/metrics, /healthz, /readyz) and keep measuring"},
			&cli.DurationFlag{Name: "interval", EnvVars: []string{"RENDERFARM_SCALE_INTERVAL"}, Value: 30 * time.Second, Usage: "with --listen: how often to measure (and put to CloudWatch)"},
			&cli.StringFlag{Name: "cloudwatch", EnvVars: []string{"RENDERFARM_CLOUDWATCH_NAMESPACE"}, Usage: "put the figures to CloudWatch in this namespace"},
			&cli.StringFlag{Name: "cloudwatch-dimensions", EnvVars: []string{"RENDERFARM_CLOUDWATCH_DIMENSIONS"},
				Usage: "NAME=VALUE,... on every metric (default: Queues=<the --queues names>)"},
			outputFlag(),
			logLevelFlag(),
		},
		Action: runScale,
	}
}

func runScale(c *cli.Context) error {
	names, err := queueNames(c)
	if err != nil {
		return err
	}
	wait, window := c.Duration("target-wait"), c.Duration("window")
	if wait <= 0 || window <= 0 || c.Duration("interval") <= 0 {
		return usageError("--target-wait, --window and --interval must be positive")
	}
	dims, err := cloudwatchDimensions(c.String("cloudwatch-dimensions"), names)
	if err != nil {
		return err
	}
	log, err := commandLogger(c)
	if err != nil {
		return err
	}
	conn, err := dialFleet(c, "renderfarm scale")
	if err != nil {
		return err
	}
	defer conn.Close()
	var cw *fleet.CloudWatch
	if ns := c.String("cloudwatch"); ns != "" {
		if cw, err = fleet.NewCloudWatch(c.Context, ns, dims); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hb := fleet.NewHeartbeats(conn, window)
	if err := hb.Start(ctx); err != nil {
		return err
	}
	defer hb.Stop(context.Background())
	// Workers without events are measured by their stats instead: a
	// first sample now, the rate at each measurement.
	sm := fleet.NewStatsMeter(fleet.NewControl(conn), time.Second)
	if _, _, err := sm.Sample(ctx); err != nil {
		return err
	}
	m := &scaleMeter{conn: conn, hb: hb, sm: sm, queues: names, wait: wait, cw: cw, log: log}
	if addr := c.String("listen"); addr != "" {
		return m.serve(ctx, addr, window, c.Duration("interval"))
	}
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return ctx.Err()
	}
	res, err := m.measure(ctx)
	if err != nil {
		return err
	}
	return printOutput(c, res, func(w io.Writer) { scaleTable(w, res) })
}

// scaleMeter measures the signal and hands it on: to the gauges, to
// CloudWatch. One measurement at a time, from one goroutine.
type scaleMeter struct {
	conn   *broker.Conn
	hb     *fleet.Heartbeats
	sm     *fleet.StatsMeter
	queues []string
	wait   time.Duration
	cw     *fleet.CloudWatch // nil: not put
	gauges *fleet.Gauges     // nil: not served
	log    *slog.Logger
}

func (m *scaleMeter) measure(ctx context.Context) (*fleet.Measurement, error) {
	res, err := fleet.Measure(ctx, m.conn, m.hb, m.sm, m.queues, m.wait)
	if err != nil {
		return nil, err
	}
	if m.gauges != nil {
		m.gauges.Set(res)
	}
	if m.cw != nil {
		if err := m.cw.Put(ctx, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// serve keeps measuring every interval, after a first window of
// heartbeats, until ctx ends; a failed measurement is logged and the
// gauges keep the last good one (their timestamp says how old it is).
func (m *scaleMeter) serve(ctx context.Context, addr string, window, interval time.Duration) error {
	reg := metrics.NewRegistry()
	m.gauges = fleet.NewGauges(reg)
	health := &workerHealth{stopping: ctx}
	health.conn.Store(m.conn)
	stopServer, err := serveWorkerHealth(addr, reg, health, m.log)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	defer stopServer()
	next := time.NewTimer(window)
	defer next.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-next.C:
		}
		res, err := m.measure(ctx)
		if err != nil {
			m.log.Warn("scale: measuring", "err", err)
		} else {
			m.log.Info("scale: measured", "backlog", res.Backlog, "instances", res.Instances, "throughput_per_instance", res.ThroughputPerInstance,
				"desired", res.Desired, "reason", res.Reason)
		}
		next.Reset(interval)
	}
}

func cloudwatchDimensions(s string, queues []string) ([][2]string, error) {
	if s == "" {
		return [][2]string{{"Queues", strings.Join(queues, ",")}}, nil
	}
	var out [][2]string
	for _, p := range splitList(s) {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" || v == "" {
			return nil, usageError("--cloudwatch-dimensions: %q is not NAME=VALUE", p)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func scaleTable(w io.Writer, m *fleet.Measurement) {
	queueTable(w, m.Queues, nil)
	fmt.Fprintln(w)
	tp := "not measured"
	if m.Throughput.Measured > 0 {
		tp = fmt.Sprintf("%.3g tasks/s (%d workers over %v)", m.ThroughputPerInstance, m.Throughput.Measured, m.Throughput.Window.Round(time.Second))
	}
	acc := "-"
	if m.AcceptableBacklogPerInstance > 0 {
		acc = fmt.Sprintf("%.4g", m.AcceptableBacklogPerInstance)
	}
	for _, row := range [][2]string{
		{"backlog", fmt.Sprint(m.Backlog)},
		{"instances online", fmt.Sprint(m.Instances)},
		{"throughput per instance", tp},
		{"target wait", (time.Duration(m.TargetWait * float64(time.Second))).String()},
		{"backlog per instance", fmt.Sprintf("%.4g", m.BacklogPerInstance)},
		{"acceptable backlog per instance", acc},
		{"desired instances", fmt.Sprintf("%d\t(%s)", m.Desired, m.Reason)},
	} {
		fmt.Fprintf(w, "%s\t%s\n", row[0], row[1])
	}
}
