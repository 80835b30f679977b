package main

import (
	"encoding/json"
	"fmt"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/storage"
	"github.com/urfave/cli/v2"
)

func replayCommand() *cli.Command {
	return &cli.Command{
		Name:      "replay",
		Usage:     "enqueue the request recorded in job manifests again",
		ArgsUsage: "MANIFEST...",
		Description: `Reads each manifest from the journal (a location under --journal, such as
s3://media/_renderfarm/jobs/2026/11/22/<id>.json, or a local path there) and
publishes its request as a new renderfarm.render task; prints the new task
ids. Output keys are the request's own, so a replay rewrites the same objects.

   renderfarm replay --journal s3://media/_renderfarm/jobs/ s3://media/_renderfarm/jobs/2026/11/22/5f0c….json`,
		Flags: append(storageFlags(),
			brokerFlag(),
			queueFlag(),
			logLevelFlag(),
		),
		Action: runReplay,
	}
}

func runReplay(c *cli.Context) error {
	if c.Args().Len() == 0 {
		return cli.Exit("name at least one manifest", 2)
	}
	log, err := newLogger(c.String("log-level"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	qs, err := queues(c, "queue", true)
	if err != nil {
		return err
	}
	exchange, key := qs[0].Route()
	_, journal, err := openStores(c, log, nil, false)
	if err != nil {
		return err
	}
	conn, err := broker.Dial(c.Context, broker.Config{URL: c.String("broker"), Name: "renderfarm replay", Logger: log})
	if err != nil {
		return dialError(err)
	}
	defer conn.Close()
	for _, arg := range c.Args().Slice() {
		raw := arg
		if !hasScheme(raw) {
			raw = "file://" + absPath(raw)
		}
		loc, err := storage.ParseLocation(raw)
		if err != nil {
			return fmt.Errorf("%s: %w", arg, err)
		}
		data, err := journal.Get(c.Context, loc, 16<<20)
		if err != nil {
			return fmt.Errorf("%s: %w", arg, err)
		}
		var m job.Manifest
		if err := json.Unmarshal(data, &m); err != nil || m.Request == nil {
			return fmt.Errorf("%s: not a renderfarm job manifest", arg)
		}
		id, err := job.Enqueue(c.Context, conn.Publish, exchange, key, m.Request)
		if err != nil {
			return fmt.Errorf("%s: %w", arg, err)
		}
		fmt.Fprintf(c.App.Writer, "%s\treplayed %s as %s\n", arg, m.TaskID, id)
	}
	return nil
}
