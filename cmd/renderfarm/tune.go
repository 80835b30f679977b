package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

func tuneCommand() *cli.Command {
	return &cli.Command{
		Name:  "tune",
		Usage: "show the settings derived from this host's CPUs and memory",
		Description: "Prints every value the render engine runs with and where it came from.\n" +
			"Flags and RENDERFARM_* variables override any of them.\n" +
			"   renderfarm tune --memory 8GiB --slots 4 --json",
		Flags: append(engineFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
		Action: func(c *cli.Context) error {
			t, err := tuning(c)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{
					"slots":               t.Slots,
					"vips_threads":        t.VipsThreads,
					"vips_cache":          false,
					"memory_budget_bytes": t.MemoryBudget,
					"max_pixels":          t.MaxPixels,
					"max_bytes":           t.MaxBytes,
					"shrink_on_load":      t.ShrinkOnLoad,
					"host":                t.Host,
					"from":                t.From,
				})
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SETTING\tVALUE\tFROM")
			fmt.Fprintf(tw, "usable CPUs\t%g\t%s\n", t.Host.CPUs, t.Host.CPUsFrom)
			fmt.Fprintf(tw, "usable memory\t%s\t%s\n", mib(t.Host.Memory), t.Host.MemoryFrom)
			fmt.Fprintf(tw, "slots\t%d\t%s\n", t.Slots, t.From["slots"])
			fmt.Fprintf(tw, "vips threads\t%d\t%s\n", t.VipsThreads, t.From["vips_threads"])
			fmt.Fprintf(tw, "vips cache\toff\t%s\n", t.From["vips_cache"])
			fmt.Fprintf(tw, "memory budget\t%s\t%s\n", mib(t.MemoryBudget), t.From["memory_budget"])
			fmt.Fprintf(tw, "max pixels\t%d\t%s\n", t.MaxPixels, t.From["max_pixels"])
			fmt.Fprintf(tw, "max bytes\t%s\t%s\n", mib(t.MaxBytes), t.From["max_bytes"])
			fmt.Fprintf(tw, "shrink on load\t%s\t%s\n", t.ShrinkOnLoad, t.From["shrink_on_load"])
			return tw.Flush()
		},
	}
}

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }
