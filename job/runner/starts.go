package runner

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/storage"
	"github.com/renderfarm/renderfarm/worker"
)

// Starts is the worker's start ledger (worker.StartLedger) in the job
// journal, which every worker of a farm reaches: one small object per task
// while it runs, under the journal's starts/ folder, removed when the task
// ends. A task costs one write before its handler starts and one delete
// after it is acked; only a redelivered task is read.
func (r *Runner) Starts() worker.StartLedger {
	return &journalStarts{store: r.cfg.JournalStore, journal: r.cfg.Journal, host: r.cfg.Hostname}
}

type journalStarts struct {
	store   *storage.Store
	journal string
	host    string
}

// startRecord is what a ledger object holds; worker and time are for a
// person looking at a task that keeps killing workers.
type startRecord struct {
	Starts int       `json:"starts"`
	Worker string    `json:"worker"`
	At     time.Time `json:"at"`
}

// maxStartRecord bounds a read: records are a few dozen bytes.
const maxStartRecord = 4 << 10

func (s *journalStarts) loc(key string) (storage.Location, error) {
	return storage.ParseLocation(job.StartLocation(s.journal, key))
}

func (s *journalStarts) Starts(ctx context.Context, key string) (int, error) {
	loc, err := s.loc(key)
	if err != nil {
		return 0, err
	}
	data, err := s.store.Get(ctx, loc, maxStartRecord)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var rec startRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		// A damaged record: the task did start before, at least once.
		return 1, nil
	}
	return rec.Starts, nil
}

func (s *journalStarts) Record(ctx context.Context, key string, n int) error {
	loc, err := s.loc(key)
	if err != nil {
		return err
	}
	data, err := json.Marshal(startRecord{Starts: n, Worker: s.host, At: time.Now().UTC()})
	if err != nil {
		return err
	}
	_, err = s.store.Put(ctx, loc, data, storage.PutOptions{ContentType: "application/json"})
	return err
}

func (s *journalStarts) Clear(ctx context.Context, key string) error {
	loc, err := s.loc(key)
	if err != nil {
		return err
	}
	return s.store.Delete(ctx, loc)
}

// codeWorkerLost is the manifest error code of a render dead-lettered
// because its handler kept killing the worker that ran it.
const codeWorkerLost = "worker_lost"

// DeadLettered writes the FAILURE manifest of a render the worker
// dead-letters instead of running (worker.TaskOptions.DeadLettered): no
// run writes one now, and without it the web tier would report the task
// pending forever.
func (r *Runner) DeadLettered(ctx context.Context, t *worker.Task, reason string) error {
	now := time.Now().UTC()
	m := &job.Manifest{TaskID: t.ID, Status: job.StatusFailure, Attempts: t.Retries + 1, Worker: r.cfg.Hostname,
		Started: now, Finished: now, Error: &job.ManifestError{Code: codeWorkerLost, Message: reason, Permanent: true}}
	if req, err := job.RequestFromTask(t.Args, t.Kwargs); err == nil {
		m.Request = req
	}
	return r.writeManifest(ctx, m)
}
