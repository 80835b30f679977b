// Command renderfarm is the render farm's one binary, one command per
// role: worker (the Celery-compatible render worker), web (the HTTP tier
// that enqueues renders), replay (an engineer's re-run of a recorded job),
// and render and tune (the engine on local files, and what it makes of
// this host). The flags the commands share are defined once, in flags.go.
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
