package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// The typed answers of the inspect commands, as Celery's workers send
// them (celery/worker/control.py); fields a worker leaves out stay zero.

// Stats is a node's `stats` reply, the parts the fleet view uses.
type Stats struct {
	Total  map[string]int64 `json:"total"` // tasks accepted, by name
	PID    int              `json:"pid"`
	Uptime float64          `json:"uptime"`
	Pool   struct {
		MaxConcurrency int `json:"max-concurrency"`
	} `json:"pool"`
	PrefetchCount int `json:"prefetch_count"`
}

// Done is the tasks the node has taken since it started, all names.
func (s Stats) Done() int64 {
	var n int64
	for _, v := range s.Total {
		n += v
	}
	return n
}

// TaskInfo is one entry of `active` or `reserved`.
type TaskInfo struct {
	ID           string  `json:"id"`
	Name         string  `json:"name"`
	Hostname     string  `json:"hostname"`
	TimeStart    float64 `json:"time_start"` // Unix seconds; 0 until started
	Acknowledged bool    `json:"acknowledged"`
	WorkerPID    int     `json:"worker_pid"`
	DeliveryInfo struct {
		RoutingKey  string `json:"routing_key"`
		Redelivered bool   `json:"redelivered"`
	} `json:"delivery_info"`
}

// NodeReply is one node's typed answer.
type NodeReply[T any] struct {
	Node  string
	Value T
	Err   error // the reply did not have the expected shape
}

// Ask calls method and decodes each node's reply as T, sorted by node.
func Ask[T any](ctx context.Context, c *Control, method string, args map[string]any, opts CallOptions) ([]NodeReply[T], error) {
	rs, err := c.Call(ctx, method, args, opts)
	out := make([]NodeReply[T], 0, len(rs))
	for _, r := range rs {
		var v T
		derr := json.Unmarshal(r.Body, &v)
		if derr != nil {
			derr = fmt.Errorf("fleet: %s reply of %s: %w", method, r.Node, derr)
		}
		out = append(out, NodeReply[T]{Node: r.Node, Value: v, Err: derr})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, err
}

// OK is the {"ok": ...} or {"error": ...} answer of ping, revoke and the
// other control commands.
type OK struct {
	OK    string `json:"ok,omitempty"`
	Error string `json:"error,omitempty"`
}

// Revoke asks every node (or those named) to revoke the tasks; terminate
// also stops them if running, as `celery control revoke --terminate`.
func (c *Control) Revoke(ctx context.Context, ids []string, terminate bool, opts CallOptions) ([]NodeReply[OK], error) {
	list := make([]any, len(ids))
	for i, id := range ids {
		list[i] = id
	}
	return Ask[OK](ctx, c, "revoke", map[string]any{"task_id": list, "terminate": terminate, "signal": "SIGTERM"}, opts)
}
