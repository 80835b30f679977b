package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/render"
	"github.com/renderfarm/renderfarm/storage"
)

// Render states as the API reports them.
const (
	statePending   = "pending"   // accepted, not finished: queued, running or waiting to retry
	stateSucceeded = "succeeded" // every output stored
	stateFailed    = "failed"    // failed for good; error says why
)

// renderStatus is GET /v1/renders/{id}.
type renderStatus struct {
	ID       string          `json:"id"`
	Status   string          `json:"status"`
	Attempts int             `json:"attempts,omitempty"`
	Worker   string          `json:"worker,omitempty"`
	Started  *time.Time      `json:"started,omitempty"`
	Finished *time.Time      `json:"finished,omitempty"`
	Request  *job.Request    `json:"request,omitempty"`
	Source   *job.SourceInfo `json:"source,omitempty"`
	Outputs  []outputStatus  `json:"outputs,omitempty"`
	Timings  *job.Timings    `json:"timings_ms,omitempty"`
	// Error is why a failed render failed, or for a pending one the last
	// attempt's error before its retry.
	Error *job.ManifestError `json:"error,omitempty"`
}

type outputStatus struct {
	job.OutputInfo
	URL string `json:"url"` // through the API: a redirect to a presigned S3 URL, or the file
}

func (s *Server) getRender(w http.ResponseWriter, r *http.Request) {
	m, st, aerr := s.lookup(r.Context(), r.PathValue("id"))
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if m == nil {
		writeJSON(w, http.StatusOK, st)
		return
	}
	writeJSON(w, http.StatusOK, statusOf(m))
}

// lookup finds the render's manifest. A task with no manifest yet is
// pending if its id is one this tier issued (a UUIDv7, whose time is
// within the journal's search window and not in the future); any other id
// without a manifest is not found.
func (s *Server) lookup(ctx context.Context, id string) (*job.Manifest, *renderStatus, *apiError) {
	if !validID(id) {
		return nil, nil, &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Field: "id",
			Message: "a render id is 1 to 128 letters, digits, '-' or '_'"}
	}
	m, err := s.cfg.Journal.Find(ctx, id)
	switch {
	case errors.Is(err, job.ErrNoManifest):
		now := s.cfg.Now()
		if sent, ok := job.IDTime(id); ok && !sent.After(now.Add(time.Minute)) &&
			now.Sub(sent) < time.Duration(s.cfg.Journal.SearchDays())*24*time.Hour {
			return nil, &renderStatus{ID: id, Status: statePending}, nil
		}
		return nil, nil, &apiError{Status: http.StatusNotFound, Code: codeNotFound,
			Message: "no render with this id in the journal's window"}
	case err != nil:
		s.cfg.Logger.Warn("web: reading the journal", "id", id, "err", err)
		return nil, nil, &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
			RetryAfter: s.cfg.RetryAfter, Message: "the job journal cannot be read right now"}
	}
	return m, nil, nil
}

func statusOf(m *job.Manifest) *renderStatus {
	st := &renderStatus{ID: m.TaskID, Attempts: m.Attempts, Worker: m.Worker, Request: m.Request, Error: m.Error}
	if !m.Started.IsZero() {
		st.Started = &m.Started
	}
	switch m.Status {
	case job.StatusSuccess:
		st.Status = stateSucceeded
	case job.StatusFailure:
		st.Status = stateFailed
	default: // RETRY: the last attempt failed and another is due
		st.Status = statePending
	}
	if st.Status != statePending && !m.Finished.IsZero() {
		st.Finished = &m.Finished
	}
	if res := m.Result; res != nil && st.Status == stateSucceeded {
		st.Source, st.Timings = &res.Source, &res.Timings
		for i, o := range res.Outputs {
			st.Outputs = append(st.Outputs, outputStatus{OutputInfo: o, URL: outputURL(m.TaskID, i)})
		}
	}
	return st
}

func outputURL(id string, i int) string { return fmt.Sprintf("/v1/renders/%s/outputs/%d", id, i) }

// getOutput serves output n of a succeeded render: a redirect to a
// presigned URL for S3, or the file's bytes for file://.
func (s *Server) getOutput(w http.ResponseWriter, r *http.Request) {
	m, _, aerr := s.lookup(r.Context(), r.PathValue("id"))
	if aerr == nil && (m == nil || m.Status != job.StatusSuccess || m.Result == nil) {
		aerr = &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: "the render has no outputs (yet)"}
	}
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n >= len(m.Result.Outputs) {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: codeNotFound, Field: "n",
			Message: fmt.Sprintf("the render has outputs 0 to %d", len(m.Result.Outputs)-1)})
		return
	}
	out := m.Result.Outputs[n]
	loc, err := storage.ParseLocation(out.Key)
	if err != nil {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: "the output's key is not readable"})
		return
	}
	if loc.Scheme == storage.SchemeS3 {
		url, err := s.cfg.Store.PresignGet(r.Context(), loc, s.cfg.PresignTTL)
		if err != nil {
			writeError(w, s.storageError(err))
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, url, http.StatusFound)
		return
	}
	data, err := s.cfg.Store.Get(r.Context(), loc, 0)
	if err != nil {
		writeError(w, s.storageError(err))
		return
	}
	w.Header().Set("Content-Type", render.Format(out.Format).ContentType())
	w.Header().Set("Cache-Control", "private, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(data)
}

func (s *Server) storageError(err error) *apiError {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: "the output is gone from storage"}
	case storage.IsPermanent(err):
		return &apiError{Status: http.StatusForbidden, Code: "forbidden", Message: err.Error()}
	}
	s.cfg.Logger.Warn("web: storage", "err", err)
	return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, RetryAfter: s.cfg.RetryAfter,
		Message: "storage cannot be read right now"}
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
