package main

import (
	"fmt"
	"io"

	"github.com/renderfarm/renderfarm/fleet"
	"github.com/urfave/cli/v2"
)

func queuesCommand() *cli.Command {
	return &cli.Command{
		Name:  "queues",
		Usage: "depth (ready messages) and consumers of the work queues and the dead-letter queue",
		Description: `Reads each queue with a passive declare, which changes nothing. Unacked
messages (delivered to a worker, not yet acknowledged) are not shown: AMQP
does not report them; rabbitmqctl list_queues name messages_unacknowledged
does. A queue nobody has declared yet shows as missing.`,
		UsageText: `renderfarm queues --queues celery,renders --output json`,
		Flags: []cli.Flag{
			brokerFlag(),
			queuesFlag(),
			deadLetterFlag(),
			outputFlag(),
			logLevelFlag(),
		},
		Action: runQueues,
	}
}

func runQueues(c *cli.Context) error {
	names, err := queueNames(c)
	if err != nil {
		return err
	}
	conn, err := dialFleet(c, "renderfarm queues")
	if err != nil {
		return err
	}
	defer conn.Close()
	out := struct {
		Queues     []fleet.QueueDepth `json:"queues"`
		DeadLetter *fleet.QueueDepth  `json:"dead_letter,omitempty"`
		Unacked    string             `json:"unacked"`
	}{Unacked: fleet.UnackedNote}
	if out.Queues, out.DeadLetter, err = fleet.DepthsWithDeadLetter(c.Context, conn, names, c.String("dead-letter-exchange")); err != nil {
		return err
	}
	return printOutput(c, out, func(w io.Writer) {
		queueTable(w, out.Queues, out.DeadLetter)
	})
}

// queueTable is the queues' part of queues and status.
func queueTable(w io.Writer, qs []fleet.QueueDepth, dead *fleet.QueueDepth) {
	fmt.Fprintln(w, "QUEUE\tREADY\tCONSUMERS\t")
	row := func(q fleet.QueueDepth, note string) {
		if q.Missing {
			fmt.Fprintf(w, "%s\t-\t-\tmissing (not declared yet) %s\n", q.Name, note)
			return
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", q.Name, q.Ready, q.Consumers, note)
	}
	for _, q := range qs {
		row(q, "")
	}
	if dead != nil {
		row(*dead, "dead-letter queue")
	}
	fmt.Fprintln(w, fleet.UnackedNote)
}
