package celery

import (
	"fmt"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The default topology is exactly what a Celery 5.2 client declares, or
// one side's declare fails with PRECONDITION_FAILED.
func TestQueueTopologyMatchesCelery(t *testing.T) {
	top := Queue{Name: "celery"}.Topology(DefaultDeadLetter)
	q := top.Queues[0]
	if q.Name != "celery" || !q.Durable || q.AutoDelete || q.Exclusive || len(q.Args) != 0 {
		t.Errorf("queue %+v", q)
	}
	if ex := top.Exchanges[0]; ex.Name != "celery" || ex.Kind != "direct" || !ex.Durable || ex.AutoDelete || len(ex.Args) != 0 {
		t.Errorf("exchange %+v", ex)
	}
	if b := top.Bindings[0]; b.Queue != "celery" || b.Exchange != "celery" || b.Key != "celery" {
		t.Errorf("binding %+v", b)
	}
	qq := Queue{Name: "renders", Quorum: true, DeliveryLimit: 3}.Topology("dlx").Queues[0]
	want := amqp.Table{"x-queue-type": "quorum", "x-dead-letter-exchange": "dlx", "x-delivery-limit": int64(3)}
	if fmt.Sprint(qq.Args) != fmt.Sprint(want) {
		t.Errorf("quorum args %v, want %v", qq.Args, want)
	}
	// Delay queues dead-letter back to the work queue.
	for _, d := range top.Queues[1:] {
		if d.Args["x-dead-letter-routing-key"] != "celery" || d.Args["x-dead-letter-exchange"] != "" || d.Args["x-message-ttl"] == nil {
			t.Errorf("delay queue %+v", d)
		}
	}
}

func TestParseQueues(t *testing.T) {
	got, err := ParseQueues("celery, renders:media:renders.high,thumbs:thumbs")
	if err != nil {
		t.Fatal(err)
	}
	want := "[{celery   } {renders media  renders.high} {thumbs thumbs  }]"
	var parts []string
	for _, q := range got {
		parts = append(parts, "{"+q.Name+" "+q.Exchange+" "+q.ExchangeType+" "+q.RoutingKey+"}")
	}
	if s := "[" + strings.Join(parts, " ") + "]"; s != want {
		t.Errorf("got %s, want %s", s, want)
	}
	for _, bad := range []string{"", " , ", "a:b:c:d", ":x", "a,a"} {
		if _, err := ParseQueues(bad); err == nil {
			t.Errorf("ParseQueues(%q) accepted", bad)
		}
	}
}
