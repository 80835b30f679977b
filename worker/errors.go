package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/renderfarm/renderfarm/broker/celery"
)

// TaskError is a failure as Python sees it: the client raises an exception
// of this type and module with these arguments. Builtins (module
// "builtins") raise as themselves; other types are synthesised by the
// client under their name.
type TaskError struct {
	Type    string
	Module  string
	Message []any
}

func (e *TaskError) Error() string { return fmt.Sprintf("%s: %v", e.Type, e.Message) }

// Errorf makes a TaskError of the given Python exception type from
// builtins, e.g. Errorf("ValueError", "width %d too large", w).
func Errorf(pyType, format string, args ...any) *TaskError {
	return &TaskError{Type: pyType, Module: "builtins", Message: []any{fmt.Sprintf(format, args...)}}
}

// ErrSoftTimeLimit is what a handler returns when it stops at its soft
// limit; it is reported as celery's SoftTimeLimitExceeded.
var ErrSoftTimeLimit = errors.New("soft time limit exceeded")

// Retry asks for the task to run again after Countdown. The same task id
// is republished with retries+1; after MaxRetries (nil: the task's
// default) the wrapped error is stored as the failure.
type Retry struct {
	Err        error
	Countdown  time.Duration
	MaxRetries *int
}

func (r *Retry) Error() string { return fmt.Sprintf("retry in %v: %v", r.Countdown, r.Err) }
func (r *Retry) Unwrap() error { return r.Err }

// exceptionInfo converts a handler's error into Celery's failure payload.
// Permanent/transient classification stays with the caller: here every
// error is just an exception to report.
func exceptionInfo(err error) celery.ExceptionInfo {
	var te *TaskError
	switch {
	case errors.As(err, &te):
		msg := te.Message
		if msg == nil {
			msg = []any{}
		}
		return celery.ExceptionInfo{Type: te.Type, Module: te.Module, Message: msg}
	case errors.Is(err, ErrSoftTimeLimit):
		return celery.ExceptionInfo{Type: "SoftTimeLimitExceeded", Module: "billiard.exceptions", Message: []any{err.Error()}}
	}
	return celery.ExceptionInfo{Type: "Exception", Module: "builtins", Message: []any{err.Error()}}
}
