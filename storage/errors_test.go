package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorClasses(t *testing.T) {
	cause := context.DeadlineExceeded
	tests := []struct {
		code      string
		sentinel  error
		permanent bool
	}{
		{CodeInvalidLocation, ErrInvalidLocation, true},
		{CodeInvalidArgument, ErrInvalidArgument, true},
		{CodeNotFound, ErrNotFound, true},
		{CodeForbidden, ErrForbidden, true},
		{CodeTooLarge, ErrTooLarge, true},
		{CodeUnavailable, ErrUnavailable, false},
	}
	all := []error{ErrInvalidLocation, ErrInvalidArgument, ErrNotFound, ErrForbidden, ErrTooLarge, ErrUnavailable}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			err := fmt.Errorf("task: %w", newError(tt.code, "s3://b12/k", "msg", cause))
			for _, s := range all {
				if got := errors.Is(err, s); got != (s == tt.sentinel) {
					t.Errorf("errors.Is(%v) = %v", s, got)
				}
			}
			if !errors.Is(err, cause) {
				t.Error("the cause is not reachable through Unwrap")
			}
			var se *Error
			if !errors.As(err, &se) || se.Permanent() != tt.permanent || IsPermanent(err) != tt.permanent {
				t.Errorf("Permanent = %v, want %v", se.Permanent(), tt.permanent)
			}
		})
	}
	if IsPermanent(errors.New("foreign")) || IsPermanent(nil) {
		t.Error("errors from elsewhere must count as transient")
	}
}

func TestErrorMessage(t *testing.T) {
	e := newError(CodeNotFound, "s3://b12/k\r\n", "no such key", errors.New("cause"))
	if got, want := e.Error(), `storage "s3://b12/k\r\n": no such key: cause`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	long := newError(CodeInvalidLocation, strings.Repeat("x", 5000), "too long", nil).Error()
	if len(long) > maxLocationInMessage+64 {
		t.Errorf("a hostile location is not truncated: %d bytes", len(long))
	}
	if got := errorf(CodeForbidden, "", "refused").Error(); got != "storage: refused" {
		t.Errorf("Error() without location = %q", got)
	}
}
