package render

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// Engine renders jobs within the host's budget. It is safe for concurrent
// use: each Render takes a slot and its memory estimate from the budget,
// waiting for room rather than overcommitting the host.
type Engine struct {
	cfg    Config
	slots  *semaphore.Weighted
	memory *semaphore.Weighted

	mu        sync.Mutex
	running   int
	reserved  int64       // memory admitted renders hold against the budget
	trimTimer *time.Timer // pending trimWhenIdle, from the last moment running fell to 0
}

// idleTrimDelay is how long the engine stays idle before it hands freed
// heap back to the kernel. Trimming at every idle moment, between two
// renders of a busy worker, made the next render fault every buffer back in
// zeroed: profiled on four JPEG variants, page faults under memset were a
// tenth of all CPU.
const idleTrimDelay = 2 * time.Second

// Usage is what the engine's admission holds right now, for metrics.
type Usage struct {
	Slots, Running   int
	Budget, Reserved int64
}

// Usage reports the slots and memory renders hold now.
func (e *Engine) Usage() Usage {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Usage{Slots: e.cfg.Slots, Running: e.running, Budget: e.cfg.MemoryBudget, Reserved: e.reserved}
}

// New starts libvips (once per process) and returns an engine for cfg.
func New(cfg Config) (*Engine, error) {
	if cfg.Slots < 1 {
		return nil, fmt.Errorf("render: slots must be at least 1, got %d", cfg.Slots)
	}
	if cfg.MemoryBudget < 1 {
		return nil, fmt.Errorf("render: memory budget must be positive, got %d", cfg.MemoryBudget)
	}
	mode, err := ParseShrinkMode(string(cfg.ShrinkOnLoad))
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	cfg.ShrinkOnLoad = mode
	start(cfg.VipsThreads)
	return &Engine{
		cfg:    cfg,
		slots:  semaphore.NewWeighted(int64(cfg.Slots)),
		memory: semaphore.NewWeighted(cfg.MemoryBudget),
	}, nil
}

// Config returns the engine's settings.
func (e *Engine) Config() Config { return e.cfg }

// Job is one source and the variants to cut from it. Watermarks maps each
// watermark image location named by a variant to its bytes; the caller
// fetches them, the engine never does I/O.
type Job struct {
	Source     []byte
	Variants   []Variant
	Watermarks map[string][]byte
}

// Output is one rendered variant.
type Output struct {
	Key         string  `json:"key"`
	Format      Format  `json:"format"`
	ContentType string  `json:"content_type"`
	Width       int     `json:"width"`
	Height      int     `json:"height"`
	Data        []byte  `json:"-"`
	Millis      float64 `json:"ms"`
}

// Result describes a finished render.
type Result struct {
	Source Header `json:"source"`
	// Scale is the JPEG DCT scale the source was decoded at, "M/8" ("8/8"
	// for every other format); Decoded is the size that was actually
	// decoded, once, for all variants.
	Scale          string   `json:"scale"`
	DecodedWidth   int      `json:"decoded_width"`
	DecodedHeight  int      `json:"decoded_height"`
	MemoryEstimate int64    `json:"memory_estimate"`
	Outputs        []Output `json:"outputs"`
	Timings        Timings  `json:"timings_ms"`
}

// Timings in milliseconds. Queue is time spent waiting for a slot and
// memory; Total includes it.
type Timings struct {
	Probe  float64 `json:"probe"`
	Queue  float64 `json:"queue"`
	Decode float64 `json:"decode"`
	Render float64 `json:"render"`
	Total  float64 `json:"total"`
}

// Render decodes the source once and renders every variant from it.
// Failures are *Error; see Code for which are permanent.
func (e *Engine) Render(ctx context.Context, job Job) (res *Result, err error) {
	t0 := time.Now()
	res = &Result{}
	if len(job.Variants) == 0 {
		return nil, fieldError("outputs", "no variants to render")
	}
	for i := range job.Variants {
		if err := job.Variants[i].Validate(fmt.Sprintf("outputs[%d]", i)); err != nil {
			return nil, err
		}
		if wm := job.Variants[i].Watermark; wm != nil && job.Watermarks[wm.Image] == nil {
			return nil, fieldError(fmt.Sprintf("outputs[%d].watermark.image", i), "no image data for %q", wm.Image)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, canceled("probe", err)
	}

	h, img, err := probe(job.Source, e.cfg.Limits)
	res.Source = h
	if err != nil {
		return res, err
	}
	defer func() {
		if img != nil {
			img.Close()
		}
	}()
	dw, dh := h.DisplaySize()
	plans := make([]plan, len(job.Variants))
	for i := range job.Variants {
		plans[i] = planVariant(&job.Variants[i], dw, dh)
	}
	scale := chooseScale(h, plans, e.cfg.ShrinkOnLoad)
	res.Scale = fmt.Sprintf("%d/8", scale)
	res.MemoryEstimate = estimateMemory(h, scale, plans, e.cfg.VipsThreads)
	res.Timings.Probe = since(t0)

	release, err := e.admit(ctx, res.MemoryEstimate)
	if err != nil {
		return res, err
	}
	defer release()
	res.Timings.Queue = since(t0) - res.Timings.Probe

	t1 := time.Now()
	if img, scale, err = decode(job.Source, img, h, scale); err != nil {
		return res, err
	}
	res.Scale = fmt.Sprintf("%d/8", scale)
	res.DecodedWidth, res.DecodedHeight = img.Width(), img.Height()
	res.Timings.Decode = since(t1)

	t2 := time.Now()
	c := &cascade{base: img}
	defer c.close()
	order, keep := renderOrder(plans, job.Variants)
	res.Outputs = make([]Output, len(job.Variants))
	for _, i := range order {
		out, err := e.renderVariant(ctx, c, h, &job.Variants[i], plans[i], keep[i], job.Watermarks)
		if err != nil {
			if re, ok := err.(*Error); ok && re.Field == "" {
				re.Field = fmt.Sprintf("outputs[%d]", i)
			} else if ok {
				re.Field = fmt.Sprintf("outputs[%d].%s", i, re.Field)
			}
			res.Outputs = nil
			return res, err
		}
		res.Outputs[i] = out
	}
	res.Timings.Render = since(t2)
	res.Timings.Total = since(t0)
	return res, nil
}

func (e *Engine) renderVariant(ctx context.Context, c *cascade, h Header, v *Variant, p plan, keep bool, marks map[string][]byte) (Output, error) {
	t := time.Now()
	img, err := c.source(p.storedSize(h)).Copy()
	if err != nil {
		return Output{}, &Error{Code: ErrInternal, Msg: "cannot copy the decoded image", Err: vipsError(err)}
	}
	bg, _ := parseColour(defaultBackground)
	if v.Background != "" {
		bg, _ = parseColour(v.Background) // validated already
	}
	st := &variantState{v: v, plan: p, header: h, img: img, background: bg, limits: e.cfg.Limits, threads: e.cfg.VipsThreads}
	if keep {
		st.cascade = c
	}
	defer func() { st.img.Close() }()
	if v.Watermark != nil {
		st.watermark = marks[v.Watermark.Image]
	}
	st.format = v.format()
	if st.format == FormatAuto {
		st.format = FormatJPEG
		if img.HasAlpha() || (v.fit() == FitContain && bg.A < 255) {
			st.format = FormatPNG
		}
	}
	if err := runSteps(ctx, variantSteps, st); err != nil {
		return Output{}, err
	}
	st.out.Key = v.Key
	st.out.Format = st.format
	st.out.ContentType = st.format.ContentType()
	st.out.Millis = since(t)
	return st.out, nil
}

// admit takes a slot and the job's memory from the budget, waiting for
// both. A job bigger than the whole budget could never run and is refused.
func (e *Engine) admit(ctx context.Context, bytes int64) (func(), error) {
	if bytes > e.cfg.MemoryBudget {
		return nil, newError(ErrOverBudget, "", "this image needs about %d MiB to render, more than the worker's whole memory budget of %d MiB",
			bytes>>20, e.cfg.MemoryBudget>>20)
	}
	if err := e.memory.Acquire(ctx, bytes); err != nil {
		return nil, canceled("decode (waiting for memory)", err)
	}
	if err := e.slots.Acquire(ctx, 1); err != nil {
		e.memory.Release(bytes)
		return nil, canceled("decode (waiting for a render slot)", err)
	}
	e.mu.Lock()
	e.running++
	e.reserved += bytes
	e.mu.Unlock()
	return func() {
		e.slots.Release(1)
		e.memory.Release(bytes)
		e.mu.Lock()
		e.running--
		e.reserved -= bytes
		if e.running == 0 {
			if e.trimTimer == nil {
				e.trimTimer = time.AfterFunc(idleTrimDelay, e.trimWhenIdle)
			} else {
				e.trimTimer.Reset(idleTrimDelay)
			}
		}
		e.mu.Unlock()
	}, nil
}

// trimWhenIdle returns freed memory to the kernel if no render has started
// since the engine went idle, so a worker's RSS falls back after a large
// image once the queue is quiet.
func (e *Engine) trimWhenIdle() {
	e.mu.Lock()
	idle := e.running == 0
	e.mu.Unlock()
	if idle {
		trimMemory()
	}
}
