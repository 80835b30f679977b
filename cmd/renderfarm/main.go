// Command renderfarm is the render farm's one binary, one command per
// role: worker (the Celery-compatible render worker) and web (the HTTP
// tier that enqueues renders); for engineers, enqueue, replay (find a
// recorded job, rerun or compare it) and dlq (dead letters); for ops,
// status, queues, inspect (Celery's remote control) and scale (the
// scaling signal); render and tune (the engine on local files, and what it
// makes of this host); and completion. The flags the commands share are
// defined once, in flags.go; --output and the exit codes in output.go.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	app := newApp()
	if err := app.Run(flagsFirst(app, os.Args)); err != nil {
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
			enqueueCommand(),
			webCommand(),
			inspectCommand(),
			queuesCommand(),
			statusCommand(),
			scaleCommand(),
			dlqCommand(),
			completionCommand(),
		},
		// `renderfarm completion bash|zsh` scripts call the binary with
		// --generate-bash-completion.
		EnableBashCompletion: true,
		// Errors are printed once, by main, with a non-zero status.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// flagsFirst moves a command's flags ahead of its positional arguments, so
// `renderfarm render photo.jpg --recipe gallery` means what
// `renderfarm render --recipe gallery photo.jpg` does: urfave/cli v2 stops
// reading flags at the first argument. A flag's value is kept with it
// (bool flags take none unless written --flag=value), and everything after
// "--" stays as written.
func flagsFirst(app *cli.App, args []string) []string {
	// urfave/cli looks for the shell completion flag only at the very end.
	if n := len(args); n > 1 && args[n-1] == completionFlag {
		return append(append([]string{}, flagsFirst(app, args[:n-1])...), completionFlag)
	}
	if len(args) < 2 {
		return args
	}
	var cmd *cli.Command
	i := 1
	for ; i < len(args); i++ {
		if !strings.HasPrefix(args[i], "-") {
			cmd = app.Command(args[i])
			break
		}
	}
	if cmd == nil {
		return args
	}
	// A command with subcommands (dlq ls) takes its flags after them.
	for len(cmd.Subcommands) > 0 && i+1 < len(args) {
		sub := cmd.Command(args[i+1])
		if sub == nil {
			break
		}
		cmd, i = sub, i+1
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, name := range f.Names() {
			takesValue[name] = !isBool
		}
	}
	head := append([]string{}, args[:i+1]...)
	var flags, positional []string
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		switch {
		case a == "--":
			positional = append(positional, rest[j:]...)
			j = len(rest)
		case a == "-" || !strings.HasPrefix(a, "-"):
			positional = append(positional, a)
		default:
			flags = append(flags, a)
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !hasValue && takesValue[name] && j+1 < len(rest) {
				j++
				flags = append(flags, rest[j])
			}
		}
	}
	return append(append(head, flags...), positional...)
}
