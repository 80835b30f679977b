package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/renderfarm/renderfarm/storage"
)

// Manifest is the record of one task: what was asked, what came of it,
// where and when. The web tier reads job status from it, and the CLI
// replays jobs from it.
type Manifest struct {
	TaskID   string         `json:"task_id"`
	Status   string         `json:"status"`
	Request  *Request       `json:"request,omitempty"`
	Result   *Result        `json:"result,omitempty"`
	Error    *ManifestError `json:"error,omitempty"`
	Attempts int            `json:"attempts"`
	Worker   string         `json:"worker"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
}

type ManifestError struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Permanent bool   `json:"permanent"`
}

// ManifestLocation is where a task's manifest lives: the journal prefix,
// the day the task started, and its id.
func ManifestLocation(journal, taskID string, day time.Time) string {
	return fmt.Sprintf("%s%s/%s.json", journal, day.UTC().Format("2006/01/02"), safeID(taskID))
}

// safeID keeps a task id usable as a key: Celery ids are UUIDs, but the id
// comes from the message, and a hostile one must not pick the path.
func safeID(id string) string {
	b := []byte(id)
	if len(b) == 0 || len(b) > 128 {
		return fmt.Sprintf("invalid-id-%x", len(b))
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// writeManifest records m unless a newer attempt of the task already did.
// A render still running when its broker connection died may finish after
// the broker redelivered the task and the new attempt wrote its manifest;
// that late record must not replace the newer one. So the write is a
// compare-and-swap (storage.PutIfVersion: If-Match/If-None-Match on S3, a
// directory flock on file://): read the current manifest, leave it if it
// is newer (supersedes), else write on condition that it has not changed
// meanwhile; when it has, another attempt wrote in between, so decide again.
func (r *Runner) writeManifest(ctx context.Context, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	loc, err := storage.ParseLocation(ManifestLocation(r.cfg.Journal, m.TaskID, m.Started))
	if err != nil {
		return err
	}
	const tries = 8 // each conflict is another attempt's write; there are a few at most
	for range tries {
		old, version, err := r.cfg.JournalStore.GetVersioned(ctx, loc, maxManifestBytes)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			version = ""
		case err != nil:
			return fmt.Errorf("reading the current manifest: %w", err)
		default:
			var cur Manifest
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
// later start is the later attempt.
func supersedes(cur, m *Manifest) bool {
	if cur.Attempts != m.Attempts {
		return cur.Attempts > m.Attempts
	}
	return cur.Started.After(m.Started)
}
