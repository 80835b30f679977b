package celery

import (
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// State is a task state as result backends store it.
type State string

const (
	Pending  State = "PENDING"
	Received State = "RECEIVED"
	Started  State = "STARTED"
	Success  State = "SUCCESS"
	Failure  State = "FAILURE"
	Retry    State = "RETRY"
	Revoked  State = "REVOKED"
)

// Ready reports whether s is final (celery.states.READY_STATES): a client
// stops waiting. RETRY and STARTED are interim.
func (s State) Ready() bool { return s == Success || s == Failure || s == Revoked }

// carriesException reports whether the result of s is an exception
// (celery.states.EXCEPTION_STATES).
func (s State) carriesException() bool { return s == Failure || s == Retry || s == Revoked }

// ExceptionInfo is an exception as the JSON result serializer sends it
// (backend.prepare_exception): a client re-raises it by module and type,
// builtins as themselves, anything else as a class it synthesises.
type ExceptionInfo struct {
	Type, Module string
	Message      []any // the exception's args
}

func (e ExceptionInfo) messageList() []any {
	if e.Message == nil {
		return []any{}
	}
	return e.Message
}

func (e ExceptionInfo) object() object {
	return object{
		{"exc_type", e.Type},
		{"exc_message", e.messageList()},
		{"exc_module", e.Module},
	}
}

// MarshalJSON writes {"exc_type", "exc_message", "exc_module"}.
func (e ExceptionInfo) MarshalJSON() ([]byte, error) { return marshalValue(e.object()) }

// Repr is BaseException.__repr__, Type(args...), which is what a worker
// puts in the exception field of task-failed and task-retried events
// (for an unknown task it writes NotRegistered('name') the same way).
func (e ExceptionInfo) Repr() string {
	switch len(e.Message) {
	case 0:
		return e.Type + "()"
	case 1:
		return e.Type + "(" + Repr(e.Message[0]) + ")"
	}
	return e.Type + Repr(tuple(e.Message))
}

// NotRegistered is the failure a worker stores for a task it does not
// know: celery.exceptions.NotRegistered(name), whose args are the bare
// name.
func NotRegistered(task string) ExceptionInfo {
	return ExceptionInfo{Type: "NotRegistered", Module: "celery.exceptions", Message: []any{task}}
}

// TimeLimitExceeded is billiard's hard time limit failure; its argument is
// the limit as the message gave it, so a whole number is an int.
func TimeLimitExceeded(seconds float64) ExceptionInfo {
	return ExceptionInfo{Type: "TimeLimitExceeded", Module: "billiard.exceptions", Message: []any{limitValue(&seconds)}}
}

// TaskRevoked is celery.exceptions.TaskRevokedError(reason), stored with
// state REVOKED: reason is "expired", "revoked" or "terminated".
func TaskRevoked(reason string) ExceptionInfo {
	return ExceptionInfo{Type: "TaskRevokedError", Module: "celery.exceptions", Message: []any{reason}}
}

// Result is what a worker reports for a task.
type Result struct {
	TaskID    string
	Status    State
	Result    any // the return value, or an ExceptionInfo for FAILURE, RETRY, REVOKED
	Traceback *string
	// Children are the results of subtasks, in celery's as_tuple() form
	// [[id, parent], null]. Nil is written as [], as a worker always has a
	// request to take them from.
	Children []any
	DateDone *time.Time // stored results only; the current time when nil
	// GroupID and ParentID are added to stored results when set, as
	// _get_result_meta does for a request that has them.
	GroupID, ParentID string
}

func (r Result) resultValue() any {
	switch x := r.Result.(type) {
	case *ExceptionInfo:
		if x == nil {
			return nil
		}
		return *x
	case ExceptionInfo:
		return x
	case error:
		if r.Status.carriesException() {
			return ExceptionInfo{Type: "Exception", Module: "builtins", Message: []any{x.Error()}}
		}
	}
	return r.Result
}

func (r Result) children() []any {
	if r.Children == nil {
		return []any{}
	}
	return r.Children
}

func tracebackValue(tb *string) any {
	if tb == nil {
		return nil
	}
	return *tb
}

// EncodeRPCResult is the reply the rpc:// backend sends (rpc.py
// _to_result + store_result). Publish it to the default exchange "" with
// req.ReplyTo as routing key; when req has no ReplyTo, or the task ignores
// its result, a Python worker sends nothing. correlation_id is the
// request's correlation_id, falling back to the task id, as
// destination_for does.
func EncodeRPCResult(r Result, req *Message) (amqp.Publishing, error) {
	if r.TaskID == "" {
		return amqp.Publishing{}, errors.New("celery: rpc result without a task id (the client raises KeyError)")
	}
	body, err := marshalValue(object{
		{"task_id", r.TaskID},
		{"status", string(r.Status)},
		{"result", r.resultValue()},
		{"traceback", tracebackValue(r.Traceback)},
		{"children", r.children()},
	})
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("celery: encode result: %w", err)
	}
	corr := r.TaskID
	if req != nil && req.CorrelationID != "" {
		corr = req.CorrelationID
	}
	return amqp.Publishing{
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		DeliveryMode:    amqp.Transient, // result_persistent is off by default
		CorrelationId:   corr,
		Body:            body,
	}, nil
}

// StoredResultKey is the key a key/value backend (redis) stores a result
// under; the redis backend also PUBLISHes the value on a channel of the
// same name, which is what a waiting client listens to.
func StoredResultKey(taskID string) string { return "celery-task-meta-" + taskID }

// EncodeStoredResult is the value a key/value backend stores
// (_get_result_meta + task_id): status, result, traceback, children,
// date_done (naive UTC ISO time for final states, else null), group_id
// and parent_id when set, task_id.
func EncodeStoredResult(r Result) ([]byte, error) {
	if r.TaskID == "" {
		return nil, errors.New("celery: stored result without a task id")
	}
	var done any
	if r.Status.Ready() {
		t := time.Now()
		if r.DateDone != nil {
			t = *r.DateDone
		}
		done = naiveISOFormat(t)
	}
	meta := object{
		{"status", string(r.Status)},
		{"result", r.resultValue()},
		{"traceback", tracebackValue(r.Traceback)},
		{"children", r.children()},
		{"date_done", done},
	}
	if r.GroupID != "" {
		meta = append(meta, member{"group_id", r.GroupID})
	}
	if r.ParentID != "" {
		meta = append(meta, member{"parent_id", r.ParentID})
	}
	meta = append(meta, member{"task_id", r.TaskID})
	b, err := marshalValue(meta)
	if err != nil {
		return nil, fmt.Errorf("celery: encode result: %w", err)
	}
	return b, nil
}

// DecodeResult reads an rpc reply body or a stored result value. For
// FAILURE, RETRY and REVOKED an {"exc_type", ...} result becomes an
// ExceptionInfo.
func DecodeResult(body []byte) (*Result, error) {
	v, err := parseJSON(body)
	if err != nil {
		return nil, malformed("%v", err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, malformed("result is %s, want an object", describe(v))
	}
	r := &Result{}
	if r.TaskID, err = headerString(d, "task_id"); err != nil {
		return nil, err
	}
	status, err := headerString(d, "status")
	if err != nil {
		return nil, err
	}
	r.Status = State(status)
	r.Result = d["result"]
	if r.Status.carriesException() {
		if e, ok := exceptionFrom(d["result"]); ok {
			r.Result = e
		}
	}
	if tb, ok := d["traceback"].(string); ok {
		r.Traceback = &tb
	}
	if c, ok := d["children"].([]any); ok {
		r.Children = c
	}
	if r.GroupID, err = headerString(d, "group_id"); err != nil {
		return nil, err
	}
	if r.ParentID, err = headerString(d, "parent_id"); err != nil {
		return nil, err
	}
	if r.DateDone, err = headerTime(d, "date_done", time.UTC); err != nil {
		return nil, err
	}
	return r, nil
}

func exceptionFrom(v any) (ExceptionInfo, bool) {
	d, ok := v.(map[string]any)
	if !ok {
		return ExceptionInfo{}, false
	}
	t, ok := d["exc_type"].(string)
	if !ok {
		return ExceptionInfo{}, false
	}
	mod, _ := d["exc_module"].(string)
	e := ExceptionInfo{Type: t, Module: mod}
	switch m := d["exc_message"].(type) {
	case []any:
		e.Message = m
	case nil:
	default:
		e.Message = []any{m}
	}
	return e, true
}
