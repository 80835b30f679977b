package storage

import (
	"errors"
	"fmt"
	"strconv"
)

// Error codes. They are stable strings so that a job manifest or a
// dead-letter record can carry them and the web tier can act on them
// without parsing messages.
const (
	CodeInvalidLocation = "invalid_location"
	CodeInvalidArgument = "invalid_argument"
	CodeNotFound        = "not_found"
	CodeForbidden       = "forbidden"
	CodeTooLarge        = "too_large"
	CodeUnavailable     = "unavailable"
	CodeConflict        = "conflict"
)

// Sentinels for errors.Is. Every error the package returns for a location
// is an *Error whose Code matches exactly one of them.
var (
	// ErrInvalidLocation: the address cannot be parsed or fails validation
	// (traversal, bad bucket name, control characters, unsupported scheme...).
	ErrInvalidLocation = errors.New("storage: invalid location")
	// ErrInvalidArgument: the location is fine but the request is not
	// (bad metadata, writing to an http(s) location, a 4xx the server gave
	// for the request itself).
	ErrInvalidArgument = errors.New("storage: invalid argument")
	// ErrNotFound: missing key, missing bucket, missing file, HTTP 404/410.
	ErrNotFound = errors.New("storage: not found")
	// ErrForbidden: outside the file roots, bucket not allowed, refused by
	// the SSRF guard, too many redirects, 401/403 or AccessDenied.
	ErrForbidden = errors.New("storage: forbidden")
	// ErrTooLarge: the object exceeds the byte cap of the read.
	ErrTooLarge = errors.New("storage: too large")
	// ErrUnavailable: network failures, timeouts, 5xx, throttling,
	// cancellation. The only transient class: retrying may succeed.
	ErrUnavailable = errors.New("storage: unavailable")
	// ErrConflict: a conditional write (PutIfVersion) found the object
	// changed since it was read; nothing was written.
	ErrConflict = errors.New("storage: conflict")
)

var sentinels = map[string]error{
	CodeInvalidLocation: ErrInvalidLocation,
	CodeInvalidArgument: ErrInvalidArgument,
	CodeNotFound:        ErrNotFound,
	CodeForbidden:       ErrForbidden,
	CodeTooLarge:        ErrTooLarge,
	CodeUnavailable:     ErrUnavailable,
	CodeConflict:        ErrConflict,
}

// Error is the one error type of the package. Location is the raw address
// as given (possibly hostile, so Error() quotes and truncates it); Err is
// the underlying cause, if any, kept for errors.Is/As (e.g.
// context.DeadlineExceeded) and logs.
type Error struct {
	Code     string
	Location string
	Msg      string
	Err      error
}

// maxLocationInMessage keeps a hostile multi-kilobyte location from
// flooding logs and manifests.
const maxLocationInMessage = 256

func (e *Error) Error() string {
	loc := e.Location
	if len(loc) > maxLocationInMessage {
		loc = loc[:maxLocationInMessage] + "..."
	}
	s := "storage"
	if loc != "" {
		s += " " + strconv.Quote(loc)
	}
	s += ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotFound) and friends work off Code, so the
// cause stays reachable through Unwrap at the same time.
func (e *Error) Is(target error) bool {
	s, ok := sentinels[e.Code]
	return ok && s == target
}

// Permanent reports whether retrying the same operation is pointless.
// Everything but ErrUnavailable is permanent.
func (e *Error) Permanent() bool { return e.Code != CodeUnavailable }

// IsPermanent reports whether err carries a permanent storage error.
// Errors not from this package count as transient: the caller's retry
// budget bounds them, whereas a wrongly permanent error loses a job.
func IsPermanent(err error) bool {
	var se *Error
	return errors.As(err, &se) && se.Permanent()
}

func newError(code, loc, msg string, err error) *Error {
	return &Error{Code: code, Location: loc, Msg: msg, Err: err}
}

func errorf(code, loc, format string, args ...any) *Error {
	return &Error{Code: code, Location: loc, Msg: fmt.Sprintf(format, args...)}
}
