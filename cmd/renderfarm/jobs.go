package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/storage"
	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"
)

// What enqueue and replay share: publishing requests as tasks, and
// following their results in the journal.

// publisher sends requests as renderfarm.render tasks to the --queue.
type publisher struct {
	conn          *broker.Conn
	exchange, key string
}

// dialPublisher connects to --broker for --queue, declared as queueFlags
// say. It is called only once
// there is something to publish, so what never publishes (replay --local, a
// refused request) needs no broker.
func dialPublisher(c *cli.Context, name string) (*publisher, error) {
	log, err := commandLogger(c)
	if err != nil {
		return nil, err
	}
	qs, err := queues(c, "queue", true)
	if err != nil {
		return nil, err
	}
	// Declared as the workers and the web tier declare it (queueFlags), so
	// a task sent before any worker has started waits in its queue.
	conn, err := broker.Dial(c.Context, broker.Config{URL: c.String("broker"), Name: name, Logger: log,
		Topology: qs[0].Topology(c.String("dead-letter-exchange"))})
	if err != nil {
		return nil, dialError(err)
	}
	p := &publisher{conn: conn}
	p.exchange, p.key = qs[0].Route()
	return p, nil
}

// enqueue publishes req under id ("" for a new one) and returns the id once
// the broker has confirmed it.
func (p *publisher) enqueue(ctx context.Context, id string, req *job.Request) (string, error) {
	return job.EnqueueAs(ctx, p.conn.Publish, p.exchange, p.key, id, req)
}

func (p *publisher) Close() error { return p.conn.Close() }

// commandLogger is the logger of a command a person runs and reads: the
// broker's connects and closes are noise beside its report, so it logs
// warnings and errors unless --log-level says otherwise.
func commandLogger(c *cli.Context) (*slog.Logger, error) {
	level := c.String("log-level")
	if !c.IsSet("log-level") {
		level = "warn"
	}
	log, err := newLogger(level)
	if err != nil {
		return nil, usageError("%v", err)
	}
	return log, nil
}

// openJournal opens the stores of the storage flags: the jobs' store, for
// validating requests and reading their sources and outputs, and the
// journal under --journal, searched over days days for a task id.
func openJournal(c *cli.Context, days int) (*storage.Store, *job.Journal, error) {
	log, err := commandLogger(c)
	if err != nil {
		return nil, nil, err
	}
	store, js, err := openStores(c, log, nil, false)
	if err != nil {
		return nil, nil, err
	}
	return store, &job.Journal{Store: js, Prefix: c.String("journal"), Days: days}, nil
}

// waitFlags are how a command follows the tasks it sent to their end.
func waitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "wait", EnvVars: []string{"RENDERFARM_WAIT"}, Usage: "follow the tasks in the journal until each has succeeded or failed for good"},
		&cli.DurationFlag{Name: "wait-timeout", EnvVars: []string{"RENDERFARM_WAIT_TIMEOUT"}, Value: 10 * time.Minute, Usage: "how long --wait waits; tasks not finished by then count as failed"},
	}
}

// pollEvery is how often a wait asks the journal again about the tasks
// still running: a manifest is a few KiB, read once per pending task.
const pollEvery = 500 * time.Millisecond

// waitResults follows tasks in the journal, which workers write for every
// task whether it succeeded or failed (a Celery result is published only to
// a client that asked for one, and ours do not), until each has a final
// manifest (SUCCESS or FAILURE; RETRY means another attempt is due) or
// timeout passes. landed is called once per task as its final manifest
// arrives, from one goroutine at a time. past holds, for a task id sent
// again (replay --same-id), when its previous record started: that record
// and older ones are not this run's result. The answer maps each finished
// id to its manifest; an id missing from it did not finish in time.
func waitResults(ctx context.Context, journal *job.Journal, ids []string, past map[string]time.Time, timeout time.Duration, landed func(*job.Manifest)) (map[string]*job.Manifest, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := map[string]*job.Manifest{}
	var mu sync.Mutex
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		var pending []string
		for _, id := range ids {
			if done[id] == nil {
				pending = append(pending, id)
			}
		}
		if len(pending) == 0 {
			return done, nil
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for _, id := range pending {
			g.Go(func() error {
				m, err := journal.Find(gctx, id)
				if errors.Is(err, job.ErrNoManifest) || err == nil && (m.Status == job.StatusRetry || !m.Started.After(past[id])) {
					return nil
				}
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				done[id] = m
				if landed != nil {
					landed(m)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil && ctx.Err() == nil {
			return done, fmt.Errorf("reading the journal: %w", err)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return done, nil
			}
			return done, ctx.Err()
		case <-tick.C:
		}
	}
}

// manifestError is a failed task's error as the worker recorded it, code
// first, as a Python client sees it.
func manifestError(m *job.Manifest) string {
	if m.Error == nil {
		return string(m.Status)
	}
	return m.Error.Code + ": " + m.Error.Message
}

// itemsExit is the exit for a command that acted on several items, as
// output.go defines the codes: 0 when none failed, exitNotFound when none
// was found, exitFailure when none succeeded, exitPartial for a mix.
func itemsExit(total, failed, notFound int) error {
	msg := fmt.Sprintf("%d of %d failed", failed+notFound, total)
	switch {
	case failed+notFound == 0:
		return nil
	case notFound == total:
		return cli.Exit(fmt.Sprintf("%d of %d not found", notFound, total), exitNotFound)
	case failed+notFound == total:
		return cli.Exit(msg, exitFailure)
	}
	return cli.Exit(msg, exitPartial)
}
