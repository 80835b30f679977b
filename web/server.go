// Package web is the web tier: an HTTP API that validates render requests
// and enqueues them as renderfarm.render tasks with publisher confirms, the
// status of each render read from the workers' manifests, and a small
// status page for people.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/metrics"
)

// Broker is the web tier's view of RabbitMQ; *broker.Conn implements it.
type Broker interface {
	// PublishNow publishes and waits for the broker's confirm, failing at
	// once while disconnected instead of holding the request.
	PublishNow(ctx context.Context, exchange, key string, msg amqp.Publishing) error
	// Healthy is a publish-confirm round trip, for /readyz.
	Healthy(ctx context.Context) error
}

// Server answers the API. Build it with New, serve it with Serve.
type Server struct {
	cfg      Config
	auth     authenticator
	limiter  *rateLimiter
	failures *rateLimiter // failed authentications per client address
	clients  clientAddr
	idem     *idempotency
	stats    *webMetrics
	http     *metrics.HTTP
	mux      *http.ServeMux
	routes   []string
	draining atomic.Bool

	pageMu     sync.Mutex
	pageCached *pageData
}

// New checks cfg and builds the routes.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Registry == nil {
		cfg.Registry = metrics.NewRegistry()
	}
	s := &Server{
		cfg:     cfg,
		limiter: newRateLimiter(cfg.RatePerSecond, cfg.Burst),
		clients: newClientAddr(cfg.TrustedProxies),
		idem:    newIdempotency(cfg.IdempotencyWindow, cfg.IdempotencyMax),
		stats:   newWebMetrics(cfg.Registry),
		http:    metrics.NewHTTP(cfg.Registry, "web"),
		mux:     http.NewServeMux(),
	}
	if cfg.AuthFailures > 0 {
		s.failures = newRateLimiter(float64(cfg.AuthFailures)/60, cfg.AuthFailures)
	}
	s.auth.set(cfg.Tokens)
	s.routeAll()
	return s, nil
}

// SetTokens replaces the API tokens, e.g. after the tokens file changed.
// Requests in flight keep the set they started with.
func (s *Server) SetTokens(tokens []string) error {
	if err := CheckTokens(tokens); err != nil {
		return err
	}
	s.auth.set(tokens)
	return nil
}

// access says who may call a route and what it costs them.
type access int

const (
	open    access = iota // no token: the load balancer's probes
	charged               // a token, and one unit of its rate
	counted               // a token and one unit at the door, before the body is read; the handler charges the rest (batches)
)

func (s *Server) routeAll() {
	s.route("GET /healthz", open, s.healthz)
	s.route("GET /readyz", open, s.readyz)
	s.route("POST /v1/renders", charged, s.postRender)
	s.route("POST /v1/renders/batch", counted, s.postBatch)
	s.route("GET /v1/renders/{id}", charged, s.getRender)
	s.route("GET /v1/renders/{id}/outputs/{n}", charged, s.getOutput)
	s.route("GET /{$}", charged, s.statusPage)
	s.route("GET /openapi.json", charged, s.openAPI)
	s.route("GET /metrics", charged, metrics.Handler(s.cfg.Registry).ServeHTTP)
}

// route registers h under pattern with, from the outside in: metrics, a
// last-resort recover, the request deadline, authentication and the rate
// limit.
func (s *Server) route(pattern string, a access, h http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	next := http.Handler(h)
	if a != open {
		next = s.authenticate(a, next)
	}
	next = s.deadline(next)
	next = s.recoverPanics(next)
	s.mux.Handle(pattern, s.http.Wrap(pattern, next))
}

// Handler is the whole API, for http.Server or httptest.
func (s *Server) Handler() http.Handler { return s.mux }

// Routes lists the registered patterns ("POST /v1/renders"), for the
// OpenAPI check.
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

type ctxKey int

const tokenIDKey ctxKey = 0

// tokenID is the authenticated caller's identity: a hash prefix of its
// token, for rate limits and idempotency keys.
func tokenID(r *http.Request) string {
	id, _ := r.Context().Value(tokenIDKey).(string)
	return id
}

func (s *Server) authenticate(a access, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := s.clients.of(r)
		if wait, over := s.failures.over(client, s.cfg.Now()); over {
			// Checked before the token: past the limit a guess is not
			// even looked at, right or wrong.
			s.stats.rateLimited.Inc()
			writeError(w, &apiError{Status: http.StatusTooManyRequests, Code: codeRateLimited, RetryAfter: max(wait, time.Second),
				Message: "too many failed authentications from this address"})
			return
		}
		id, ok := s.auth.check(r)
		if !ok {
			s.failures.allow(client, 1, s.cfg.Now())
			s.stats.unauthorized.Inc()
			// Browsers prompt for Basic; API clients read the Bearer.
			w.Header().Add("WWW-Authenticate", `Bearer realm="renderfarm"`)
			w.Header().Add("WWW-Authenticate", `Basic realm="renderfarm", charset="UTF-8"`)
			writeError(w, &apiError{Status: http.StatusUnauthorized, Code: codeUnauthorized,
				Message: "send Authorization: Bearer <API token>"})
			return
		}
		if !s.charge(w, id, 1) {
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenIDKey, id)))
	})
}

// charge takes n from the caller's rate, or answers 429 with Retry-After.
func (s *Server) charge(w http.ResponseWriter, id string, n int) bool {
	wait, ok := s.limiter.allow(id, n, s.cfg.Now())
	if ok {
		return true
	}
	s.stats.rateLimited.Inc()
	writeError(w, &apiError{Status: http.StatusTooManyRequests, Code: codeRateLimited, RetryAfter: max(wait, time.Second),
		Message: fmt.Sprintf("over %g requests per second for this token", s.cfg.RatePerSecond)})
	return false
}

func (s *Server) deadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// recoverPanics answers 500 instead of dropping the connection, and logs
// the panic; one bad request never takes the process down.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.cfg.Logger.Error("web: handler panic", "route", r.Pattern, "panic", v)
				writeError(w, &apiError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz tells the load balancer whether to send traffic: the broker
// takes and confirms a message, and the server is not draining.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "shutting down"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Broker.Healthy(ctx); err != nil {
		writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: codeBrokerUnavailable,
			RetryAfter: s.cfg.RetryAfter, Message: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Serve answers on ln until ctx ends, then shuts down gracefully: /readyz
// turns 503 so the load balancer stops sending, no new connection is
// accepted, and requests in flight get up to grace to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
		return fmt.Errorf("web: requests still running after %v: %w", grace, err)
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
