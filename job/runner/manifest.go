package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/storage"
)

// writeManifest records m unless a newer attempt of the task already did.
// A render still running when its broker connection died may finish after
// the broker redelivered the task and the new attempt wrote its manifest;
// that late record must not replace the newer one. So the write is a
// compare-and-swap (storage.PutIfVersion: If-Match/If-None-Match on S3, a
// directory flock on file://): read the current manifest, leave it if it
// is newer (supersedes), else write on condition that it has not changed
// meanwhile; when it has, another attempt wrote in between, so decide again.
func (r *Runner) writeManifest(ctx context.Context, m *job.Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	loc, err := storage.ParseLocation(job.ManifestLocation(r.cfg.Journal, m.TaskID, m.Started))
	if err != nil {
		return err
	}
	const tries = 8 // each conflict is another attempt's write; there are a few at most
	for range tries {
		old, version, err := r.cfg.JournalStore.GetVersioned(ctx, loc, job.MaxManifestBytes)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			version = ""
		case err != nil:
			return fmt.Errorf("reading the current manifest: %w", err)
		default:
			var cur job.Manifest
			if json.Unmarshal(old, &cur) == nil && supersedes(&cur, m) {
				r.cfg.Logger.Warn("a newer attempt already wrote this task's manifest; keeping it",
					"task", m.TaskID, "attempt_started", m.Started, "newer_started", cur.Started, "newer_worker", cur.Worker)
				return nil
			}
		}
		_, err = r.cfg.JournalStore.PutIfVersion(ctx, loc, data, storage.PutOptions{ContentType: "application/json"}, version)
		if !errors.Is(err, storage.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("manifest of %s changed under each of %d writes", m.TaskID, tries)
}

// supersedes reports whether cur, the stored manifest, belongs to a later
// attempt than m: a retry (more attempts) or, for the same retry count, a
// redelivery started later. Redeliveries of one message go to workers that
// start it after the broker took it back, so on hosts with sane clocks the
// later start is the later attempt. An attempt that started after cur
// finished is a new run of the same task id (replay --same-id), counting
// its attempts from one again, and is never a stale one: a stale attempt
// started before the newer one, so before it finished.
func supersedes(cur, m *job.Manifest) bool {
	if !cur.Finished.IsZero() && m.Started.After(cur.Finished) {
		return false
	}
	if cur.Attempts != m.Attempts {
		return cur.Attempts > m.Attempts
	}
	return cur.Started.After(m.Started)
}
