package broker

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestDeclareMismatch(t *testing.T) {
	c, _ := dialTest(t)
	tests := []struct {
		name        string
		first, then Topology
		kind, ename string
		mentions    string // the broker names the mismatching property
	}{
		{
			name:     "queue durable then transient",
			first:    Topology{Queues: []Queue{{Name: "jobs", Durable: true}}},
			then:     Topology{Queues: []Queue{{Name: "jobs", Durable: false}}},
			kind:     "queue",
			ename:    "jobs",
			mentions: "durable",
		},
		{
			name:     "queue arguments differ",
			first:    Topology{Queues: []Queue{{Name: "prio", Durable: true}}},
			then:     Topology{Queues: []Queue{{Name: "prio", Durable: true, Args: amqp.Table{"x-max-priority": int32(10)}}}},
			kind:     "queue",
			ename:    "prio",
			mentions: "x-max-priority",
		},
		{
			name:     "exchange kind differs",
			first:    Topology{Exchanges: []Exchange{{Name: "celery", Kind: "direct", Durable: true}}},
			then:     Topology{Exchanges: []Exchange{{Name: "celery", Kind: "fanout", Durable: true}}},
			kind:     "exchange",
			ename:    "celery",
			mentions: "type",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustDeclare(t, c, tt.first)
			err := c.Declare(testCtx(t, 5*time.Second), tt.then)
			var derr *DeclareError
			if !errors.As(err, &derr) {
				t.Fatalf("Declare = %v, want a *DeclareError", err)
			}
			if derr.Code != amqp.PreconditionFailed || derr.Kind != tt.kind || derr.Name != tt.ename {
				t.Fatalf("DeclareError = %+v, want 406 for %s %q", derr, tt.kind, tt.ename)
			}
			if msg := err.Error(); !strings.Contains(msg, `"`+tt.ename+`"`) || !strings.Contains(msg, tt.mentions) {
				t.Fatalf("error %q does not name %q and %q", msg, tt.ename, tt.mentions)
			}
			// The refused declare closed only its throwaway channel.
			if err := c.Healthy(testCtx(t, 5*time.Second)); err != nil {
				t.Fatalf("Healthy after a refused declare: %v", err)
			}
			mustDeclare(t, c, tt.first) // the original still matches
		})
	}
	// Refused declarations are not remembered: only the accepted ones are
	// re-declared after a reconnect.
	c.topoMu.Lock()
	defer c.topoMu.Unlock()
	for _, q := range c.topo.queues {
		if q.Name == "jobs" && !q.Durable || q.Name == "prio" && q.Args != nil {
			t.Errorf("refused declaration remembered: %+v", q)
		}
	}
}

func TestDeclareValidation(t *testing.T) {
	tests := []struct {
		name string
		tp   Topology
	}{
		{"server-named queue", Topology{Queues: []Queue{{Name: ""}}}},
		{"default exchange", Topology{Exchanges: []Exchange{{Name: "", Kind: "direct"}}}},
		{"exchange without kind", Topology{Exchanges: []Exchange{{Name: "x"}}}},
		{"binding without queue", Topology{Bindings: []Binding{{Exchange: "x", Key: "k"}}}},
		{"unencodable argument", Topology{Queues: []Queue{{Name: "q", Args: amqp.Table{"x-bad": struct{}{}}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Validation happens before any connection is needed.
			if err := (&Conn{}).Declare(t.Context(), tt.tp); err == nil {
				t.Fatal("Declare accepted an invalid topology")
			}
		})
	}
}

func TestTopologyRemembersLatestDeclaration(t *testing.T) {
	var tp topology
	tp.rememberQueue(Queue{Name: "a"})
	tp.rememberQueue(Queue{Name: "b"})
	tp.rememberQueue(Queue{Name: "a", Durable: true})
	tp.rememberBinding(Binding{Queue: "a", Exchange: "x", Key: "k", Args: amqp.Table{"p": 1, "q": 2}})
	tp.rememberBinding(Binding{Queue: "a", Exchange: "x", Key: "k", Args: amqp.Table{"q": 2, "p": 1}})
	tp.rememberBinding(Binding{Queue: "b", Exchange: "x", Key: "k"})
	if len(tp.queues) != 2 || tp.queues[0].Name != "a" || !tp.queues[0].Durable {
		t.Fatalf("queues = %+v", tp.queues)
	}
	if len(tp.bindings) != 2 {
		t.Fatalf("bindings = %+v, want duplicates merged", tp.bindings)
	}
	tp.forgetQueue("a")
	if len(tp.queues) != 1 || len(tp.bindings) != 1 || tp.bindings[0].Queue != "b" {
		t.Fatalf("after forgetQueue: %+v %+v", tp.queues, tp.bindings)
	}
}

func TestPurgeAndDeleteQueue(t *testing.T) {
	c, u := dialTest(t)
	mustDeclare(t, c, Topology{Queues: []Queue{{Name: "scratch"}}})
	for range 3 {
		if err := c.Publish(testCtx(t, 5*time.Second), "", "scratch", text("x")); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.PurgeQueue(testCtx(t, 5*time.Second), "scratch")
	if err != nil || n != 3 {
		t.Fatalf("PurgeQueue = %d, %v; want 3", n, err)
	}
	if err := c.DeleteQueue(testCtx(t, 5*time.Second), "scratch"); err != nil {
		t.Fatal(err)
	}
	if _, ok := queueStats(t, u)["scratch"]; ok {
		t.Fatal("queue still exists after DeleteQueue")
	}
	if err := c.Publish(testCtx(t, 5*time.Second), "", "scratch", text("x")); !errors.Is(err, ErrUnroutable) {
		t.Fatalf("Publish to the deleted queue = %v, want ErrUnroutable", err)
	}
}

// Only a queue declaration answered 404 is a queue whose node is down;
// everything else the broker refuses stays a refusal.
func TestQueueDown(t *testing.T) {
	for _, tt := range []struct {
		err  error
		down bool
	}{
		{&DeclareError{Kind: "queue", Name: "renderfarm.dead", Code: amqp.NotFound}, true},
		{fmt.Errorf("wrapped: %w", &DeclareError{Kind: "queue", Code: amqp.NotFound}), true},
		{&DeclareError{Kind: "queue", Code: amqp.PreconditionFailed}, false},
		{&DeclareError{Kind: "binding", Code: amqp.NotFound}, false}, // its exchange is missing
		{&DeclareError{Kind: "exchange", Code: amqp.NotFound}, false},
		{errors.New("connection closed"), false},
	} {
		if got := queueDown(tt.err); got != tt.down {
			t.Errorf("queueDown(%v) = %v, want %v", tt.err, got, tt.down)
		}
	}
}
