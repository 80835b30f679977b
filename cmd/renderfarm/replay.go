package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/job/runner"
	"github.com/renderfarm/renderfarm/render"
	"github.com/renderfarm/renderfarm/storage"
	"github.com/urfave/cli/v2"
	"golang.org/x/time/rate"
)

func replayCommand() *cli.Command {
	return &cli.Command{
		Name:      "replay",
		Usage:     "run recorded jobs again: by task id or manifest, or all that match, on the workers or here",
		ArgsUsage: "ID|MANIFEST...",
		UsageText: `renderfarm replay 0193a0c2-7f1e-7b3a-9c1d-5f0c2b1e9a77
renderfarm replay --same-id --wait 5f0c2b1e-3d4a-4f6b-8e9c-0a1b2c3d4e5f
renderfarm replay s3://media/_renderfarm/jobs/2026/11/22/5f0c2b1e-....json
renderfarm replay --local ./rerun --diff 0193a0c2-7f1e-7b3a-9c1d-5f0c2b1e9a77
renderfarm replay --since 2h --status failed --error not_found --rate 5/s --yes`,
		Description: `Finds each job in the journal (--journal): by task id, searching the days from
a UUIDv7's send time on, else the --days back from today, as the web tier
does; or by its manifest's location (a local path under a file:// journal).
Its recorded request is enqueued again as a new task (--same-id: under its old
id, so clients polling that id see the new outcome). Output keys are the
request's own, so the replay rewrites the same objects.

--local DIR reruns each job in this process instead, touching no queue: the
same source, the current recipes (--recipes), outputs written under DIR by
their key (s3://bucket/key to DIR/bucket/key, file:///p to DIR/p).

--diff does a local rerun (into DIR, or a temporary directory) and compares
each output with the one stored at its key: width x height, bytes, and two
pixel scores over both images decoded to 8-bit sRGB by libvips: the mean
absolute difference of the samples (0 to 255; 0 is identical pixels, a
re-encode at another quality is about 1-2) and the PSNR in dB (none when the
pixels are identical; above about 40 dB a difference is hard to see).

--since selects every job recorded in that window, narrowed by --status,
--error (a substring of the error's code or message) and --recipe. The count
is shown and confirmed on the terminal (--yes skips the question; with no
terminal on stdin the command refuses without --yes). --rate throttles the
replays. Each item's outcome is reported; the exit code is 3 when nothing was
found, 1 when every item failed, 4 when some did.`,
		Flags: append(append(append(append(storageFlags(), queueFlags()...),
			brokerFlag(),
			queueFlag(),
			logLevelFlag(),
			outputFlag(),
			journalDaysFlag(),
			&cli.BoolFlag{Name: "same-id", EnvVars: []string{"RENDERFARM_SAME_ID"}, Usage: "enqueue under the job's own task id, not a new one"},
			&cli.StringFlag{Name: "local", EnvVars: []string{"RENDERFARM_LOCAL"}, Usage: "rerun in this process, writing the outputs under DIR; no queue"},
			&cli.BoolFlag{Name: "diff", EnvVars: []string{"RENDERFARM_DIFF"}, Usage: "rerun locally and compare each output with the stored one"},
			&cli.DurationFlag{Name: "since", EnvVars: []string{"RENDERFARM_SINCE"}, Usage: "select the jobs recorded in this window, e.g. 2h"},
			&cli.StringFlag{Name: "status", EnvVars: []string{"RENDERFARM_STATUS"}, Usage: "with --since: only jobs in this state: failed, succeeded or retrying"},
			&cli.StringFlag{Name: "error", EnvVars: []string{"RENDERFARM_ERROR"}, Usage: "with --since: only jobs whose error code or message contains this"},
			&cli.StringFlag{Name: "recipe", EnvVars: []string{"RENDERFARM_REPLAY_RECIPE"}, Usage: "with --since: only jobs with this recipe"},
			yesFlag(),
			&cli.StringFlag{Name: "rate", EnvVars: []string{"RENDERFARM_RATE"}, Usage: "at most this many replays, N/s or N/m (default: no limit)"},
		), engineFlags()...), waitFlags()...),
		Action: runReplay,
	}
}

// replayItem is one job named or selected, and what came of it.
type replayItem struct {
	Item    string       `json:"item"`              // the argument, or the task id of a selected job
	TaskID  string       `json:"task_id,omitempty"` // the recorded job's
	Status  job.Status   `json:"recorded_status,omitempty"`
	Outcome string       `json:"outcome"` // enqueued, not_sent, succeeded, failed, unfinished, rendered, not_found
	NewID   string       `json:"new_id,omitempty"`
	Error   string       `json:"error,omitempty"`
	At      time.Time    `json:"at,omitzero"` // when it was acted on
	Outputs []outputDiff `json:"outputs,omitempty"`
	req     *job.Request
	started time.Time // the recorded run's start
}

// outputDiff is one output of a local rerun, and with --diff the stored one
// it was compared with.
type outputDiff struct {
	Key         string   `json:"key"`            // where the job stores it
	Path        string   `json:"path,omitempty"` // where the rerun wrote it; "" for --diff's temporary directory
	Width       int      `json:"width"`
	Height      int      `json:"height"`
	Bytes       int      `json:"bytes"`
	Stored      *stored  `json:"stored,omitempty"`
	MeanAbsDiff *float64 `json:"mean_abs_diff,omitempty"` // nil: not comparable (sizes differ, or nothing stored)
	PSNR        *float64 `json:"psnr_db,omitempty"`       // nil with mean_abs_diff 0: identical pixels
	Error       string   `json:"error,omitempty"`
}

type stored struct {
	Width  int `json:"width"`
	Height int `json:"height"`
	Bytes  int `json:"bytes"`
}

func runReplay(c *cli.Context) error {
	if _, err := outputJSON(c); err != nil {
		return err
	}
	bulk := c.IsSet("since")
	local := c.String("local") != "" || c.Bool("diff")
	switch {
	case bulk && c.Args().Len() > 0:
		return usageError("name jobs or select them with --since, not both")
	case !bulk && c.Args().Len() == 0:
		return usageError("name at least one task id or manifest, or select jobs with --since")
	case !bulk && (c.String("status") != "" || c.String("error") != "" || c.String("recipe") != ""):
		return usageError("--status, --error and --recipe narrow a --since selection")
	case local && (c.Bool("same-id") || c.Bool("wait")):
		return usageError("--local and --diff rerun here: --same-id and --wait are for replays on the workers")
	}
	if !local {
		if err := checkBroker(c); err != nil {
			return err
		}
	}
	limiter, err := parseRate(c.String("rate"))
	if err != nil {
		return err
	}
	dir := c.String("local")
	temporary := c.Bool("diff") && dir == ""
	if temporary {
		if dir, err = os.MkdirTemp("", "renderfarm-diff-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	if dir != "" {
		if dir, err = filepath.Abs(dir); err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err != nil {
			return fmt.Errorf("--local: %w", err)
		}
		// The rerun writes there, so the jobs' store must let it.
		roots := c.String("file-root")
		if roots != "" {
			roots += string(os.PathListSeparator)
		}
		if err := c.Set("file-root", roots+dir); err != nil {
			return err
		}
	}
	ctx, stop := signalContext(c.Context)
	defer stop()
	store, journal, err := openJournal(c, c.Int("days"))
	if err != nil {
		return err
	}

	var items []*replayItem
	if bulk {
		if items, err = selectJobs(ctx, c, journal); err != nil {
			return err
		}
		if len(items) == 0 {
			return cli.Exit("no recorded job matches", exitNotFound)
		}
		what := "Replay them on the workers?"
		if local {
			what = "Rerun them here?"
		}
		count := fmt.Sprintf("%d jobs match.", len(items))
		if len(items) == 1 {
			count = "1 job matches."
		}
		if err := confirm(c, count+" "+what); err != nil {
			return err
		}
	} else {
		for _, arg := range c.Args().Slice() {
			items = append(items, findJob(ctx, journal, arg))
		}
	}

	act := func(context.Context, *replayItem) {}
	if local {
		rerun, err := newLocalRerun(c, store, journal, dir)
		if err != nil {
			return err
		}
		act = rerun.run
	} else if hasFound(items) {
		p, err := dialPublisher(c, "renderfarm replay")
		if err != nil {
			return err
		}
		defer p.Close()
		act = func(ctx context.Context, it *replayItem) {
			id := ""
			if c.Bool("same-id") {
				id = it.TaskID
			}
			newID, err := p.enqueue(ctx, id, it.req)
			if err != nil {
				it.Outcome, it.Error = "not_sent", err.Error()
				return
			}
			it.NewID, it.Outcome = newID, "enqueued"
		}
	}
	for _, it := range items {
		if it.req == nil {
			continue
		}
		if err := limiter.Wait(ctx); err != nil {
			// Interrupted: what was not reached is reported as not done.
			it.Outcome, it.Error = "not_sent", err.Error()
			continue
		}
		it.At = time.Now().UTC()
		act(ctx, it)
	}
	if temporary {
		// The rerun's files go with the temporary directory.
		for _, it := range items {
			for i := range it.Outputs {
				it.Outputs[i].Path = ""
			}
		}
	}
	if c.Bool("wait") {
		if err := waitReplays(ctx, c, journal, items); err != nil {
			return err
		}
	}
	return reportReplays(c, items)
}

// findJob reads the manifest an argument names: a location or path in
// the journal, or a task id looked up there.
func findJob(ctx context.Context, journal *job.Journal, arg string) *replayItem {
	it := &replayItem{Item: arg}
	var m *job.Manifest
	var err error
	if strings.Contains(arg, "/") || strings.HasSuffix(arg, ".json") {
		m, err = journal.Read(ctx, asLocation(arg))
	} else {
		m, err = journal.Find(ctx, arg)
	}
	switch {
	case errors.Is(err, job.ErrNoManifest) || errors.Is(err, storage.ErrNotFound):
		it.Outcome, it.Error = "not_found", "no manifest in the journal"
	case err != nil:
		it.Outcome, it.Error = "failed", err.Error()
	case m.Request == nil:
		it.Outcome, it.Error = "failed", "the manifest records no request"
	default:
		it.TaskID, it.Status, it.req, it.started = m.TaskID, m.Status, m.Request, m.Started
	}
	return it
}

// selectJobs is the --since selection, narrowed by the other filters.
func selectJobs(ctx context.Context, c *cli.Context, journal *job.Journal) ([]*replayItem, error) {
	var status job.Status
	if s := c.String("status"); s != "" {
		var err error
		if status, err = job.ParseStatus(s); err != nil {
			return nil, usageError("--status: %v", err)
		}
	}
	substr := strings.ToLower(c.String("error"))
	recipe := c.String("recipe")
	keep := func(m *job.Manifest) bool {
		switch {
		case m.Request == nil:
			return false
		case status != "" && m.Status != status:
			return false
		case recipe != "" && m.Request.Recipe != recipe:
			return false
		case substr != "":
			return m.Error != nil && strings.Contains(strings.ToLower(manifestError(m)), substr)
		}
		return true
	}
	ms, err := journal.Select(ctx, time.Now().Add(-c.Duration("since")), storage.DefaultListLimit, keep)
	if err != nil {
		return nil, fmt.Errorf("selecting jobs: %w", err)
	}
	items := make([]*replayItem, len(ms))
	for i, m := range ms {
		items[i] = &replayItem{Item: m.TaskID, TaskID: m.TaskID, Status: m.Status, req: m.Request, started: m.Started}
	}
	return items, nil
}

func hasFound(items []*replayItem) bool {
	for _, it := range items {
		if it.req != nil {
			return true
		}
	}
	return false
}

// waitReplays follows the enqueued replays to their end.
func waitReplays(ctx context.Context, c *cli.Context, journal *job.Journal, items []*replayItem) error {
	byID := map[string]*replayItem{}
	past := map[string]time.Time{}
	var ids []string
	for _, it := range items {
		if it.Outcome == "enqueued" {
			byID[it.NewID] = it
			ids = append(ids, it.NewID)
			if it.NewID == it.TaskID {
				past[it.NewID] = it.started
			}
		}
	}
	_, err := waitResults(ctx, journal, ids, past, c.Duration("wait-timeout"), func(m *job.Manifest) {
		it := byID[m.TaskID]
		it.Outcome = "succeeded"
		if m.Status != job.StatusSuccess {
			it.Outcome = "failed"
			it.Error = manifestError(m)
		}
	})
	for _, it := range byID {
		if it.Outcome == "enqueued" {
			it.Outcome, it.Error = "unfinished", fmt.Sprintf("no final manifest within %v", c.Duration("wait-timeout"))
		}
	}
	return err
}

func reportReplays(c *cli.Context, items []*replayItem) error {
	failed, notFound := 0, 0
	for _, it := range items {
		switch it.Outcome {
		case "not_found":
			notFound++
		case "enqueued", "succeeded", "rendered":
		default:
			failed++
		}
	}
	err := printOutput(c, map[string]any{"items": items}, func(w io.Writer) {
		fmt.Fprintln(w, "ITEM\tTASK\tRECORDED\tOUTCOME\tNEW ID\tERROR")
		for _, it := range items {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", it.Item, it.TaskID, it.Status, it.Outcome, it.NewID, it.Error)
		}
		first := true
		for _, it := range items {
			for _, o := range it.Outputs {
				if first {
					fmt.Fprintln(w, "\nTASK\tKEY\tPATH\tSIZE\tBYTES\tSTORED SIZE\tSTORED BYTES\tMEAN ABS DIFF\tPSNR\tERROR")
					first = false
				}
				size, bytes, meanAbs, psnr := "-", "-", "-", "-"
				if o.Stored != nil {
					size, bytes = fmt.Sprintf("%dx%d", o.Stored.Width, o.Stored.Height), strconv.Itoa(o.Stored.Bytes)
				}
				if o.MeanAbsDiff != nil {
					meanAbs, psnr = strconv.FormatFloat(*o.MeanAbsDiff, 'f', 3, 64), "identical"
					if o.PSNR != nil {
						psnr = fmt.Sprintf("%.1f dB", *o.PSNR)
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%dx%d\t%d\t%s\t%s\t%s\t%s\t%s\n", it.TaskID, o.Key, o.Path, o.Width, o.Height, o.Bytes,
					size, bytes, meanAbs, psnr, o.Error)
			}
		}
	})
	if err != nil {
		return err
	}
	return itemsExit(len(items), failed, notFound)
}

// parseRate reads --rate: N/s, N/m or a bare N per second.
func parseRate(s string) (*rate.Limiter, error) {
	if s == "" {
		return rate.NewLimiter(rate.Inf, 1), nil
	}
	num, unit, _ := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(num, 64)
	per := map[string]float64{"": 1, "s": 1, "m": 60, "min": 60}[unit]
	if err != nil || n <= 0 || math.IsInf(n, 0) || per == 0 {
		return nil, usageError("--rate: want N/s or N/m with N > 0, not %q", s)
	}
	// A burst of one spaces the replays evenly instead of letting the
	// first second's worth go at once.
	return rate.NewLimiter(rate.Limit(n/per), 1), nil
}

// localRerun reruns recorded jobs in this process, outputs under dir.
type localRerun struct {
	runner  *runner.Runner
	engine  *render.Engine
	store   *storage.Store
	recipes render.Recipes
	dir     string
	diff    bool
}

func newLocalRerun(c *cli.Context, store *storage.Store, journal *job.Journal, dir string) (*localRerun, error) {
	t, err := tuning(c)
	if err != nil {
		return nil, usageError("%v", err)
	}
	recipes, err := render.LoadRecipes(c.String("recipes"))
	if err != nil {
		return nil, usageError("--recipes: %v", err)
	}
	engine, err := render.New(t.Config)
	if err != nil {
		return nil, err
	}
	log, err := commandLogger(c)
	if err != nil {
		return nil, err
	}
	// The runner writes no manifest for Execute; it wants the journal only
	// to make sure the jobs' store cannot reach it.
	r, err := runner.New(runner.Config{Engine: engine, Store: store, Recipes: recipes, Journal: journal.Prefix, JournalStore: journal.Store,
		Hostname: "renderfarm replay --local", MaxAttempts: 1, Logger: log})
	if err != nil {
		return nil, err
	}
	return &localRerun{runner: r, engine: engine, store: store, recipes: recipes, dir: dir, diff: c.Bool("diff")}, nil
}

// run renders it.req with every output key moved under the directory.
func (l *localRerun) run(ctx context.Context, it *replayItem) {
	fail := func(err error) { it.Outcome, it.Error = "failed", err.Error() }
	variants, err := l.recipes.Variants(&it.req.Request)
	if err != nil {
		fail(err)
		return
	}
	req := *it.req
	req.Recipe, req.Dest, req.Outputs = "", "", make([]render.Variant, len(variants))
	paths := make([]string, len(variants))
	for i, v := range variants {
		if paths[i], err = l.localPath(v.Key); err != nil {
			fail(err)
			return
		}
		v.Key = asLocation(paths[i])
		req.Outputs[i] = v
	}
	res, err := l.runner.Execute(ctx, &req)
	if err != nil {
		fail(err)
		return
	}
	it.Outcome = "rendered"
	for i, o := range res.Outputs {
		d := outputDiff{Key: variants[i].Key, Path: paths[i], Width: o.Width, Height: o.Height, Bytes: o.Bytes}
		if l.diff {
			l.compare(ctx, &d)
		}
		it.Outputs = append(it.Outputs, d)
	}
}

// localPath is where an output key goes under the directory: by bucket
// and key, or by path, so no two keys of a job share a file.
func (l *localRerun) localPath(key string) (string, error) {
	loc, err := storage.ParseLocation(key)
	if err != nil {
		return "", err
	}
	if loc.Scheme == storage.SchemeS3 {
		return filepath.Join(l.dir, loc.Bucket, filepath.FromSlash(loc.Key)), nil
	}
	return filepath.Join(l.dir, loc.Path), nil
}

// compare reads the stored output and the rerun's and scores them.
func (l *localRerun) compare(ctx context.Context, d *outputDiff) {
	loc, err := storage.ParseLocation(d.Key)
	var old, now []byte
	if err == nil {
		old, err = l.store.Get(ctx, loc, l.engine.Config().MaxBytes)
	}
	if err != nil {
		d.Error = fmt.Sprintf("the stored output: %v", err)
		return
	}
	if now, err = os.ReadFile(d.Path); err != nil {
		d.Error = err.Error()
		return
	}
	diff, err := l.engine.Compare(now, old)
	if err != nil {
		d.Error = err.Error()
		return
	}
	d.Stored = &stored{Width: diff.OtherWidth, Height: diff.OtherHeight, Bytes: len(old)}
	if !diff.Comparable {
		d.Error = "sizes differ: no pixel score"
		return
	}
	d.MeanAbsDiff = &diff.MeanAbs
	if !math.IsInf(diff.PSNR, 1) {
		d.PSNR = &diff.PSNR
	}
}
