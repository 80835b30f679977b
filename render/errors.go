package render

import (
	"errors"
	"fmt"
)

// Code classifies a render failure. A Code is itself an error, so callers
// match a class with errors.Is(err, render.ErrCorrupt) without caring about
// the message.
type Code string

const (
	ErrInvalidRequest    Code = "invalid_request"    // the request itself is wrong
	ErrUnsupportedFormat Code = "unsupported_format" // not an allow-listed image
	ErrTooManyBytes      Code = "too_many_bytes"     // source over the byte limit
	ErrTooManyPixels     Code = "too_many_pixels"    // source over the pixel limit
	ErrCorrupt           Code = "corrupt_image"      // truncated or damaged data
	ErrOverBudget        Code = "over_budget"        // needs more memory than the host has
	ErrUnavailable       Code = "unavailable"        // an encoder this host lacks
	ErrCanceled          Code = "canceled"           // deadline passed or caller gave up
	ErrInternal          Code = "internal"           // libvips failed on input it accepted
)

func (c Code) Error() string { return string(c) }

// Permanent reports whether retrying the same input can never succeed.
// Deadlines and libvips' own failures are worth another attempt, perhaps on a
// less loaded host; bad input is not.
func (c Code) Permanent() bool {
	switch c {
	case ErrCanceled, ErrInternal:
		return false
	}
	return true
}

// Error is the one error type the engine returns. Field names the request
// field at fault, in JSON path form ("outputs[2].width"), when there is one.
type Error struct {
	Code  Code
	Field string
	Msg   string
	Err   error
}

func (e *Error) Error() string {
	msg := e.Msg
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Code, e.Err}
	}
	return []error{e.Code}
}

// Permanent reports whether the failure is in the input rather than the host.
func (e *Error) Permanent() bool { return e.Code.Permanent() }

func newError(code Code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func fieldError(field, format string, args ...any) *Error {
	return newError(ErrInvalidRequest, field, format, args...)
}

// IsPermanent reports whether err is a render failure that retrying cannot fix.
// Errors that are not the engine's own count as transient.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent()
}
