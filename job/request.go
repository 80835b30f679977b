package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/renderfarm/renderfarm/render"
)

// TaskName is the Celery task name Python apps send.
const TaskName = "renderfarm.render"

// Request is the task contract: the render engine's request model plus
// object settings for the outputs.
type Request struct {
	render.Request
	Metadata           map[string]string `json:"metadata,omitempty"`
	CacheControl       string            `json:"cache_control,omitempty"`
	ContentDisposition string            `json:"content_disposition,omitempty"`
}

// ParseRequest reads one request from its JSON: the job's own fields are
// taken out and the rest goes to the render engine's strict parser, so an
// unknown field is still an error naming it.
func ParseRequest(data []byte) (*Request, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, &render.Error{Code: render.ErrInvalidRequest, Msg: "the request must be a JSON object"}
	}
	if !AtEOF(dec) {
		return nil, &render.Error{Code: render.ErrInvalidRequest, Msg: "trailing data after the JSON object"}
	}
	var r Request
	for name, dst := range map[string]any{"metadata": &r.Metadata, "cache_control": &r.CacheControl, "content_disposition": &r.ContentDisposition} {
		raw, ok := fields[name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return nil, &render.Error{Code: render.ErrInvalidRequest, Field: name, Msg: fmt.Sprintf("has the wrong type: %v", err)}
		}
		delete(fields, name)
	}
	rest, _ := json.Marshal(fields)
	rr, err := render.ParseRequest(rest)
	if err != nil {
		return nil, err
	}
	r.Request = *rr
	return &r, nil
}

// AtEOF says whether dec has nothing left but white space: a body is one
// JSON value, and whatever follows it (a second object, garbage) is a
// client bug or a smuggling attempt, not something to ignore.
func AtEOF(dec *json.Decoder) bool {
	_, err := dec.Token()
	return err == io.EOF
}

// RequestFromTask takes the request from kwargs (send_task(kwargs=REQUEST))
// or from a single positional argument (args=[REQUEST]).
func RequestFromTask(args []any, kwargs map[string]any) (*Request, error) {
	var v any = kwargs
	switch {
	case len(args) == 1 && len(kwargs) == 0:
		v = args[0]
	case len(args) > 0:
		return nil, &render.Error{Code: render.ErrInvalidRequest, Msg: "send the request as kwargs, or as the only argument"}
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, &render.Error{Code: render.ErrInvalidRequest, Msg: "the request is not JSON", Err: err}
	}
	return ParseRequest(data)
}
