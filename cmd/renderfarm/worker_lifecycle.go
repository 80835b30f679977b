package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/renderfarm/renderfarm/lifecycle"
	"github.com/urfave/cli/v2"
)

// retireMargin is kept back from a spot notice's deadline for what follows
// the drain: handing back the renders that did not finish, worker-offline,
// closing the connection and completing the lifecycle hook.
const retireMargin = 15 * time.Second

// lifecycleFlags turn on the worker's watch for its EC2 instance being
// retired (docs/operations.md, "How instances are retired").
func lifecycleFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "ec2-lifecycle", EnvVars: []string{"RENDERFARM_EC2_LIFECYCLE"},
			Usage: "on EC2: drain as on SIGTERM when the instance metadata (IMDSv2) shows a spot interruption notice or an auto-scaling termination"},
		&cli.DurationFlag{Name: "ec2-poll-interval", EnvVars: []string{"RENDERFARM_EC2_POLL_INTERVAL"}, Value: lifecycle.DefaultInterval,
			Usage: "how often --ec2-lifecycle reads the instance metadata"},
		&cli.StringFlag{Name: "lifecycle-hook", EnvVars: []string{"RENDERFARM_LIFECYCLE_HOOK"},
			Usage: "with --ec2-lifecycle: once drained, complete this auto-scaling termination lifecycle hook (CONTINUE)"},
		&cli.StringFlag{Name: "asg-name", EnvVars: []string{"RENDERFARM_ASG_NAME"},
			Usage: "the instance's auto-scaling group, for --lifecycle-hook (default: the aws:autoscaling:groupName tag, with instance metadata tags on)"},
	}
}

// retirement drains the worker when its EC2 instance is being retired,
// exactly as SIGTERM does, and then completes the lifecycle hook.
type retirement struct {
	watcher *lifecycle.Watcher
	hook    *lifecycle.Hook // nil without --lifecycle-hook
	log     *slog.Logger
	noticed atomic.Bool
}

// startRetirement starts watching the instance metadata; nil (and no
// error) without --ec2-lifecycle. A metadata service that does not answer
// is a startup error: the operator counts on the watch.
func startRetirement(c *cli.Context, log *slog.Logger) (*retirement, error) {
	if !c.Bool("ec2-lifecycle") {
		for _, f := range []string{"lifecycle-hook", "asg-name"} {
			if c.String(f) != "" {
				return nil, cli.Exit("--"+f+" needs --ec2-lifecycle", exitUsage)
			}
		}
		return nil, nil
	}
	w := lifecycle.New(lifecycle.Config{Interval: c.Duration("ec2-poll-interval"), Logger: log})
	if err := w.Start(c.Context); err != nil {
		return nil, fmt.Errorf("--ec2-lifecycle: %w (is this an EC2 instance with IMDSv2 reachable, hop limit 2 in a container?)", err)
	}
	r := &retirement{watcher: w, log: log}
	if name := c.String("lifecycle-hook"); name != "" {
		group := c.String("asg-name")
		if group == "" {
			var err error
			if group, err = w.GroupName(c.Context); err != nil {
				w.Stop()
				return nil, fmt.Errorf("--lifecycle-hook: the auto-scaling group's name: pass --asg-name or turn instance metadata tags on: %w", err)
			}
		}
		// Region from AWS_REGION or else the same metadata service;
		// credentials from the instance role.
		awsCfg, err := config.LoadDefaultConfig(c.Context, config.WithEC2IMDSRegion(func(o *config.UseEC2IMDSRegion) { o.Client = w.Client() }))
		if err != nil {
			w.Stop()
			return nil, fmt.Errorf("--lifecycle-hook: %w", err)
		}
		r.hook = &lifecycle.Hook{Name: name, Group: group, Client: autoscaling.NewFromConfig(awsCfg)}
	}
	return r, nil
}

// run runs the worker (run) while watching: a notice starts the warm
// shutdown (stopWarm) and, at the notice's deadline less retireMargin,
// cuts it short (stopCold), so unfinished renders are handed back before
// the instance goes. Once the worker has stopped, the hook is completed.
// A nil retirement only runs the worker.
func (r *retirement) run(run func() error, stopWarm, stopCold func()) error {
	if r == nil {
		return run()
	}
	ran, cancel := context.WithCancel(context.Background())
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		r.drainOn(ran, stopWarm, stopCold)
	}()
	err := run()
	cancel()
	<-drained
	if !r.noticed.Load() {
		return err
	}
	// A notice before the worker was up cancels its start; that is the
	// drain, not a failure to restart for.
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if r.hook != nil {
		r.completeHook()
	}
	return err
}

func (r *retirement) drainOn(ran context.Context, stopWarm, stopCold func()) {
	var n lifecycle.Notice
	select {
	case <-ran.Done():
		return
	case n = <-r.watcher.Notices():
	}
	r.noticed.Store(true)
	attrs := []any{"reason", n.Reason}
	if n.Action != "" {
		attrs = append(attrs, "action", n.Action)
	}
	if !n.Time.IsZero() {
		attrs = append(attrs, "at", n.Time)
	}
	r.log.Warn("the instance is being retired: draining as on SIGTERM", attrs...)
	stopWarm()
	if n.Time.IsZero() {
		return
	}
	cut := time.NewTimer(time.Until(n.Time) - retireMargin)
	defer cut.Stop()
	select {
	case <-ran.Done():
	case <-cut.C:
		r.log.Warn("the instance goes soon: handing back the renders still running", "at", n.Time)
		stopCold()
	}
}

// stop ends the watch; nil-safe.
func (r *retirement) stop() {
	if r != nil {
		r.watcher.Stop()
	}
}

// completeHook lets the auto-scaling group go on terminating. A failure is
// logged, not returned: the instance is going anyway, and a restart would
// only drain again; the hook's own timeout then ends the wait.
func (r *retirement) completeHook() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.hook.Complete(ctx, r.watcher.InstanceID()); err != nil {
		r.log.Error("lifecycle action not completed; the group waits for the hook's timeout", "err", err)
		return
	}
	r.log.Info("lifecycle action completed", "hook", r.hook.Name, "group", r.hook.Group, "instance", r.watcher.InstanceID())
}
