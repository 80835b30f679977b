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
		Description: `Reads each manifest (a location: s3://bucket/_renderfarm/jobs/2026/11/22/<id>.json,
file:///var/lib/renderfarm/jobs/..., or a local path) and publishes its request
as a new renderfarm.render task; prints the new task ids. Output keys are the
request's own, so a replay rewrites the same objects.
   renderfarm replay --file-root /var/lib/renderfarm s3://media/_renderfarm/jobs/2026/11/22/5f0c….json`,
		Flags: []cli.Flag{
			brokerFlag(),
			&cli.StringFlag{Name: "queue", EnvVars: []string{"RENDERFARM_QUEUE"}, Value: "celery", Usage: "queue (and exchange and routing key) to publish to"},
			&cli.StringFlag{Name: "file-root", EnvVars: []string{"RENDERFARM_FILE_ROOT"}, Usage: "colon-separated directories manifests may be read from"},
			&cli.BoolFlag{Name: "s3-path-style", EnvVars: []string{"RENDERFARM_S3_PATH_STYLE"}, Usage: "path-style S3 URLs"},
		},
		Action: runReplay,
	}
}

func runReplay(c *cli.Context) error {
	if c.Args().Len() == 0 {
		return cli.Exit("name at least one manifest", 2)
	}
	scfg := storage.Config{S3PathStyle: c.Bool("s3-path-style")}
	scfg.FileRoots = splitPaths(c.String("file-root"))
	store, err := storage.New(c.Context, scfg)
	if err != nil {
		return err
	}
	conn, err := broker.Dial(c.Context, broker.Config{URL: c.String("broker"), Name: "renderfarm replay"})
	if err != nil {
		return fmt.Errorf("connecting to the broker: %w", err)
	}
	defer conn.Close()
	q := c.String("queue")
	for _, arg := range c.Args().Slice() {
		raw := arg
		if !hasScheme(raw) {
			raw = "file://" + absPath(raw)
		}
		loc, err := storage.ParseLocation(raw)
		if err != nil {
			return fmt.Errorf("%s: %w", arg, err)
		}
		data, err := store.Get(c.Context, loc, 16<<20)
		if err != nil {
			return fmt.Errorf("%s: %w", arg, err)
		}
		var m job.Manifest
		if err := json.Unmarshal(data, &m); err != nil || m.Request == nil {
			return fmt.Errorf("%s: not a renderfarm job manifest", arg)
		}
		id, err := job.Enqueue(c.Context, conn, q, q, m.Request)
		if err != nil {
			return fmt.Errorf("%s: %w", arg, err)
		}
		fmt.Fprintf(c.App.Writer, "%s\treplayed %s as %s\n", arg, m.TaskID, id)
	}
	return nil
}
