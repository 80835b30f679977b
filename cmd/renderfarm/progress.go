package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// progressThreshold: below this many sources a bar is more noise than help.
const progressThreshold = 8

// progress draws a bar on stderr when it is a terminal and there are many
// sources; pipes and CI logs get no carriage-return noise.
type progress struct {
	mu          sync.Mutex
	total, seen int
	on          bool
}

func newProgress(total int, wanted bool) *progress {
	fi, err := os.Stderr.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0
	return &progress{total: total, on: wanted && tty && total >= progressThreshold}
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen++
	if !p.on {
		return
	}
	const width = 40
	filled := width * p.seen / p.total
	fmt.Fprintf(os.Stderr, "\r[%s%s] %d/%d", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), p.seen, p.total)
}

func (p *progress) finish() {
	if p.on {
		fmt.Fprintln(os.Stderr)
	}
}

// signalContext is cancelled by SIGINT or SIGTERM, so renders stop at the
// next pipeline step instead of being killed mid-write.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}
