// Command renderfarm is the render farm's one binary: the render engine's
// CLI, its host tuning report, and (as the farm grows) the worker and the
// web tier.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "renderfarm:", err)
		if ec, ok := err.(cli.ExitCoder); ok {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "renderfarm",
		Usage:   "libvips render workers for photo uploads",
		Version: version,
		// --variant takes JSON, which has commas of its own.
		DisableSliceFlagSeparator: true,
		Commands: []*cli.Command{
			renderCommand(),
			tuneCommand(),
			workerCommand(),
			replayCommand(),
			webCommand(),
		},
		// Errors are printed once, by main, with a non-zero status.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}
