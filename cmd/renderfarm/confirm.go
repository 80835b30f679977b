package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// yesFlag answers confirm's question in advance, for scripts.
func yesFlag() cli.Flag {
	return &cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, EnvVars: []string{"RENDERFARM_YES"},
		Usage: "act without asking first (required when stdin is not a terminal)"}
}

// confirm asks question on the terminal before a destructive or bulk
// action, unless --yes was given. With no terminal on stdin nobody can
// answer, so it refuses (exitUsage) rather than act unasked; an answer
// other than y or yes cancels (exit 1).
func confirm(c *cli.Context, question string) error {
	if c.Bool("yes") {
		return nil
	}
	in := c.App.Reader
	if in == nil {
		in = os.Stdin
	}
	if f, ok := in.(*os.File); !ok || !isTerminal(f) {
		return usageError("%s: stdin is not a terminal to ask on; pass --yes to go ahead", question)
	}
	errw := c.App.ErrWriter
	if errw == nil {
		errw = os.Stderr
	}
	fmt.Fprintf(errw, "%s [y/N] ", question)
	answer, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && err != io.EOF {
		return fmt.Errorf("reading the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return cli.Exit("cancelled: nothing done", exitFailure)
}

// isTerminal asks the tty driver: a character device alone is not enough,
// since /dev/null is one too and nobody answers there.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
