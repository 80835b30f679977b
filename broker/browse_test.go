package broker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// browseAll reads every message of queue and returns the bodies; take
// says which to take.
func browseAll(t *testing.T, c *Conn, queue string, take func(body string) bool) []string {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	b, err := c.Browse(ctx, queue)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for {
		d, ok, err := b.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		bodies = append(bodies, string(d.Body))
		if take != nil && take(string(d.Body)) {
			if err := b.Take(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return bodies
}

// A browse leaves the queue as it found it, in order; Take removes just
// the messages taken; messages published during a browse are left for
// the next.
func TestBrowseKeepsOrderAndTakesOnlyWhatIsTaken(t *testing.T) {
	c, u := dialTest(t)
	mustDeclare(t, c, Topology{Queues: []Queue{{Name: "q", Durable: true}}})
	ctx := testCtx(t, 10*time.Second)
	var want []string
	for i := range 6 {
		want = append(want, fmt.Sprint("m", i))
		if err := c.Publish(ctx, "", "q", text(want[i])); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if got := browseAll(t, c, "q", nil); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("browse read %v, want %v", got, want)
		}
	}
	if s := queueStats(t, u)["q"]; s != (queueCounts{Ready: 6}) {
		t.Fatalf("after browsing: %+v, want 6 ready", s)
	}
	browseAll(t, c, "q", func(body string) bool { return body == "m1" || body == "m4" })
	if got := strings.Join(browseAll(t, c, "q", nil), " "); got != "m0 m2 m3 m5" {
		t.Errorf("after taking m1 and m4: %s", got)
	}

	// Arrivals during a browse wait for the next one.
	b, err := c.Browse(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	n := 0
	for {
		_, ok, err := b.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if n++; n == 1 {
			if err := c.Publish(ctx, "", "q", text("late")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n != 4 {
		t.Errorf("read %d messages, want the 4 there when the browse began", n)
	}
}

func TestRepublishingDropsTheJourneyHeaders(t *testing.T) {
	d := amqp.Delivery{Headers: amqp.Table{"task": "t", "x-death": []any{}, "x-delivery-count": int64(3), "x-mine": "a"},
		ContentType: "application/json", MessageId: "m", Body: []byte("{}")}
	p := Republishing(d, "x-mine")
	if len(p.Headers) != 1 || p.Headers["task"] != "t" || p.MessageId != "m" || string(p.Body) != "{}" {
		t.Errorf("republishing: %+v", p)
	}
	if _, ok := d.Headers["x-death"]; !ok {
		t.Error("the delivery's own headers changed")
	}
}
