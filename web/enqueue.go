package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/renderfarm/renderfarm/job"
	"golang.org/x/sync/errgroup"
)

// accepted is the 202 body: the task id and where to ask about it.
type accepted struct {
	ID        string `json:"id"`
	StatusURL string `json:"status_url"`
}

func statusURL(id string) string { return "/v1/renders/" + id }

// response is a handler's answer before it is written, so an
// Idempotency-Key can store it and replay it.
type response struct {
	status   int
	body     any
	location string
	err      *apiError // instead of body: an error answer, never stored
	// noStore keeps a success from being replayed: a batch with items the
	// broker refused must be retried for real.
	noStore bool
}

func errorResponse(e *apiError) response { return response{status: e.Status, err: e} }

// postRender: one request in the task contract, validated, then published
// with confirms; 202 only once the broker has confirmed it.
func (s *Server) postRender(w http.ResponseWriter, r *http.Request) {
	s.withBody(w, r, func(body []byte) response {
		req, aerr := s.parse(body)
		if aerr != nil {
			return errorResponse(aerr)
		}
		id, aerr := s.enqueue(r.Context(), req)
		if aerr != nil {
			return errorResponse(aerr)
		}
		return response{status: http.StatusAccepted, body: accepted{ID: id, StatusURL: statusURL(id)}, location: statusURL(id)}
	})
}

// batchItem is one result of a batch: status 202 with the id, or the
// error a single request would have got.
type batchItem struct {
	Status    int       `json:"status"`
	ID        string    `json:"id,omitempty"`
	StatusURL string    `json:"status_url,omitempty"`
	Error     *apiError `json:"error,omitempty"`
}

// postBatch: {"requests": [...]}, each validated and published on its
// own; the answer is 200 with a result per item, in order. Invalid items
// do not hold back valid ones.
func (s *Server) postBatch(w http.ResponseWriter, r *http.Request) {
	s.withBody(w, r, func(body []byte) response {
		var env struct {
			Requests []json.RawMessage `json:"requests"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&env); err != nil || !job.AtEOF(dec) {
			return errorResponse(&apiError{Status: http.StatusBadRequest, Code: "invalid_request", Field: "requests",
				Message: `the body must be {"requests": [REQUEST, ...]}`})
		}
		n := len(env.Requests)
		if n == 0 || n > s.cfg.BatchMax {
			return errorResponse(&apiError{Status: http.StatusBadRequest, Code: "invalid_request", Field: "requests",
				Message: fmt.Sprintf("give between 1 and %d requests, got %d", s.cfg.BatchMax, n)})
		}
		// One unit was charged at the door, before the body was read, so
		// batches that fail to decode are not free.
		if n > 1 && !s.charge(w, tokenID(r), n-1) {
			return response{} // the 429 is written
		}
		items := make([]batchItem, n)
		g := errgroup.Group{}
		g.SetLimit(16) // confirms are pipelined: a few at a time keep the channel busy
		for i, raw := range env.Requests {
			req, aerr := s.parse(raw)
			if aerr != nil {
				items[i] = batchItem{Status: aerr.Status, Error: prefixField(aerr, i)}
				continue
			}
			g.Go(func() error {
				id, aerr := s.enqueue(r.Context(), req)
				if aerr != nil {
					items[i] = batchItem{Status: aerr.Status, Error: aerr}
				} else {
					items[i] = batchItem{Status: http.StatusAccepted, ID: id, StatusURL: statusURL(id)}
				}
				return nil
			})
		}
		_ = g.Wait()
		resp := response{status: http.StatusOK, body: map[string][]batchItem{"results": items}}
		for _, it := range items {
			if it.Status >= 500 {
				resp.noStore = true
			}
		}
		return resp
	})
}

func prefixField(e *apiError, i int) *apiError {
	c := *e
	if c.Field != "" {
		c.Field = fmt.Sprintf("requests[%d].%s", i, c.Field)
	} else {
		c.Field = fmt.Sprintf("requests[%d]", i)
	}
	return &c
}

func (s *Server) parse(body []byte) (*job.Request, *apiError) {
	req, err := job.ParseRequest(body)
	if err == nil {
		err = job.Validate(req, s.cfg.Store, s.cfg.Recipes)
	}
	if err != nil {
		s.stats.refused.WithLabelValues("invalid").Inc()
		return nil, validationError(err)
	}
	return req, nil
}

// enqueue publishes and waits for the confirm. Only a confirmed publish
// returns an id.
func (s *Server) enqueue(ctx context.Context, req *job.Request) (string, *apiError) {
	start := time.Now()
	id, err := job.Enqueue(ctx, s.cfg.Broker.PublishNow, s.cfg.Exchange, s.cfg.RoutingKey, req)
	if err != nil {
		s.stats.refused.WithLabelValues("broker").Inc()
		s.cfg.Logger.Warn("web: render not enqueued", "err", err)
		return "", s.publishError(err)
	}
	s.stats.publish.Observe(time.Since(start).Seconds())
	s.stats.enqueued.Inc()
	return id, nil
}

// withBody reads the body under the size cap, applies the
// Idempotency-Key, runs handle and writes its answer.
func (s *Server) withBody(w http.ResponseWriter, r *http.Request, handle func(body []byte) response) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, &apiError{Status: http.StatusUnsupportedMediaType, Code: codeUnsupportedMedia,
			Message: "send the request as Content-Type: application/json"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeTooLarge,
				Message: fmt.Sprintf("the body is over %d bytes", s.cfg.MaxBody)})
			return
		}
		writeError(w, &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Message: "the body could not be read"})
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		s.write(w, handle(body))
		return
	}
	if !validIdempotencyKey(key) {
		writeError(w, &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Field: "Idempotency-Key",
			Message: "must be 1 to 255 printable ASCII characters"})
		return
	}
	outcome, e := s.idem.begin(tokenID(r)+" "+r.Pattern+" "+key, body, s.cfg.Now())
	switch outcome {
	case idemReplay:
		s.stats.replays.Inc()
		w.Header().Set("Idempotent-Replayed", "true")
		setLocation(w, e.location)
		writeEncoded(w, e.status, e.resp)
		return
	case idemBusy:
		writeError(w, &apiError{Status: http.StatusConflict, Code: codeIdempotencyConflict, RetryAfter: time.Second,
			Message: "a request with this Idempotency-Key is still being processed"})
		return
	case idemMismatch:
		writeError(w, &apiError{Status: http.StatusUnprocessableEntity, Code: codeIdempotencyMismatch, Field: "Idempotency-Key",
			Message: "this Idempotency-Key was used for a different request"})
		return
	}
	resp := handle(body)
	if resp.err != nil || resp.status == 0 || resp.noStore {
		s.idem.abandon(e)
		s.write(w, resp)
		return
	}
	data, err := encodeJSON(resp.body)
	if err != nil {
		s.idem.abandon(e)
		writeError(w, &apiError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "encoding the answer"})
		return
	}
	s.idem.finish(e, resp.status, resp.location, data)
	setLocation(w, resp.location)
	writeEncoded(w, resp.status, data)
}

func (s *Server) write(w http.ResponseWriter, resp response) {
	switch {
	case resp.status == 0: // already written (a 429 from inside the handler)
	case resp.err != nil:
		writeError(w, resp.err)
	default:
		setLocation(w, resp.location)
		writeJSON(w, resp.status, resp.body)
	}
}

func setLocation(w http.ResponseWriter, location string) {
	if location != "" {
		w.Header().Set("Location", location)
	}
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}
