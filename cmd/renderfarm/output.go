package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

// Exit codes, documented in docs/operations.md. Scripts branch on them, so
// they are distinct and stable: 1 is any other failure.
const (
	exitFailure  = 1 // the command could not do its work (broker down, I/O error)
	exitUsage    = 2 // bad flags or arguments
	exitNotFound = 3 // a job, manifest or message named does not exist
	exitPartial  = 4 // some items succeeded and some failed
)

// usageError is a cli.ExitCoder with exitUsage.
func usageError(format string, args ...any) cli.ExitCoder {
	return cli.Exit(fmt.Sprintf(format, args...), exitUsage)
}

// outputFlag selects how a command that prints results prints them: a
// table for people, JSON for scripts. Every such command takes it.
func outputFlag() cli.Flag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, EnvVars: []string{"RENDERFARM_OUTPUT"}, Value: "table",
		Usage: "table or json"}
}

// outputJSON reports whether --output asks for JSON, refusing values other
// than table and json.
func outputJSON(c *cli.Context) (bool, error) {
	switch o := c.String("output"); o {
	case "table", "":
		return false, nil
	case "json":
		return true, nil
	default:
		return false, usageError("--output: want table or json, not %q", o)
	}
}

// printOutput writes v as indented JSON when --output json, else calls
// table with a tabwriter whose columns it flushes afterwards.
func printOutput(c *cli.Context, v any, table func(w io.Writer)) error {
	asJSON, err := outputJSON(c)
	if err != nil {
		return err
	}
	out := c.App.Writer
	if out == nil {
		out = os.Stdout
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}
