package runner

import (
	"context"
	"errors"
	"fmt"
	"github.com/renderfarm/renderfarm/job"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/renderfarm/renderfarm/render"
	"github.com/renderfarm/renderfarm/storage"
	"github.com/renderfarm/renderfarm/worker"
)

// Config is what a render job needs from the process.
type Config struct {
	Engine  *render.Engine
	Store   *storage.Store
	Recipes render.Recipes
	// Journal is the location prefix manifests are written under, e.g.
	// s3://bucket/_renderfarm/jobs/ or file:///var/lib/renderfarm/jobs/,
	// through JournalStore, a store of its own. Store must not reach the
	// journal (storage.Config.Reserved carves it out of roots and
	// buckets): New refuses a Store through which a request could read or
	// overwrite manifests.
	Journal      string
	JournalStore *storage.Store
	Hostname     string
	// MaxAttempts bounds transient failures (storage, network) before the
	// job fails for good; RetryBase is the first backoff, doubled each time,
	// with jitter.
	MaxAttempts int
	RetryBase   time.Duration
	Logger      *slog.Logger
	Metrics     *Metrics // nil: not counted
}

// Runner runs renderfarm.render tasks.
type Runner struct{ cfg Config }

func New(cfg Config) (*Runner, error) {
	if cfg.Engine == nil || cfg.Store == nil {
		return nil, errors.New("job: an engine and a store are required")
	}
	if cfg.Journal == "" {
		return nil, errors.New("job: a journal location is required")
	}
	journal, err := storage.ParsePrefix(cfg.Journal)
	if err != nil {
		return nil, fmt.Errorf("job: journal: %w", err)
	}
	if cfg.JournalStore == nil {
		return nil, errors.New("job: the journal needs a store of its own")
	}
	if cfg.Store.Reaches(journal) {
		return nil, fmt.Errorf("job: requests could write into the journal %s: reserve it in the jobs' store", journal)
	}
	if cfg.Recipes == nil {
		cfg.Recipes = render.BuiltinRecipes()
	}
	if cfg.MaxAttempts < 1 {
		cfg.MaxAttempts = 5
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Runner{cfg: cfg}, nil
}

// Register adds renderfarm.render to a worker's registry.
func (r *Runner) Register(reg *worker.Registry) {
	maxRetries := r.cfg.MaxAttempts - 1
	reg.Register(job.TaskName, r.Handle, worker.TaskOptions{MaxRetries: maxRetries, DeadLettered: r.DeadLettered})
}

// Handle runs one job. Bad input fails at once and is dead-lettered;
// storage and network trouble is retried with backoff, then dead-lettered.
// The manifest is written before Handle returns, so the worker acks only a
// job whose outputs and record are stored.
func (r *Runner) Handle(ctx context.Context, t *worker.Task) (any, error) {
	start := time.Now()
	m := &job.Manifest{TaskID: t.ID, Worker: r.cfg.Hostname, Attempts: t.Retries + 1, Started: start.UTC()}
	res, err := r.run(ctx, t, m)
	m.Finished = time.Now().UTC()
	if res != nil {
		res.Attempts = m.Attempts
		res.Timings.Total = ms(time.Since(start))
	}
	m.Result = res
	final := err == nil || isPermanent(err) || t.Retries+1 >= r.cfg.MaxAttempts
	if err != nil {
		m.Error = &job.ManifestError{Message: err.Error(), Permanent: isPermanent(err), Code: errorCode(err)}
		m.Status = job.StatusRetry
		if final {
			m.Status = job.StatusFailure
		}
	} else {
		m.Status = job.StatusSuccess
	}
	tm := time.Now()
	merr := r.writeManifest(ctx, m)
	r.cfg.Metrics.stage(StageManifest, time.Since(tm))
	if merr != nil {
		// Without its record the job is not done: try again later.
		r.storageFailed(ctx, m, "manifest", job.ManifestLocation(r.cfg.Journal, m.TaskID, m.Started), merr)
		if err == nil || !final {
			return nil, r.retry(t, fmt.Errorf("writing the manifest: %w", merr))
		}
	}
	switch {
	case err == nil:
		return res, nil
	case final:
		return nil, failure(err)
	default:
		return nil, r.retry(t, err)
	}
}

func (r *Runner) run(ctx context.Context, t *worker.Task, m *job.Manifest) (*job.Result, error) {
	req, err := job.RequestFromTask(t.Args, t.Kwargs)
	if err != nil {
		return nil, err
	}
	m.Request = req
	return r.execute(ctx, req, m)
}

// Execute runs one request in this process, as a task's single attempt
// would, and writes no manifest: for an engineer's rerun of a recorded job
// on their own machine (renderfarm replay --local), with outputs wherever
// the request's keys point.
func (r *Runner) Execute(ctx context.Context, req *job.Request) (*job.Result, error) {
	return r.execute(ctx, req, &job.Manifest{Attempts: 1})
}

func (r *Runner) execute(ctx context.Context, req *job.Request, m *job.Manifest) (*job.Result, error) {
	variants, err := r.cfg.Recipes.Variants(&req.Request)
	if err != nil {
		return nil, err
	}
	src, outs, marks, err := job.Locations(r.cfg.Store, req, variants)
	if err != nil {
		return nil, err
	}
	res := &job.Result{}

	// I/O runs outside the engine's admission: a slow store never holds a
	// render slot.
	t0 := time.Now()
	data, err := r.cfg.Store.Get(ctx, src, r.cfg.Engine.Config().MaxBytes)
	if err != nil {
		return nil, r.storageFailed(ctx, m, "get", src.String(), err)
	}
	r.cfg.Metrics.readBytes(src, len(data))
	wm := map[string][]byte{}
	for name, loc := range marks {
		if wm[name], err = r.cfg.Store.Get(ctx, loc, r.cfg.Engine.Config().MaxBytes); err != nil {
			return nil, r.storageFailed(ctx, m, "get", loc.String(), err)
		}
		r.cfg.Metrics.readBytes(loc, len(wm[name]))
	}
	res.Timings.Fetch = ms(time.Since(t0))
	r.cfg.Metrics.stage(StageFetch, time.Since(t0))

	t1 := time.Now()
	rendered, err := r.cfg.Engine.Render(ctx, render.Job{Source: data, Variants: variants, Watermarks: wm})
	if err != nil {
		return nil, err
	}
	res.Timings.Render = ms(time.Since(t1))
	queued := time.Duration(rendered.Timings.Queue * float64(time.Millisecond))
	r.cfg.Metrics.stage(StageQueue, queued)
	r.cfg.Metrics.stage(StageRender, time.Since(t1)-queued)
	w, h := rendered.Source.DisplaySize()
	res.Source = job.SourceInfo{Width: w, Height: h, Format: string(rendered.Source.Format), Bytes: rendered.Source.Bytes}

	// Keys are the request's own, so a retry after a partial upload
	// rewrites the same objects.
	t2 := time.Now()
	for i, o := range rendered.Outputs {
		put, err := r.cfg.Store.Put(ctx, outs[i], o.Data, storage.PutOptions{
			ContentType: o.ContentType, CacheControl: req.CacheControl,
			ContentDisposition: req.ContentDisposition, Metadata: req.Metadata,
		})
		if err != nil {
			return nil, r.storageFailed(ctx, m, "put", outs[i].String(), err)
		}
		r.cfg.Metrics.wroteBytes(outs[i], len(o.Data))
		res.Outputs = append(res.Outputs, job.OutputInfo{Key: o.Key, Width: o.Width, Height: o.Height, Format: string(o.Format),
			Bytes: len(o.Data), SHA256: put.SHA256, ETag: put.ETag})
	}
	res.Timings.Upload = ms(time.Since(t2))
	r.cfg.Metrics.stage(StageUpload, time.Since(t2))
	return res, nil
}

// storageFailed logs a failed storage operation of this attempt, once, at
// WARN: the retry that usually follows is otherwise silent, and the
// manifest recording the error is overwritten by the next attempt's. The
// code is the storage error class (unavailable, not_found, forbidden...);
// Store counts the same failure in renderfarm_storage_errors_total.
func (r *Runner) storageFailed(ctx context.Context, m *job.Manifest, op, location string, err error) error {
	code := "other"
	var se *storage.Error
	if errors.As(err, &se) {
		code = se.Code
	}
	r.cfg.Logger.WarnContext(ctx, "storage operation failed", "task", m.TaskID, "op", op, "location", location,
		"code", code, "permanent", isPermanent(err), "attempt", m.Attempts, "max_attempts", r.cfg.MaxAttempts, "err", err)
	return err
}

// retry asks the worker to run the job again after an exponential backoff
// with full jitter.
func (r *Runner) retry(t *worker.Task, err error) error {
	backoff := r.cfg.RetryBase << min(t.Retries, 10)
	delay := time.Duration(rand.Int64N(int64(backoff)) + int64(backoff)/2)
	maxRetries := r.cfg.MaxAttempts - 1
	return &worker.Retry{Err: failure(err), Countdown: delay, MaxRetries: &maxRetries}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
