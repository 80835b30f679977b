package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/fleet"
	"github.com/urfave/cli/v2"
)

// inspectMethods are the commands inspect sends, with how many task ids
// each takes.
var inspectMethods = map[string]bool{"ping": false, "stats": false, "active": false, "reserved": false, "registered": false, "revoke": true}

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "ask the workers over Celery's remote control: ping, stats, active, reserved, registered, revoke ID...",
		ArgsUsage: "ping|stats|active|reserved|registered|revoke ID...",
		Description: `Broadcasts the command to every worker (or those named by --destination) as
celery inspect does, and prints the replies gathered within --timeout: any
Celery worker answers, renderfarm's or Python's. With --output json it prints
what celery inspect --json prints, {"node": reply}. revoke flags the tasks as
revoked on every worker (--terminate also stops them if running). Exits 3
when no worker replied.`,
		UsageText: `renderfarm inspect active --destination renderfarm@render-7 --timeout 2s
renderfarm inspect revoke 5f0c2a1e-8d2b-4c7e-9a55-2f1f4e0d7c10 --terminate`,
		Flags: []cli.Flag{
			brokerFlag(),
			&cli.StringFlag{Name: "destination", Aliases: []string{"d"}, EnvVars: []string{"RENDERFARM_DESTINATION"}, Usage: "comma-separated worker names to ask (default: all)"},
			timeoutFlag(),
			&cli.IntFlag{Name: "limit", EnvVars: []string{"RENDERFARM_INSPECT_LIMIT"}, Usage: "stop after this many replies (default: the number of --destination names, else none)"},
			&cli.BoolFlag{Name: "terminate", EnvVars: []string{"RENDERFARM_TERMINATE"}, Usage: "revoke: also stop the task if it is running"},
			outputFlag(),
			logLevelFlag(),
		},
		Action: runInspect,
	}
}

func runInspect(c *cli.Context) error {
	method := c.Args().First()
	takesIDs, ok := inspectMethods[method]
	if !ok {
		return usageError("inspect: want one of ping, stats, active, reserved, registered, revoke; not %q", method)
	}
	ids := c.Args().Tail()
	if takesIDs != (len(ids) > 0) {
		if takesIDs {
			return usageError("inspect revoke: name the task ids")
		}
		return usageError("inspect %s takes no arguments", method)
	}
	conn, err := dialFleet(c, "renderfarm inspect")
	if err != nil {
		return err
	}
	defer conn.Close()
	opts := fleet.CallOptions{Destination: splitList(c.String("destination")), Timeout: c.Duration("timeout"), Limit: c.Int("limit")}
	var args map[string]any
	if method == "revoke" {
		list := make([]any, len(ids))
		for i, id := range ids {
			list[i] = id
		}
		args = map[string]any{"task_id": list, "terminate": c.Bool("terminate"), "signal": "SIGTERM"}
	}
	replies, err := fleet.NewControl(conn).Call(c.Context, method, args, opts)
	if err != nil {
		return err
	}
	byNode := map[string]json.RawMessage{}
	for _, r := range replies {
		byNode[r.Node] = r.Body
	}
	if err := printOutput(c, byNode, func(w io.Writer) { inspectTable(w, method, replies) }); err != nil {
		return err
	}
	if len(replies) == 0 {
		return cli.Exit("no worker replied within "+c.Duration("timeout").String(), exitNotFound)
	}
	return nil
}

func inspectTable(w io.Writer, method string, replies []fleet.Reply) {
	slices.SortFunc(replies, func(a, b fleet.Reply) int { return strings.Compare(a.Node, b.Node) })
	switch method {
	case "stats":
		fmt.Fprintln(w, "NODE\tPID\tUPTIME\tSLOTS\tPREFETCH\tTASKS")
		for _, r := range replies {
			var s fleet.Stats
			if json.Unmarshal(r.Body, &s) != nil {
				fmt.Fprintf(w, "%s\t%s\n", r.Node, r.Body)
				continue
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\t%d\n", r.Node, s.PID, (time.Duration(s.Uptime) * time.Second).String(), s.Pool.MaxConcurrency, s.PrefetchCount, s.Done())
		}
	case "active", "reserved":
		fmt.Fprintln(w, "NODE\tID\tTASK\tSTARTED\tACKED")
		for _, r := range replies {
			var ts []fleet.TaskInfo
			if json.Unmarshal(r.Body, &ts) != nil {
				fmt.Fprintf(w, "%s\t%s\n", r.Node, r.Body)
				continue
			}
			if len(ts) == 0 {
				fmt.Fprintf(w, "%s\t-\t(none)\t\t\n", r.Node)
			}
			for _, t := range ts {
				started := "-"
				if t.TimeStart > 0 {
					started = time.Unix(0, int64(t.TimeStart*1e9)).UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\n", r.Node, t.ID, t.Name, started, t.Acknowledged)
			}
		}
	case "registered":
		fmt.Fprintln(w, "NODE\tTASK")
		for _, r := range replies {
			var names []string
			if json.Unmarshal(r.Body, &names) != nil {
				fmt.Fprintf(w, "%s\t%s\n", r.Node, r.Body)
				continue
			}
			for _, n := range names {
				fmt.Fprintf(w, "%s\t%s\n", r.Node, n)
			}
		}
	default: // ping, revoke: {"ok": ...} or {"error": ...}
		fmt.Fprintln(w, "NODE\tREPLY")
		for _, r := range replies {
			var ok fleet.OK
			switch {
			case json.Unmarshal(r.Body, &ok) != nil:
				fmt.Fprintf(w, "%s\t%s\n", r.Node, r.Body)
			case ok.Error != "":
				fmt.Fprintf(w, "%s\terror: %s\n", r.Node, ok.Error)
			default:
				fmt.Fprintf(w, "%s\t%s\n", r.Node, strings.TrimSpace(ok.OK))
			}
		}
	}
}
