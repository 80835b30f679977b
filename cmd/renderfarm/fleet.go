package main

import (
	"context"
	"time"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/urfave/cli/v2"
)

// What the fleet commands (inspect, queues, status, scale) share.

// fleetDialTimeout bounds the first connection of a one-shot command: an
// operator asking about the fleet wants an answer or an error, not a
// process that waits for ever for a broker that is down.
const fleetDialTimeout = 15 * time.Second

func timeoutFlag() cli.Flag {
	return &cli.DurationFlag{Name: "timeout", EnvVars: []string{"RENDERFARM_INSPECT_TIMEOUT"}, Value: time.Second,
		Usage: "how long to gather the workers' replies (celery inspect's --timeout)"}
}

// dialFleet checks --output, then connects for a fleet command, so a
// usage error never waits for the broker.
func dialFleet(c *cli.Context, name string) (*broker.Conn, error) {
	if _, err := outputJSON(c); err != nil {
		return nil, err
	}
	log, err := commandLogger(c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, fleetDialTimeout)
	defer cancel()
	conn, err := broker.Dial(ctx, broker.Config{URL: c.String("broker"), Name: name, Logger: log})
	if err != nil {
		return nil, dialError(err)
	}
	return conn, nil
}

// queueNames reads --queues, the worker's syntax, for the names alone.
func queueNames(c *cli.Context) ([]string, error) {
	qs, err := celery.ParseQueues(c.String("queues"))
	if err != nil {
		return nil, usageError("--queues: %v", err)
	}
	names := make([]string, len(qs))
	for i, q := range qs {
		names[i] = q.Name
	}
	return names, nil
}
