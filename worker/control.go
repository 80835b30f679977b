package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
)

// controlServer answers Celery's remote control (`celery inspect ...`,
// `celery control ...`, Flower) on the worker's pidbox queue, with replies
// in Celery's format so the Python tools read them unchanged.
type controlServer struct {
	rt        *deps
	heartbeat *heartbeat
	consumer  *consumer
	shutdown  func() // asks the worker for a warm shutdown

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func newControlServer(rt *deps, hb *heartbeat, c *consumer, shutdown func()) *controlServer {
	return &controlServer{rt: rt, heartbeat: hb, consumer: c, shutdown: shutdown, done: make(chan struct{})}
}

// pidboxTopology is exactly what kombu declares for a worker's mailbox.
func pidboxTopology(hostname string) broker.Topology {
	q := celery.PidboxQueue(hostname)
	return broker.Topology{
		Exchanges: []broker.Exchange{
			{Name: celery.PidboxExchange, Kind: "fanout"},
			{Name: celery.ReplyPidboxExchange, Kind: "direct"},
		},
		Queues: []broker.Queue{{Name: q, AutoDelete: true, Args: amqp.Table{
			"x-expires": int32(10000), "x-message-ttl": int32(300000),
		}}},
		Bindings: []broker.Binding{{Queue: q, Exchange: celery.PidboxExchange}},
	}
}

// Start declares the mailbox and serves it.
func (s *controlServer) Start(ctx context.Context) error {
	if err := s.rt.conn.Declare(ctx, pidboxTopology(s.rt.cfg.Hostname)); err != nil {
		return fmt.Errorf("declaring the control mailbox: %w", err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	ch, err := s.rt.conn.Consume(cctx, broker.ConsumeOptions{Queue: celery.PidboxQueue(s.rt.cfg.Hostname), Prefetch: 16})
	if err != nil {
		cancel()
		return fmt.Errorf("consuming the control mailbox: %w", err)
	}
	s.cancel = cancel
	go func() {
		defer close(s.done)
		for d := range ch {
			s.serve(d)
		}
	}()
	return nil
}

// Shutdown stops serving; a command being answered completes first.
func (s *controlServer) Shutdown(ctx context.Context) {
	s.once.Do(func() {
		if s.cancel == nil {
			close(s.done)
			return
		}
		s.cancel()
	})
	select {
	case <-s.done:
	case <-ctx.Done():
	}
}

func (s *controlServer) serve(d *broker.Delivery) {
	defer d.Ack()
	req, err := celery.DecodeControl(d.Delivery)
	if err != nil {
		s.rt.log.Warn("ignoring malformed control message", "err", err)
		return
	}
	if !req.For(s.rt.cfg.Hostname) {
		return
	}
	if req.Expires != nil && time.Now().After(*req.Expires) {
		return
	}
	clock := s.rt.st.clock.adjust(req.Clock)
	reply, answer := s.dispatch(req)
	if !answer || req.ReplyRoutingKey == "" || req.Ticket == "" {
		return
	}
	pub, err := celery.EncodeControlReply(s.rt.cfg.Hostname, req.Ticket, clock, reply)
	if err != nil {
		s.rt.log.Warn("cannot encode control reply", "method", req.Method, "err", err)
		return
	}
	exchange := req.ReplyExchange
	if exchange == "" {
		exchange = celery.ReplyPidboxExchange
	}
	ctx, cancel := context.WithTimeout(context.Background(), quickWait)
	defer cancel()
	if err := s.rt.conn.Publish(ctx, exchange, req.ReplyRoutingKey, pub); err != nil && !errors.Is(err, broker.ErrUnroutable) {
		s.rt.log.Warn("control reply not sent", "method", req.Method, "err", err)
	}
}

// dispatch runs one command; answer is false for commands Celery does not
// reply to (shutdown).
func (s *controlServer) dispatch(req *celery.ControlRequest) (reply any, answer bool) {
	rt := s.rt
	switch req.Method {
	case "ping":
		return map[string]any{"ok": "pong"}, true
	case "stats":
		return s.stats(), true
	case "active":
		return s.requests(rt.st.active), true
	case "reserved":
		return s.requests(rt.st.reserved), true
	case "scheduled":
		return s.scheduled(), true
	case "registered":
		return rt.reg.Names(), true
	case "revoked":
		return rt.st.revoked.list(), true
	case "active_queues":
		return s.activeQueues(), true
	case "revoke":
		return s.revoke(req.Arguments), true
	case "enable_events":
		rt.events.SetEnabled(true)
		s.heartbeat.beat()
		return map[string]any{"ok": "task events enabled"}, true
	case "disable_events":
		rt.events.SetEnabled(false)
		return map[string]any{"ok": "task events disabled"}, true
	case "heartbeat":
		s.heartbeat.beat()
		return nil, true
	case "hello":
		if ids, ok := req.Arguments["revoked"].([]any); ok {
			s.addRevoked(ids)
		}
		return map[string]any{"revoked": rt.st.revoked.list(), "clock": rt.st.clock.forward()}, true
	case "shutdown":
		rt.log.Warn("shutdown requested by remote control")
		go s.shutdown()
		return nil, false
	}
	return map[string]any{"error": "No such control command: " + req.Method}, true
}

func (s *controlServer) revoke(args map[string]any) map[string]any {
	var ids []string
	switch v := args["task_id"].(type) {
	case string:
		ids = []string{v}
	case []any:
		for _, x := range v {
			if id, ok := x.(string); ok {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return map[string]any{"error": "revoke needs task_id"}
	}
	if err := s.rt.st.revoked.add(ids...); err != nil {
		s.rt.log.Error("revoked ids not persisted", "err", err)
	}
	terminate, _ := args["terminate"].(bool)
	var terminated []string
	if terminate {
		for _, id := range ids {
			if s.rt.st.terminate(id) {
				terminated = append(terminated, id)
			}
		}
	}
	list := strings.Join(ids, ", ")
	if terminate {
		if len(terminated) == 0 {
			return map[string]any{"ok": "terminate: tasks unknown"}
		}
		return map[string]any{"ok": "terminate: " + strings.Join(terminated, ", ")}
	}
	return map[string]any{"ok": fmt.Sprintf("tasks %s flagged as revoked", list)}
}

func (s *controlServer) addRevoked(ids []any) {
	var list []string
	for _, x := range ids {
		if id, ok := x.(string); ok {
			list = append(list, id)
		}
	}
	if len(list) > 0 {
		s.rt.st.revoked.add(list...)
	}
}

func (s *controlServer) stats() map[string]any {
	rt := s.rt
	total := rt.st.totals()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return map[string]any{
		"total":          total,
		"pid":            os.Getpid(),
		"clock":          fmt.Sprint(rt.st.clock.forward()),
		"uptime":         int(time.Since(rt.st.start).Seconds()),
		"pool":           map[string]any{"implementation": "renderfarm:goroutines", "max-concurrency": rt.cfg.Concurrency, "processes": []int{os.Getpid()}, "max-tasks-per-child": "N/A", "put-guarded-by-semaphore": false, "timeouts": []int{0, 0}},
		"broker":         brokerStats(s.brokerURL()),
		"prefetch_count": rt.cfg.Prefetch,
		"rusage": map[string]any{
			"utime": tv(ru.Utime), "stime": tv(ru.Stime), "maxrss": ru.Maxrss, "ixrss": ru.Ixrss, "idrss": ru.Idrss,
			"isrss": ru.Isrss, "minflt": ru.Minflt, "majflt": ru.Majflt, "nswap": ru.Nswap, "inblock": ru.Inblock,
			"oublock": ru.Oublock, "msgsnd": ru.Msgsnd, "msgrcv": ru.Msgrcv, "nsignals": ru.Nsignals, "nvcsw": ru.Nvcsw, "nivcsw": ru.Nivcsw,
		},
	}
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// requestInfo is a request as `celery inspect active/reserved` lists it.
func (s *controlServer) requestInfo(r *request) map[string]any {
	var start any
	if !r.started.IsZero() {
		start = float64(r.started.UnixNano()) / 1e9
	}
	return map[string]any{
		"id": r.msg.ID, "name": r.msg.Task, "args": r.msg.Args, "kwargs": r.msg.Kwargs,
		"type": r.msg.Task, "hostname": s.rt.cfg.Hostname, "time_start": start, "acknowledged": r.acked,
		"delivery_info": map[string]any{"exchange": r.d.Exchange, "routing_key": r.d.RoutingKey, "priority": r.d.Priority, "redelivered": r.d.Redelivered},
		"worker_pid":    os.Getpid(),
	}
}

func (s *controlServer) requests(set map[*request]struct{}) []any {
	return s.rt.st.collect(set, func(r *request) any { return s.requestInfo(r) })
}

func (s *controlServer) scheduled() []any {
	return s.rt.st.collect(s.rt.st.scheduled, func(r *request) any {
		return map[string]any{"eta": r.msg.ETA.Format(time.RFC3339Nano), "priority": r.d.Priority, "request": s.requestInfo(r)}
	})
}

// activeQueues describes the consumed queues as kombu's Queue.as_dict does.
func (s *controlServer) activeQueues() []any {
	out := []any{}
	for _, q := range s.rt.cfg.Queues {
		args := map[string]any{}
		if q.Quorum {
			args["x-queue-type"] = "quorum"
		}
		out = append(out, map[string]any{
			"name": q.Name, "routing_key": q.RoutingKey, "durable": true, "exclusive": false, "auto_delete": false,
			"no_ack": false, "alias": nil, "queue_arguments": nilIfEmpty(args), "binding_arguments": nil, "consumer_arguments": nil,
			"expires": nil, "message_ttl": nil, "max_length": nil, "max_length_bytes": nil, "max_priority": nil,
			"exchange": map[string]any{"name": q.Exchange, "type": q.ExchangeType, "durable": true, "auto_delete": false,
				"delivery_mode": nil, "passive": false, "arguments": nil},
		})
	}
	return out
}

func nilIfEmpty(m map[string]any) any {
	if len(m) == 0 {
		return nil
	}
	return m
}

// brokerURL is the node the worker is connected to: of a cluster's
// nodes, the one it reached last, not the first listed.
func (s *controlServer) brokerURL() string {
	if n, ok := s.rt.conn.(nodeNamer); ok {
		return n.Node()
	}
	return s.rt.cfg.BrokerURL
}

// brokerStats is stats' "broker" entry in kombu's shape, from the URL the
// worker connected with; an unknown or unparsable URL reads as kombu's
// defaults.
func brokerStats(rawURL string) map[string]any {
	u := amqp.URI{Scheme: "amqp", Host: "localhost", Port: 5672, Vhost: "/"}
	if p, err := amqp.ParseURI(rawURL); err == nil {
		u = p
	}
	return map[string]any{"transport": "amqp", "hostname": u.Host, "port": u.Port, "userid": u.Username, "virtual_host": u.Vhost,
		"insist": false, "ssl": u.Scheme == "amqps", "login_method": "PLAIN", "connect_timeout": 4, "heartbeat": 10.0}
}
