package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/render"
	"github.com/renderfarm/renderfarm/storage"
)

// Error codes of the API's error bodies, beside the render and storage
// codes a validation failure carries (invalid_request, invalid_location,
// forbidden...).
const (
	codeUnauthorized        = "unauthorized"
	codeRateLimited         = "rate_limited"
	codeBrokerUnavailable   = "broker_unavailable"
	codeTooLarge            = "body_too_large"
	codeUnsupportedMedia    = "unsupported_media_type"
	codeNotFound            = "not_found"
	codeIdempotencyConflict = "idempotency_key_in_use"
	codeIdempotencyMismatch = "idempotency_key_reused"
	codeInternal            = "internal"
	codeUnavailable         = "unavailable"
)

// apiError is the body of every error answer:
// {"error": {"code": "...", "field": "...", "message": "..."}}.
type apiError struct {
	Status     int           `json:"-"`
	Code       string        `json:"code"`
	Field      string        `json:"field,omitempty"`
	Message    string        `json:"message"`
	RetryAfter time.Duration `json:"-"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// encodeJSON is how every JSON answer is encoded, stored replays included,
// so a replay is byte for byte the first answer.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return buf.Bytes(), err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := encodeJSON(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"encoding the answer"}}`+"\n")
	}
	writeEncoded(w, status, data)
}

// writeEncoded writes a JSON answer already encoded.
func writeEncoded(w http.ResponseWriter, status int, data []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(data) // the client went away: nothing left to tell it
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}

// validationError turns what ParseRequest and Validate return into a 400
// that names the field.
func validationError(err error) *apiError {
	var re *render.Error
	var fe *job.FieldError
	switch {
	case errors.As(err, &fe):
		code := "invalid_location"
		var se *storage.Error
		if errors.As(fe.Err, &se) {
			code = se.Code
		}
		return &apiError{Status: http.StatusBadRequest, Code: code, Field: fe.Field, Message: fe.Err.Error()}
	case errors.As(err, &re):
		return &apiError{Status: http.StatusBadRequest, Code: string(re.Code), Field: re.Field, Message: re.Msg}
	}
	return &apiError{Status: http.StatusBadRequest, Code: string(render.ErrInvalidRequest), Message: err.Error()}
}

// publishError is the answer to a publish the broker did not confirm. All
// are 503s with Retry-After: nothing was accepted. A publish that went out
// but was not confirmed may still be queued; the message says so, since
// retrying it can run the render twice (harmless: outputs overwrite the
// same keys).
func (s *Server) publishError(err error) *apiError {
	e := &apiError{Status: http.StatusServiceUnavailable, Code: codeBrokerUnavailable, RetryAfter: s.cfg.RetryAfter}
	switch {
	case errors.Is(err, broker.ErrNotConnected):
		e.Message = "the broker is unreachable; nothing was enqueued"
	case errors.Is(err, broker.ErrUnroutable):
		e.Message = "the broker has no queue for renders; nothing was enqueued"
	case errors.Is(err, broker.ErrNacked):
		e.Message = "the broker refused the task (queue full?); nothing was enqueued"
	case errors.Is(err, broker.ErrClosed):
		e.Message = "the service is shutting down; nothing was enqueued"
	default:
		e.Message = fmt.Sprintf("the broker did not confirm the task in time; it may still run: %v", errors.Unwrap(err))
	}
	return e
}
