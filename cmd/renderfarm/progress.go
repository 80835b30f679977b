package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// progressThreshold: below this many sources a bar is more noise than help.
const progressThreshold = 8

// progress draws a bar on the error stream when it is a terminal and there
// are many sources; pipes and CI logs get no carriage-return noise.
type progress struct {
	mu          sync.Mutex
	w           io.Writer // the error stream: the bar, or the lines in its place
	total, seen int
	on          bool
	wanted      bool
}

func newProgress(total int, wanted bool, w io.Writer) *progress {
	f, isFile := w.(*os.File)
	return &progress{w: w, total: total, wanted: wanted, on: wanted && isFile && isTerminal(f) && total >= progressThreshold}
}

// step is done for a step that has a line to say: where no bar is drawn
// (a pipe, a log, a short batch) the line is written instead, so a batch
// is followed item by item there too.
func (p *progress) step(line string) {
	p.done()
	if p.wanted && !p.on {
		p.mu.Lock()
		defer p.mu.Unlock()
		fmt.Fprintln(p.w, line)
	}
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
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), p.seen, p.total)
}

func (p *progress) finish() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}

// signalContext is cancelled by SIGINT or SIGTERM, so renders stop at the
// next pipeline step instead of being killed mid-write.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}
