package runner

import (
	"errors"
	"fmt"

	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/render"
	"github.com/renderfarm/renderfarm/storage"
	"github.com/renderfarm/renderfarm/worker"
)

// isPermanent: bad input and missing sources can never succeed on a
// retry; everything else (storage down, timeouts, libvips trouble) may.
func isPermanent(err error) bool {
	var re *render.Error
	if errors.As(err, &re) {
		return re.Permanent()
	}
	var se *storage.Error
	if errors.As(err, &se) {
		return se.Permanent()
	}
	var fe *job.FieldError
	return errors.As(err, &fe)
}

func errorCode(err error) string {
	var re *render.Error
	if errors.As(err, &re) {
		return string(re.Code)
	}
	var se *storage.Error
	if errors.As(err, &se) {
		return se.Code
	}
	return "internal"
}

// failure is the exception a Python client sees: RenderError from
// renderfarm.errors, with the code and a message a person understands.
// It dead-letters the message with the same reason.
func failure(err error) error {
	var te *worker.TaskError
	if errors.As(err, &te) {
		return err
	}
	return &deadLetter{TaskError: worker.TaskError{Type: "RenderError", Module: "renderfarm.errors",
		Message: []any{fmt.Sprintf("%s: %v", errorCode(err), err)}}}
}

// deadLetter is a failure the worker also records in the dead-letter
// exchange, with the reason.
type deadLetter struct{ worker.TaskError }

func (d *deadLetter) DeadLetterReason() string { return fmt.Sprint(d.Message...) }
func (d *deadLetter) Unwrap() error            { return &d.TaskError }
