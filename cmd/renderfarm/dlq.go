package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/renderfarm/renderfarm/worker"
	"github.com/urfave/cli/v2"
)

// dlqDialWait bounds the wait for the broker: an engineer at a terminal
// wants an error, not a command that hangs while RabbitMQ is away.
const dlqDialWait = 30 * time.Second

// testHaltEnv is for the tests alone: replay stops dead after that many
// confirmed republishes, before taking the last one from the dead-letter
// queue, and waits to be killed. It is the one moment a crash leaves a
// message in both queues, and the tests kill the command there.
const testHaltEnv = "RENDERFARM_TEST_DLQ_HALT_AFTER_PUBLISH"

func dlqCommand() *cli.Command {
	return &cli.Command{
		Name:  "dlq",
		Usage: "browse, replay and purge dead-lettered messages",
		UsageText: `renderfarm dlq ls
renderfarm dlq show 0192f1c4-7d1e-7c3a-9f00-5a1d2c3b4e5f
renderfarm dlq replay --all --reason not_found`,
		Description: `Workers send malformed and poison messages, and renders that failed for
good, to the dead-letter exchange (--dead-letter-exchange) and its queue of
the same name, with the reason, the queue they came from and their
redelivery count in headers. These commands read that queue without
reordering it; a replay takes a message out only once its copy is
confirmed in the work queue.`,
		Subcommands: []*cli.Command{dlqLsCommand(), dlqShowCommand(), dlqReplayCommand(), dlqPurgeCommand()},
	}
}

// dlqFlags are the flags every dlq subcommand takes.
func dlqFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{brokerFlag(), deadLetterFlag(), outputFlag(), logLevelFlag()}, extra...)
}

// filterFlags narrow ls and replay to some messages.
func filterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "reason", EnvVars: []string{"RENDERFARM_DLQ_REASON"}, Usage: "only messages whose reason contains SUBSTRING"},
		&cli.StringFlag{Name: "task", EnvVars: []string{"RENDERFARM_DLQ_TASK"}, Usage: "only messages of the task called NAME, e.g. renderfarm.render"},
	}
}

func dlqLsCommand() *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: "list dead-lettered messages: id, task, origin queue, redeliveries, reason, request",
		UsageText: `renderfarm dlq ls
renderfarm dlq ls --reason malformed --output json`,
		Flags: dlqFlags(filterFlags()...),
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageError("dlq ls takes no arguments (show takes ids)")
			}
			if _, err := outputJSON(c); err != nil {
				return err
			}
			var msgs []deadLetter
			err := withDLQ(c, func(_ *dlqBrowse, all []deadLetter) error {
				msgs = selectDead(all, nil, c.String("reason"), c.String("task"))
				return nil
			})
			if err != nil {
				return err
			}
			if msgs == nil {
				msgs = []deadLetter{}
			}
			return printOutput(c, msgs, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tTASK\tQUEUE\tREDELIVERIES\tREASON\tREQUEST")
				for _, m := range msgs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, dash(m.Task), dash(m.Queue), m.Redeliveries,
						clip(m.Reason, 60), clip(m.request(), 80))
				}
			})
		},
	}
}

func dlqShowCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "print dead-lettered messages in full: headers, request, and the body when it does not decode",
		ArgsUsage: "ID...",
		UsageText: "renderfarm dlq show 0192f1c4-7d1e-7c3a-9f00-5a1d2c3b4e5f --output json",
		Flags:     dlqFlags(),
		Action: func(c *cli.Context) error {
			ids := c.Args().Slice()
			if len(ids) == 0 {
				return usageError("name at least one message id (see renderfarm dlq ls)")
			}
			if _, err := outputJSON(c); err != nil {
				return err
			}
			var found []deadLetter
			err := withDLQ(c, func(_ *dlqBrowse, all []deadLetter) error {
				found = selectDead(all, ids, "", "")
				return nil
			})
			if err != nil {
				return err
			}
			for i := range found {
				found[i].full()
			}
			if found == nil {
				found = []deadLetter{}
			}
			if err := printOutput(c, found, func(w io.Writer) {
				for i, m := range found {
					if i > 0 {
						fmt.Fprintln(w)
					}
					m.print(w)
				}
			}); err != nil {
				return err
			}
			return notFound(ids, found)
		},
	}
}

func dlqReplayCommand() *cli.Command {
	return &cli.Command{
		Name:      "replay",
		Usage:     "send dead-lettered messages back to their work queue, as new deliveries",
		ArgsUsage: "ID...|--all",
		UsageText: `renderfarm dlq replay 0192f1c4-7d1e-7c3a-9f00-5a1d2c3b4e5f
renderfarm dlq replay --all --reason not_found --task renderfarm.render`,
		Description: `Republishes each selected message to the queue it was dead-lettered from
(or to --queue, when given), without the dead-letter headers and with its
redelivery count reset, and takes it out of the dead-letter queue once the
broker has confirmed the copy. A message that fails stays dead-lettered.`,
		Flags: dlqFlags(append(filterFlags(),
			&cli.BoolFlag{Name: "all", EnvVars: []string{"RENDERFARM_DLQ_ALL"}, Usage: "every message that matches --reason and --task"},
			queueFlag(),
		)...),
		Action: runDLQReplay,
	}
}

func dlqPurgeCommand() *cli.Command {
	return &cli.Command{
		Name:      "purge",
		Usage:     "delete every message in the dead-letter queue, after asking",
		UsageText: "renderfarm dlq purge --yes",
		Flags:     dlqFlags(yesFlag()),
		Action: func(c *cli.Context) error {
			if _, err := outputJSON(c); err != nil {
				return err
			}
			name := c.String("dead-letter-exchange")
			if err := confirm(c, fmt.Sprintf("Delete every message in the dead-letter queue %s?", name)); err != nil {
				return err
			}
			conn, err := dialDLQ(c)
			if err != nil {
				return err
			}
			defer conn.Close()
			n, err := conn.PurgeQueue(c.Context, name)
			if err != nil {
				return err
			}
			return printOutput(c, map[string]any{"queue": name, "purged": n}, func(w io.Writer) {
				fmt.Fprintf(w, "purged %d messages from %s\n", n, name)
			})
		},
	}
}

// replayed is one message's outcome in dlq replay's output.
type replayed struct {
	ID       string `json:"id"`
	Task     string `json:"task,omitempty"`
	Queue    string `json:"queue"`
	Replayed bool   `json:"replayed"`
	Error    string `json:"error,omitempty"`
}

func runDLQReplay(c *cli.Context) error {
	ids := c.Args().Slice()
	if len(ids) == 0 && !c.Bool("all") {
		return usageError("name message ids, or --all (with --reason and --task to narrow it)")
	}
	if len(ids) > 0 && c.Bool("all") {
		return usageError("name message ids or --all, not both")
	}
	if _, err := outputJSON(c); err != nil {
		return err
	}
	// An explicit --queue (or RENDERFARM_QUEUE) sends every message there;
	// otherwise each goes back where it was dead-lettered from.
	var to *celery.Queue
	if c.IsSet("queue") {
		qs, err := queues(c, "queue", true)
		if err != nil {
			return err
		}
		to = &qs[0]
	}
	halt := -1
	if v := os.Getenv(testHaltEnv); v != "" {
		halt, _ = strconv.Atoi(v)
	}
	var results []replayed
	var found []deadLetter
	err := withDLQ(c, func(b *dlqBrowse, all []deadLetter) error {
		found = selectDead(all, ids, c.String("reason"), c.String("task"))
		for _, m := range found {
			r := replayed{ID: m.ID, Task: m.Task}
			exchange, key := m.route(to, c.String("queue"))
			r.Queue = key
			if exchange != "" {
				r.Queue = exchange + ":" + key
			}
			err := b.replay(c.Context, m, exchange, key, func() {
				if halt--; halt == 0 {
					fmt.Fprintln(os.Stderr, "renderfarm: halted between republish and ack (", testHaltEnv, ")")
					<-c.Context.Done() // until killed
				}
			})
			if err != nil {
				r.Error = err.Error()
			}
			r.Replayed = err == nil
			results = append(results, r)
			if errors.Is(err, broker.ErrBrowseLost) {
				// Every message not yet taken is back in the dead-letter
				// queue; stop rather than fail each of them.
				break
			}
		}
		return nil
	})
	if results == nil {
		results = []replayed{}
	}
	if perr := printOutput(c, results, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tTASK\tQUEUE\tRESULT")
		for _, r := range results {
			res := "replayed"
			if !r.Replayed {
				res = "failed: " + r.Error
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.ID, dash(r.Task), r.Queue, res)
		}
	}); perr != nil && err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		if !r.Replayed {
			failed++
		}
	}
	switch {
	case failed > 0 && failed == len(results):
		return cli.Exit(fmt.Sprintf("none of %d replays succeeded; the messages are still dead-lettered", failed), exitFailure)
	case failed > 0:
		return cli.Exit(fmt.Sprintf("%d of %d replays failed; those messages are still dead-lettered", failed, len(results)), exitPartial)
	}
	return notFound(ids, found)
}

// dlqBrowse is one pass over the dead-letter queue on a connection.
type dlqBrowse struct {
	conn *broker.Conn
	b    *broker.Browser
}

// replay sends m back to exchange/key and only then takes it out of the
// dead-letter queue. The order is what makes a crash safe: until Publish
// returns nil the broker may not hold the copy, and the original is not
// taken; once it has, the original is taken. A crash (or lost connection)
// between the two returns the original to the dead-letter queue with its
// copy already queued, so the only overlap is a message in both places,
// run again if replayed again, and never one in neither. The ack that takes
// it is not confirmed either, so it too can be lost, again leaving both.
// halted runs between the two, for the crash test.
func (s *dlqBrowse) replay(ctx context.Context, m deadLetter, exchange, key string, halted func()) error {
	pub := broker.Republishing(m.d, worker.ReplayDropsHeaders()...)
	if err := s.conn.Publish(ctx, exchange, key, pub); err != nil {
		return err
	}
	halted()
	if err := s.b.Take(m.d); err != nil {
		return fmt.Errorf("republished, but still in the dead-letter queue too (replaying it again runs it twice): %w", err)
	}
	return nil
}

// withDLQ reads the whole dead-letter queue in one browse and hands it to
// f; what f does not take goes back in place when the browse closes. The
// close is confirmed by the broker, so f's takes are applied by the time
// withDLQ returns nil.
func withDLQ(c *cli.Context, f func(*dlqBrowse, []deadLetter) error) error {
	conn, err := dialDLQ(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	name := c.String("dead-letter-exchange")
	// The workers declare it the same way; a dead-letter queue that does
	// not exist yet is then simply empty.
	if err := conn.Declare(c.Context, celery.DeadLetterTopology(name)); err != nil {
		return err
	}
	b, err := conn.Browse(c.Context, name)
	if err != nil {
		return err
	}
	var all []deadLetter
	for {
		d, ok, err := b.Next(c.Context)
		if err != nil {
			_ = b.Close()
			return err
		}
		if !ok {
			break
		}
		all = append(all, readDeadLetter(d))
	}
	ferr := f(&dlqBrowse{conn: conn, b: b}, all)
	if err := b.Close(); err != nil && ferr == nil {
		return err
	}
	return ferr
}

func dialDLQ(c *cli.Context) (*broker.Conn, error) {
	log, err := commandLogger(c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, dlqDialWait)
	defer cancel()
	conn, err := broker.Dial(ctx, broker.Config{URL: c.String("broker"), Name: "renderfarm dlq", Logger: log})
	if err != nil {
		return nil, dialError(err)
	}
	return conn, nil
}

// deadLetter is one dead-lettered message as the commands show it.
type deadLetter struct {
	ID   string `json:"id"`
	Task string `json:"task,omitempty"`
	// Queue is where it was dead-lettered from, and where replay sends it.
	Queue  string `json:"queue,omitempty"`
	Reason string `json:"reason"`
	// Redeliveries is the count recorded when it was dead-lettered:
	// x-delivery-count on quorum queues, the worker's own on classic ones.
	Redeliveries int64          `json:"redeliveries"`
	DeadAt       string         `json:"dead_at,omitempty"`
	Worker       string         `json:"worker,omitempty"`
	Args         []any          `json:"args,omitempty"`
	Kwargs       map[string]any `json:"kwargs,omitempty"`
	// Malformed says why the message does not decode as a Celery task.
	Malformed string `json:"malformed,omitempty"`
	// For show only.
	ContentType string         `json:"content_type,omitempty"`
	Headers     map[string]any `json:"headers,omitempty"`
	Body        string         `json:"body,omitempty"`

	d amqp.Delivery
	// As the client wrote them (celery's argsrepr and kwargsrepr keep the
	// caller's key order: source first).
	argsRepr, kwargsRepr string
}

func readDeadLetter(d amqp.Delivery) deadLetter {
	h := d.Headers
	m := deadLetter{d: d,
		Reason: headerString(h, worker.HeaderDeadReason),
		Queue:  headerString(h, worker.HeaderDeadQueue),
		DeadAt: headerString(h, worker.HeaderDeadAt),
		Worker: headerString(h, worker.HeaderDeadWorker),
	}
	// Dead-lettered by RabbitMQ itself (a quorum queue's delivery limit)
	// rather than by a worker.
	if m.Reason == "" {
		m.Reason = headerString(h, "x-first-death-reason")
	}
	if m.Queue == "" {
		m.Queue = headerString(h, "x-first-death-queue")
	}
	if n, ok := celery.TableInt(h, "x-delivery-count"); ok {
		m.Redeliveries = n
	} else if n, ok := celery.TableInt(h, worker.HeaderRedeliveries); ok {
		m.Redeliveries = n
	}
	if msg, err := celery.Decode(d); err == nil {
		m.ID, m.Task, m.Args, m.Kwargs = msg.ID, msg.Task, msg.Args, msg.Kwargs
		m.argsRepr, m.kwargsRepr = msg.ArgsRepr, msg.KwargsRepr
	} else {
		m.Malformed = err.Error()
		m.ID, m.Task = headerString(h, "id"), headerString(h, "task")
	}
	if m.ID == "" {
		m.ID = d.MessageId
	}
	if m.ID == "" {
		sum := sha256.Sum256(d.Body)
		m.ID = "sha256:" + hex.EncodeToString(sum[:8])
	}
	return m
}

// full adds what show prints beyond ls: every header, and the body when
// it does not decode.
func (m *deadLetter) full() {
	m.ContentType = m.d.ContentType
	m.Headers = map[string]any(m.d.Headers)
	if m.Malformed != "" {
		if utf8.Valid(m.d.Body) {
			m.Body = string(m.d.Body)
		} else {
			m.Body = fmt.Sprintf("%q", m.d.Body)
		}
	}
}

// request is the task's arguments as Python prints them.
func (m deadLetter) request() string {
	if m.Malformed != "" {
		return "(malformed)"
	}
	args, kwargs := m.argsRepr, m.kwargsRepr
	if args == "" {
		args = celery.ArgsRepr(m.Args)
	}
	if kwargs == "" {
		kwargs = celery.KwargsRepr(m.Kwargs)
	}
	switch {
	case len(m.Args) == 0:
		return kwargs
	case len(m.Kwargs) == 0:
		return args
	}
	return args + " " + kwargs
}

func (m deadLetter) print(w io.Writer) {
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s:\t%s\n", k, v)
		}
	}
	row("ID", m.ID)
	row("Task", m.Task)
	row("Queue", m.Queue)
	row("Reason", m.Reason)
	row("Redeliveries", strconv.FormatInt(m.Redeliveries, 10))
	row("Dead at", m.DeadAt)
	row("Worker", m.Worker)
	row("Content type", m.ContentType)
	row("Malformed", m.Malformed)
	if m.Malformed == "" {
		req := map[string]any{"args": m.Args, "kwargs": m.Kwargs}
		if b, err := json.MarshalIndent(req, "\t", "  "); err == nil {
			row("Request", string(b))
		} else {
			row("Request", m.request())
		}
	}
	row("Body", m.Body)
	if b, err := json.MarshalIndent(m.Headers, "\t", "  "); err == nil {
		row("Headers", string(b))
	}
}

// route is where replay sends m: to, when --queue was given; else the
// queue it came from, through the default exchange as the worker's own
// requeues go; else the --queue default.
func (m deadLetter) route(to *celery.Queue, fallback string) (exchange, key string) {
	switch {
	case to != nil:
		return to.Route()
	case m.Queue != "":
		return "", m.Queue
	}
	return "", fallback
}

// selectDead picks the messages named by ids (all when none) whose reason
// contains reason and whose task is task (either "" for any).
func selectDead(all []deadLetter, ids []string, reason, task string) []deadLetter {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []deadLetter
	for _, m := range all {
		if len(ids) > 0 && !want[m.ID] || reason != "" && !strings.Contains(m.Reason, reason) || task != "" && m.Task != task {
			continue
		}
		out = append(out, m)
	}
	return out
}

// notFound is exitNotFound naming the ids that found has none of.
func notFound(ids []string, found []deadLetter) error {
	seen := map[string]bool{}
	for _, m := range found {
		seen[m.ID] = true
	}
	var missing []string
	for _, id := range ids {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return cli.Exit("not in the dead-letter queue: "+strings.Join(missing, ", "), exitNotFound)
	}
	return nil
}

func headerString(h amqp.Table, key string) string {
	if s, ok := h[key].(string); ok {
		return s
	}
	return ""
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clip shortens s to n runes for a table cell, on one line.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
