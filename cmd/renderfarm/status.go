package main

import (
	"fmt"
	"io"
	"time"

	"github.com/renderfarm/renderfarm/fleet"
	"github.com/urfave/cli/v2"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "the fleet at a glance: workers online, queue depths, dead letters",
		Description: `Listens to the workers' heartbeats for --listen (they beat every 2 s) while
asking them for stats, and reads the queues. A worker shows with its version,
slots busy/total, tasks done and last heartbeat; one that sends no events shows
from its stats reply alone. Unacked messages are not shown: AMQP does not
report them.`,
		UsageText: `renderfarm status --queues celery,renders
renderfarm status --output json | jq '.workers[] | select(.online) | .name'`,
		Flags: []cli.Flag{
			brokerFlag(),
			queuesFlag(),
			deadLetterFlag(),
			&cli.DurationFlag{Name: "window", EnvVars: []string{"RENDERFARM_STATUS_WINDOW"}, Value: 2500 * time.Millisecond,
				Usage: "how long to gather heartbeats (just over one beat interval sees every live worker)"},
			timeoutFlag(),
			outputFlag(),
			logLevelFlag(),
		},
		Action: runStatus,
	}
}

func runStatus(c *cli.Context) error {
	names, err := queueNames(c)
	if err != nil {
		return err
	}
	conn, err := dialFleet(c, "renderfarm status")
	if err != nil {
		return err
	}
	defer conn.Close()
	snap, err := fleet.Take(c.Context, conn, fleet.SnapshotOptions{
		Queues: names, DeadLetter: c.String("dead-letter-exchange"), Window: c.Duration("window"), Timeout: c.Duration("timeout"),
	})
	if err != nil {
		return err
	}
	return printOutput(c, snap, func(w io.Writer) { statusTable(w, snap) })
}

func statusTable(w io.Writer, s *fleet.Snapshot) {
	fmt.Fprintln(w, "WORKER\tVERSION\tSLOTS\tTASKS DONE\tLAST HEARTBEAT\tSTATE")
	if len(s.Workers) == 0 {
		fmt.Fprintln(w, "(no worker answered)")
	}
	for _, wk := range s.Workers {
		total := "?"
		if wk.SlotsTotal > 0 {
			total = fmt.Sprint(wk.SlotsTotal)
		}
		last := "-"
		if wk.LastHeartbeat != nil {
			last = s.Time.Sub(*wk.LastHeartbeat).Round(100*time.Millisecond).String() + " ago"
		}
		state := "online"
		if !wk.Online {
			state = "offline"
		}
		version := wk.Version
		if version == "" {
			version = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%d/%s\t%d\t%s\t%s\n", wk.Name, version, wk.SlotsBusy, total, wk.TasksDone, last, state)
	}
	fmt.Fprintln(w) // a line without cells ends the tabwriter's columns
	queueTable(w, s.Queues, s.DeadLetter)
}
