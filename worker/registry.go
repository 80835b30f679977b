package worker

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/renderfarm/renderfarm/broker/celery"
)

// Handler runs one task. Its return value becomes the task's result (it
// must marshal to JSON); an error becomes FAILURE, unless it is a *Retry.
// ctx ends at the task's hard time limit, on revoke with terminate, and on
// a cold shutdown; a handler that ignores ctx is abandoned, not killed.
type Handler func(ctx context.Context, t *Task) (any, error)

// Task is what a handler sees of the request.
type Task struct {
	ID      string
	Name    string
	Args    []any
	Kwargs  map[string]any
	Retries int
	// Request is the whole decoded message, for handlers that need headers.
	Request *celery.Message

	soft <-chan struct{}
}

// SoftLimit is closed when the task's soft time limit passes: a handler
// can stop cleanly and return ErrSoftTimeLimit before the hard limit.
func (t *Task) SoftLimit() <-chan struct{} { return t.soft }

// TaskOptions are per-task defaults, overridden by what the message says.
type TaskOptions struct {
	MaxRetries int           // default retries allowed for Retry errors without their own
	HardLimit  time.Duration // used when the message carries no time limit
	SoftLimit  time.Duration
	// DeadLettered is called when the worker dead-letters a message of
	// this task instead of running it (its handler kept killing workers,
	// or it was delivered too often), with the reason, for a task that
	// keeps a record of its own (renderfarm.render's manifest), which no
	// run would write now. FAILURE is stored in the result backend either
	// way.
	DeadLettered func(ctx context.Context, t *Task, reason string) error
}

type registered struct {
	h    Handler
	opts TaskOptions
}

// Registry maps task names to handlers. It is filled before the worker
// starts and read-only after.
type Registry struct {
	mu    sync.RWMutex
	tasks map[string]registered
}

func NewRegistry() *Registry { return &Registry{tasks: map[string]registered{}} }

// Register adds a handler; registering a name twice is a programming error.
func (r *Registry) Register(name string, h Handler, opts TaskOptions) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.tasks[name]; dup {
		panic(fmt.Sprintf("worker: task %q registered twice", name))
	}
	r.tasks[name] = registered{h: h, opts: opts}
}

func (r *Registry) lookup(name string) (registered, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.tasks[name]
	return t, ok
}

// Names lists the registered tasks, sorted, as `celery inspect registered`
// shows them.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.tasks))
	for n := range r.tasks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
