package fleet

import (
	"context"
	"sort"
	"time"

	"github.com/renderfarm/renderfarm/broker"
	"golang.org/x/sync/errgroup"
)

// Worker is one worker as the fleet view shows it, merged from its
// heartbeats and its stats reply. A worker that sends no events (celery
// worker --without-heartbeat) shows from stats alone; one that did not
// answer stats shows from its heartbeats alone.
type Worker struct {
	Name          string     `json:"name"`
	Version       string     `json:"version,omitempty"` // sw_ident/sw_ver of its heartbeats
	SlotsBusy     int        `json:"slots_busy"`        // tasks running, from the last heartbeat
	SlotsTotal    int        `json:"slots_total"`       // the pool's max-concurrency, from stats; 0 unknown
	TasksDone     int64      `json:"tasks_done"`        // processed (heartbeat), else stats' totals
	LastHeartbeat *time.Time `json:"last_heartbeat"`    // nil: none seen in the window
	Online        bool       `json:"online"`            // alive by its heartbeats, or answered stats
	Answered      bool       `json:"answered_stats"`    // replied to stats within the timeout
}

// Snapshot is the farm at one moment.
type Snapshot struct {
	Time       time.Time    `json:"time"`
	Workers    []Worker     `json:"workers"`
	Queues     []QueueDepth `json:"queues"`
	DeadLetter *QueueDepth  `json:"dead_letter,omitempty"`
	// Unacked is not measured: AMQP does not report it. Said in the
	// output so nobody reads the missing number as zero.
	Unacked string `json:"unacked"`
}

// UnackedNote is what the outputs say instead of an unacked count.
const UnackedNote = "unacked: not available over AMQP (rabbitmqctl list_queues name messages_unacknowledged)"

// SnapshotOptions say what to look at and for how long.
type SnapshotOptions struct {
	Queues     []string
	DeadLetter string        // "" leaves it out
	Window     time.Duration // how long to gather heartbeats (workers beat every 2 s)
	Timeout    time.Duration // stats' reply window
	// Heartbeats, when set, is a running listener to read instead of
	// listening for Window (a server keeps one).
	Heartbeats *Heartbeats
}

// Take looks at the farm: queue depths, heartbeats and stats, at once.
func Take(ctx context.Context, conn *broker.Conn, opts SnapshotOptions) (*Snapshot, error) {
	snap := &Snapshot{Unacked: UnackedNote}
	var (
		stats []NodeReply[Stats]
		beats []Beat
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		snap.Queues, snap.DeadLetter, err = DepthsWithDeadLetter(gctx, conn, opts.Queues, opts.DeadLetter)
		return err
	})
	g.Go(func() error {
		var err error
		stats, err = Ask[Stats](gctx, NewControl(conn), "stats", nil, CallOptions{Timeout: opts.Timeout})
		return err
	})
	g.Go(func() error {
		hb := opts.Heartbeats
		if hb == nil {
			hb = NewHeartbeats(conn, opts.Window)
			if err := hb.Start(gctx); err != nil {
				return err
			}
			defer hb.Stop(context.WithoutCancel(gctx))
			select {
			case <-time.After(opts.Window):
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		beats = hb.Latest()
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	snap.Time = time.Now()
	snap.Workers = mergeWorkers(beats, stats, snap.Time)
	return snap, nil
}

func mergeWorkers(beats []Beat, stats []NodeReply[Stats], now time.Time) []Worker {
	byName := map[string]*Worker{}
	get := func(name string) *Worker {
		w := byName[name]
		if w == nil {
			w = &Worker{Name: name}
			byName[name] = w
		}
		return w
	}
	for _, b := range beats {
		w := get(b.Hostname)
		t := b.Time
		w.LastHeartbeat = &t
		w.Online = b.Alive(now)
		w.SlotsBusy, w.TasksDone = b.Active, b.Processed
		if b.SWIdent != "" || b.SWVer != "" {
			w.Version = b.SWIdent + " " + b.SWVer
		}
	}
	for _, r := range stats {
		if r.Err != nil {
			continue
		}
		w := get(r.Node)
		w.Online, w.Answered = true, true
		w.SlotsTotal = r.Value.Pool.MaxConcurrency
		if w.LastHeartbeat == nil {
			w.TasksDone = r.Value.Done()
		}
	}
	out := make([]Worker, 0, len(byName))
	for _, w := range byName {
		out = append(out, *w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// View is the fleet as a long-running server shows it (the web tier's
// status page): it keeps a heartbeat listener running, so a snapshot
// costs one stats call and the queue reads, not a wait for heartbeats.
type View struct {
	conn *broker.Conn
	hb   *Heartbeats
	opts SnapshotOptions
}

// NewView watches queues and the dead-letter queue ("" for none); stats
// replies are gathered for timeout.
func NewView(conn *broker.Conn, queues []string, deadLetter string, timeout time.Duration) *View {
	hb := NewHeartbeats(conn, time.Minute)
	return &View{conn: conn, hb: hb, opts: SnapshotOptions{Queues: queues, DeadLetter: deadLetter, Timeout: timeout, Heartbeats: hb}}
}

// Start starts listening to heartbeats; it waits for the broker.
func (v *View) Start(ctx context.Context) error { return v.hb.Start(ctx) }

// Stop stops listening.
func (v *View) Stop(ctx context.Context) { v.hb.Stop(ctx) }

// Snapshot is the fleet now.
func (v *View) Snapshot(ctx context.Context) (*Snapshot, error) { return Take(ctx, v.conn, v.opts) }
