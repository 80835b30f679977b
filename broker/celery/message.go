package celery

import (
	"encoding/json"
	"time"
)

// The standard names a celery 5.2 client and worker use.
const (
	DefaultQueue        = "celery"
	DefaultExchange     = "celery"
	EventExchange       = "celeryev"
	PidboxExchange      = "celery.pidbox"
	ReplyPidboxExchange = "reply.celery.pidbox"
)

// PidboxQueue is the remote-control queue of the worker called hostname.
func PidboxQueue(hostname string) string { return hostname + ".celery.pidbox" }

// Signature is a celery signature as it travels in a message: a dict with
// task, args, kwargs, options, subtask_type and immutable. Group, chain and
// chord signatures keep their members inside Kwargs, in wire form.
type Signature struct {
	Task        string
	Args        []any
	Kwargs      map[string]any
	Options     map[string]any
	SubtaskType string // "" for a plain task; "group", "chain", "chord", ...
	Immutable   bool
	// Extra holds keys other celery versions add to the dict, so a
	// signature passed on (a callback, the rest of a chain) loses nothing.
	Extra map[string]any
}

// Embed is the third element of a protocol 2 body. Chain is as on the wire:
// reversed, the next task to run is the last element.
type Embed struct {
	Callbacks, Errbacks, Chain []Signature
	Chord                      *Signature
}

// Message is a task message, protocol 1 or 2, decoded into one shape.
//
// Values in Args, Kwargs, Headers and signatures use the decoded value
// model described in the package documentation.
type Message struct {
	Protocol     int // 1 or 2; the hybrid form decodes as 1
	ID, Task     string
	Args         []any
	Kwargs       map[string]any
	Embed        Embed
	Retries      int
	ETA, Expires *time.Time // UTC; see Decode for naive times
	// TimeLimit is [hard, soft] in seconds, the order celery 5 sends (its
	// protocol document says soft first; the code disagrees).
	TimeLimit                 [2]*float64
	RootID, ParentID, GroupID string
	GroupIndex                *int
	Shadow, Origin            string
	IgnoreResult              bool
	ArgsRepr, KwargsRepr      string
	ReplyTo, CorrelationID    string
	Priority                  uint8
	// Headers are the headers this struct does not model (custom ones,
	// and fields newer celery versions add), kept so a retry or a chain
	// step republishes them. For protocol 1 they also carry the body keys
	// that are not modelled, as a Python worker treats the v1 body as its
	// header dict.
	Headers map[string]any
}

// modeledHeaders are the protocol 2 headers Message has fields for.
var modeledHeaders = map[string]bool{
	"lang": true, "task": true, "id": true, "shadow": true, "eta": true,
	"expires": true, "group": true, "group_index": true, "retries": true,
	"timelimit": true, "root_id": true, "parent_id": true, "argsrepr": true,
	"kwargsrepr": true, "origin": true, "ignore_result": true,
}

// modeledV1 are the protocol 1 body keys Message has fields for.
var modeledV1 = map[string]bool{
	"task": true, "id": true, "args": true, "kwargs": true, "retries": true,
	"eta": true, "expires": true, "utc": true, "callbacks": true,
	"errbacks": true, "timelimit": true, "taskset": true, "group": true,
	"group_index": true, "chord": true, "chain": true, "lang": true,
	"root_id": true, "parent_id": true, "shadow": true, "argsrepr": true,
	"kwargsrepr": true, "origin": true, "ignore_result": true,
}

// object writes the signature as celery's Signature dict, keys in the
// order celery builds them.
func (s Signature) object() object {
	args := s.Args
	if args == nil {
		args = []any{}
	}
	o := object{
		{"task", s.Task},
		{"args", args},
		{"kwargs", orEmpty(s.Kwargs)},
		{"options", orEmpty(s.Options)},
		{"subtask_type", nilIfEmpty(s.SubtaskType)},
		{"immutable", s.Immutable},
	}
	for _, k := range sortedKeys(s.Extra) {
		if !signatureKeys[k] {
			o = append(o, member{k, s.Extra[k]})
		}
	}
	return o
}

var signatureKeys = map[string]bool{
	"task": true, "args": true, "kwargs": true, "options": true,
	"subtask_type": true, "immutable": true,
}

// MarshalJSON writes the signature as celery's dict, so a Signature can be
// passed as a task argument too.
func (s Signature) MarshalJSON() ([]byte, error) { return marshalValue(s.object()) }

func (e Embed) object() object {
	var chord any
	if e.Chord != nil {
		chord = e.Chord.object()
	}
	return object{
		{"callbacks", signatureList(e.Callbacks)},
		{"errbacks", signatureList(e.Errbacks)},
		{"chain", signatureList(e.Chain)},
		{"chord", chord},
	}
}

// signatureList keeps nil (null on the wire, what celery sends when there
// is nothing) apart from an empty list.
func signatureList(sigs []Signature) any {
	if sigs == nil {
		return nil
	}
	out := make([]any, len(sigs))
	for i, s := range sigs {
		out[i] = s.object()
	}
	return out
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// tuple is a Python tuple, for reprs: celery computes argsrepr from the
// args tuple, so it reads "(1, 2)" or "(1,)".
type tuple []any

var _ json.Marshaler = Signature{}
