package web

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/storage"
)

// instantBroker confirms every publish at once: BenchmarkPostRender
// measures the handler's own CPU per request, without the network.
// make bench-web measures the real thing against RabbitMQ.
type instantBroker struct{}

func (instantBroker) PublishNow(context.Context, string, string, amqp.Publishing) error { return nil }
func (instantBroker) Healthy(context.Context) error                                     { return nil }

func BenchmarkPostRender(b *testing.B) {
	store, err := storage.New(context.Background(), storage.Config{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{Broker: instantBroker{}, Exchange: "celery", RoutingKey: "celery", Store: store,
		Journal: &job.Journal{Store: store, Prefix: "s3://journal/jobs/"}, Tokens: []string{"bench-token-0123456789"}, RatePerSecond: -1})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	body := []byte(`{"source":"s3://bench/in/photo.jpg","recipe":"default","dest":"s3://bench/out/"}`)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/renders", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer bench-token-0123456789")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}
