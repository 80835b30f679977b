package job

import (
	"fmt"
	"strings"
	"time"
)

// Manifest is the record of one task: what was asked, what came of it,
// where and when. The web tier reads job status from it, and the CLI
// replays jobs from it.
type Manifest struct {
	TaskID   string         `json:"task_id"`
	Status   Status         `json:"status"`
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

// Status is a manifest's state, in Celery's words for the same states.
type Status string

const (
	StatusSuccess Status = "SUCCESS" // the outputs are stored; the result is in the manifest
	StatusFailure Status = "FAILURE" // failed for good: a permanent error, or out of attempts
	StatusRetry   Status = "RETRY"   // the attempt failed and another is due
)

// ParseStatus reads a status as people write it: Celery's word in any
// case, or "failed", "succeeded", "retrying".
func ParseStatus(s string) (Status, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "failure", "failed":
		return StatusFailure, nil
	case "success", "succeeded":
		return StatusSuccess, nil
	case "retry", "retrying":
		return StatusRetry, nil
	}
	return "", fmt.Errorf("unknown status %q: want failed, succeeded or retrying", s)
}

// ManifestLocation is where a task's manifest lives: the journal prefix,
// the day the task started, and its id.
func ManifestLocation(journal, taskID string, day time.Time) string {
	return fmt.Sprintf("%s%s/%s.json", journal, day.UTC().Format("2006/01/02"), safeID(taskID))
}

// StartLocation is where the worker's start ledger keeps the record of a
// running task (key: task id and retry number), in the journal's starts/
// folder, beside the day folders and out of the way of manifest listings.
func StartLocation(journal, key string) string {
	return fmt.Sprintf("%sstarts/%s.start", journal, safeID(key))
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
