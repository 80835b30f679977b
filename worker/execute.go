package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/google/uuid"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
)

var (
	errHardLimit    = errors.New("hard time limit exceeded")
	errTerminated   = errors.New("terminated by revoke")
	errColdShutdown = errors.New("cold shutdown")
)

// holdLimit: an eta closer than this is waited for in memory; anything
// further is parked in a delay queue, so no delivery is ever held unacked
// near RabbitMQ's consumer_timeout (which kills a Python 5.2 worker).
const holdLimit = 2 * time.Second

// errDeliveryLost cuts short the storing of a result whose delivery died.
var errDeliveryLost = errors.New("the delivery's channel closed; the broker redelivers the task, whose next run stores its result")

// run executes the handler in the request's slot, gives the slot back
// (release) once the handler has returned, and settles the message.
func (c *consumer) run(r *request, reg registered, release func()) {
	rt, msg := c.rt, r.msg
	hard, soft := limits(msg, reg.opts)
	ctx, cancel := context.WithCancelCause(c.taskCtx)
	defer cancel(nil)
	if hard > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, hard, errHardLimit)
		defer stop()
	}
	softCh := make(chan struct{})
	if soft > 0 {
		t := time.AfterFunc(soft, func() { close(softCh) })
		defer t.Stop()
	}
	rt.st.begin(r, cancel)
	defer rt.st.finish(r)
	rt.metrics.waited(r.d.Timestamp, msg.ETA)

	if rt.cfg.EarlyAck {
		c.settle(r, r.d.Ack())
	}
	if rt.cfg.TrackStarted {
		c.store(r, celery.Result{TaskID: msg.ID, Status: celery.Started, Result: map[string]any{"pid": pid, "hostname": rt.cfg.Hostname}})
	}
	rt.events.send("task-started", func() map[string]any { return map[string]any{"uuid": msg.ID} })

	task := &Task{ID: msg.ID, Name: msg.Task, Args: msg.Args, Kwargs: msg.Kwargs, Retries: msg.Retries, Request: msg, soft: softCh}
	type outcome struct {
		v     any
		err   error
		trace string
	}
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- outcome{err: fmt.Errorf("panic: %v", p), trace: string(debug.Stack())}
			}
		}()
		v, err := reg.h(ctx, task)
		done <- outcome{v: v, err: err}
	}()
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		// A handler that ignores its context is abandoned: the slot and
		// the message are settled now, at the limit.
		o = outcome{err: context.Cause(ctx)}
	}
	if cause := context.Cause(ctx); cause != nil && o.err != nil && ctx.Err() != nil {
		o.err = cause
	}
	runtime := time.Since(r.started)
	// The render is over: what follows (result, events, links, ack) waits
	// on the broker, up to its timeouts during an outage, and must not keep
	// the next task from its slot meanwhile.
	release()

	var retry *Retry
	rt.metrics.ran(msg.Task, runtime)
	switch {
	case o.err == nil:
		rt.metrics.finished(msg.Task, outcomeSucceeded)
		c.success(r, o.v, runtime)
	case errors.Is(o.err, errColdShutdown):
		c.requeueStarted(r)
		if c.countsStarts() && r.counted {
			c.endStart(r, true)
		}
		return
	case errors.Is(o.err, errTerminated):
		rt.metrics.finished(msg.Task, outcomeRevoked)
		c.revoked(r, "terminated", false)
	case errors.Is(o.err, errHardLimit):
		rt.metrics.finished(msg.Task, outcomeFailed)
		c.failure(r, celery.TimeLimitExceeded(hard.Seconds()), nil)
	case errors.As(o.err, &retry):
		rt.metrics.finished(msg.Task, outcomeRetried)
		c.retry(r, retry, reg.opts.MaxRetries)
	default:
		rt.metrics.finished(msg.Task, outcomeFailed)
		var trace *string
		if o.trace != "" {
			trace = &o.trace
		}
		c.failure(r, exceptionInfo(o.err), trace)
		c.recordFailure(r, o.err)
	}
	// A delivery that died while its task ran comes back: its ack is
	// refused and the broker redelivers it.
	comesBack := !r.acked && r.d.Stale()
	if !r.acked {
		c.settle(r, r.d.Ack())
	}
	if c.countsStarts() && r.counted {
		c.endStart(r, comesBack)
	}
}

// limits are the message's [hard, soft] time limits, else the task's.
func limits(m *celery.Message, o TaskOptions) (hard, soft time.Duration) {
	hard, soft = o.HardLimit, o.SoftLimit
	if m.TimeLimit[0] != nil && *m.TimeLimit[0] > 0 {
		hard = time.Duration(*m.TimeLimit[0] * float64(time.Second))
	}
	if m.TimeLimit[1] != nil && *m.TimeLimit[1] > 0 {
		soft = time.Duration(*m.TimeLimit[1] * float64(time.Second))
	}
	return hard, soft
}

// requeueStarted puts back a task cancelled by a cold shutdown: a late-ack
// message is simply requeued; an early-acked one is republished, since the
// broker already forgot it.
func (c *consumer) requeueStarted(r *request) {
	if !r.acked {
		c.settle(r, r.d.Nack(true))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), quickWait)
	defer cancel()
	if err := c.rt.conn.Publish(ctx, "", r.queue.Name, republishable(r.d)); err != nil {
		c.rt.log.Error("task lost in cold shutdown: cannot republish an early-acked message", "id", r.msg.ID, "err", err)
	}
}

func (c *consumer) success(r *request, v any, runtime time.Duration) {
	msg := r.msg
	c.store(r, celery.Result{TaskID: msg.ID, Status: celery.Success, Result: v, Children: []any{}})
	c.rt.events.send("task-succeeded", func() map[string]any {
		return map[string]any{"uuid": msg.ID, "result": celery.SafeRepr(v, reprLimit), "runtime": runtime.Seconds()}
	})
	for _, cb := range msg.Embed.Callbacks {
		c.sendSignature(r, cb, []any{v}, nil)
	}
	if n := len(msg.Embed.Chain); n > 0 {
		c.sendSignature(r, msg.Embed.Chain[n-1], []any{v}, msg.Embed.Chain[:n-1])
	}
}

// failure stores FAILURE, tells monitors, calls errbacks, and fails the rest
// of a chain, whose clients would otherwise wait forever.
func (c *consumer) failure(r *request, exc celery.ExceptionInfo, trace *string) {
	msg := r.msg
	c.store(r, celery.Result{TaskID: msg.ID, Status: celery.Failure, Result: exc, Traceback: trace, Children: []any{}})
	tb := ""
	if trace != nil {
		tb = *trace
	}
	c.rt.events.send("task-failed", func() map[string]any {
		return map[string]any{"uuid": msg.ID, "exception": exc.Repr(), "traceback": tb}
	})
	c.rt.log.Info("task failed", "task", msg.Task, "id", msg.ID, "exception", exc.Repr())
	for _, eb := range msg.Embed.Errbacks {
		c.sendSignature(r, eb, []any{msg.ID}, nil)
	}
	for _, next := range msg.Embed.Chain {
		id, _ := next.Options["task_id"].(string)
		replyTo, _ := next.Options["reply_to"].(string)
		if id == "" {
			continue
		}
		fake := &celery.Message{ID: id, Task: next.Task, ReplyTo: replyTo}
		c.storeFor(fake, celery.Result{TaskID: id, Status: celery.Failure, Result: exc, Traceback: trace, Children: []any{}})
	}
}

// DeadLetterer is a handler error whose task should also be recorded in
// the dead-letter exchange, with this reason, when it finally fails.
type DeadLetterer interface{ DeadLetterReason() string }

func (c *consumer) recordFailure(r *request, err error) {
	var dl DeadLetterer
	if !errors.As(err, &dl) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishWait)
	defer cancel()
	c.rt.metrics.deadLetter("task_failed")
	if perr := deadLetter(ctx, c.rt.conn, c.rt.cfg.DeadLetterExchange, c.rt.cfg.Hostname, r.d, r.queue.Name, dl.DeadLetterReason()); perr != nil {
		c.rt.log.Error("failed task not dead-lettered", "id", r.msg.ID, "err", perr)
	}
}

// revoked settles a task that is not to run, or was stopped.
func (c *consumer) revoked(r *request, reason string, expired bool) {
	c.store(r, celery.Result{TaskID: r.msg.ID, Status: celery.Revoked, Result: celery.TaskRevoked(reason), Children: []any{}})
	c.rt.events.send("task-revoked", func() map[string]any {
		return map[string]any{"uuid": r.msg.ID, "terminated": reason == "terminated", "signum": nil, "expired": expired}
	})
}

// retry republishes the task with the same id, retries+1 and an eta, and
// stores RETRY; past its limit the wrapped error is the final failure.
func (c *consumer) retry(r *request, rt *Retry, defaultMax int) {
	msg := r.msg
	maxRetries := defaultMax
	if rt.MaxRetries != nil {
		maxRetries = *rt.MaxRetries
	}
	cause := rt.Err
	if cause == nil {
		cause = errors.New("retry")
	}
	if msg.Retries >= maxRetries {
		c.failure(r, exceptionInfo(cause), nil)
		c.recordFailure(r, cause)
		return
	}
	if !r.acked && r.d.Stale() {
		// The broker already holds the original again and redelivers it:
		// a retry published now would make the task run twice.
		c.rt.log.Info("retry not scheduled: the delivery's channel closed and the broker redelivers the task", "id", msg.ID)
		return
	}
	next := *msg
	next.Retries++
	eta := time.Now().Add(rt.Countdown).UTC()
	next.ETA = &eta
	next.ParentID = msg.ID
	if next.RootID == "" {
		next.RootID = msg.ID
	}
	next.Headers = cleanHeaders(msg.Headers)
	pub, err := celery.Encode(&next)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), publishWait)
		err = c.rt.conn.Publish(ctx, r.d.Exchange, r.d.RoutingKey, pub)
		cancel()
	}
	if err != nil {
		c.failure(r, exceptionInfo(fmt.Errorf("cannot schedule retry: %w (after: %v)", err, cause)), nil)
		return
	}
	exc := exceptionInfo(cause)
	c.store(r, celery.Result{TaskID: msg.ID, Status: celery.Retry, Result: exc, Children: []any{}})
	c.rt.events.send("task-retried", func() map[string]any {
		return map[string]any{"uuid": msg.ID, "exception": exc.Repr(), "traceback": ""}
	})
}

// sendSignature publishes a callback, errback or the next link of a chain,
// as Celery does: the parent's result first in its args unless immutable.
func (c *consumer) sendSignature(r *request, sig celery.Signature, prefix []any, chain []celery.Signature) {
	parent := r.msg
	id, _ := sig.Options["task_id"].(string)
	if id == "" {
		id = uuid.NewString()
	}
	args := sig.Args
	if !sig.Immutable {
		args = append(append([]any{}, prefix...), sig.Args...)
	}
	root := parent.RootID
	if root == "" {
		root = parent.ID
	}
	m := &celery.Message{ID: id, Task: sig.Task, Args: args, Kwargs: sig.Kwargs, RootID: root, ParentID: parent.ID,
		Embed: celery.Embed{Chain: chain}, Origin: c.rt.cfg.Hostname}
	m.ReplyTo, _ = sig.Options["reply_to"].(string)
	exchange, key := r.d.Exchange, r.d.RoutingKey
	if q, ok := sig.Options["queue"].(string); ok && q != "" {
		exchange, key = "", q
	}
	if k, ok := sig.Options["routing_key"].(string); ok && k != "" {
		key = k
		if ex, ok := sig.Options["exchange"].(string); ok {
			exchange = ex
		}
	}
	pub, err := celery.Encode(m)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), publishWait)
		err = c.rt.conn.Publish(ctx, exchange, key, pub)
		cancel()
	}
	if err != nil {
		c.rt.log.Error("cannot send linked task", "task", sig.Task, "id", id, "parent", parent.ID, "err", err)
	}
}

// waitETA parks a task with a distant eta in a delay queue (and acks it),
// or holds one due within holdLimit. It reports whether to go on running.
func (c *consumer) waitETA(r *request, stopping <-chan struct{}) bool {
	wait := time.Until(*r.msg.ETA)
	if wait > holdLimit {
		level := celery.DelayLevels[0]
		for _, d := range celery.DelayLevels {
			if d <= wait {
				level = d
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), publishWait)
		defer cancel()
		if err := c.rt.conn.Publish(ctx, "", r.queue.DelayQueue(level), copyOf(r)); err != nil {
			c.rt.log.Warn("cannot park eta task; holding it", "id", r.msg.ID, "err", err)
		} else {
			c.settle(r, r.d.Ack())
			return false
		}
	}
	c.rt.st.move(r, nil, c.rt.st.scheduled)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		c.rt.st.move(r, c.rt.st.scheduled, nil)
		return true
	case <-stopping:
		c.rt.st.move(r, c.rt.st.scheduled, nil)
		c.giveBack(r)
		return false
	case <-r.d.Lost():
		c.rt.st.move(r, c.rt.st.scheduled, nil)
		c.dropStale(r.d, r.msg)
		return false
	}
}

// store records r's state. Unless the message was acked already (early
// ack), a result whose delivery dies is not waited for: the broker
// redelivers the task and its next run stores the result, so waiting out
// the outage (up to 30 s) would only hold the goroutine and, for RPC
// results, send a stale state later.
func (c *consumer) store(r *request, res celery.Result) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	if !r.acked && r.d != nil {
		if r.d.Stale() {
			cancel(errDeliveryLost)
		}
		finished := make(chan struct{})
		defer close(finished)
		go func() {
			select {
			case <-r.d.Lost():
				cancel(errDeliveryLost)
			case <-finished:
			}
		}()
	}
	c.storeCtx(ctx, r.msg, res)
}

func (c *consumer) storeFor(msg *celery.Message, res celery.Result) {
	c.storeCtx(context.Background(), msg, res)
}

func (c *consumer) storeCtx(ctx context.Context, msg *celery.Message, res celery.Result) {
	if msg.IgnoreResult {
		return
	}
	if context.Cause(ctx) != errDeliveryLost {
		now := time.Now().UTC()
		res.DateDone = &now
		sctx, cancel := context.WithTimeout(ctx, publishWait)
		err := c.rt.results.Store(sctx, msg, res)
		cancel()
		if err == nil {
			return
		}
		if context.Cause(ctx) != errDeliveryLost {
			c.rt.log.Error("cannot store task state", "id", msg.ID, "state", res.Status, "err", err)
			return
		}
	}
	c.rt.log.Info("task state not stored", "id", msg.ID, "state", res.Status, "reason", errDeliveryLost)
}

// cleanHeaders drops RabbitMQ's headers and our redelivery and start marks
// before a retry is sent as a new task message: a retry is a fresh
// delivery, counted under a key of its own.
func cleanHeaders(h map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range h {
		out[k] = v
	}
	for _, k := range append(broker.RabbitMQHeaders(), HeaderRedeliveries, hdrStarted) {
		delete(out, k)
	}
	return out
}

// reprLimit is where Celery's saferepr cuts event fields.
const reprLimit = 1024

func receivedFields(m *celery.Message) map[string]any {
	f := map[string]any{
		"uuid": m.ID, "name": m.Task, "args": m.ArgsRepr, "kwargs": m.KwargsRepr,
		"root_id": m.RootID, "parent_id": m.ParentID, "retries": m.Retries, "eta": nil, "expires": nil,
	}
	if f["args"] == "" {
		f["args"] = celery.ArgsRepr(m.Args)
	}
	if f["kwargs"] == "" {
		f["kwargs"] = celery.KwargsRepr(m.Kwargs)
	}
	if m.ETA != nil {
		f["eta"] = m.ETA.Format(time.RFC3339Nano)
	}
	if m.Expires != nil {
		f["expires"] = m.Expires.Format(time.RFC3339Nano)
	}
	return f
}
