package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/renderfarm/renderfarm/broker/celery"
)

// DefaultResultExpires is Celery's result_expires default: stored results
// live for one day.
const DefaultResultExpires = 24 * time.Hour

// redisMaxValue is the largest string Redis stores (512 MB); Celery's
// backend refuses a bigger result with BackendStoreError.
const redisMaxValue = 512 << 20

// RedisBackend is Celery's redis:// result backend
// (celery/backends/redis.py RedisBackend on BaseKeyValueStoreBackend). Each
// state goes to the key celery-task-meta-<id> and is PUBLISHed on a
// channel of that name, which a waiting client subscribes to, in one
// MULTI/EXEC as Celery's _set pipeline does:
//
//	MULTI; SETEX key <expires seconds> value; PUBLISH key value; EXEC
//
// (SET without expiry when expires is 0). As _store_result does, a stored
// SUCCESS is never overwritten: a redelivered task that runs again cannot
// replace it with a later state.
type RedisBackend struct {
	client  *redis.Client
	expires time.Duration // whole seconds; 0: keys never expire
}

// NewRedisBackend connects lazily to url, which is what a Celery app uses
// as its result_backend:
//
//	redis://[[user]:password@]host[:port][/db][?option=value...]
//	rediss://...?ssl_cert_reqs=required&ssl_ca_certs=/path/ca.pem
//
// Options are go-redis's (dial_timeout, max_retries, ...) plus Celery's
// TLS ones: ssl_cert_reqs (required, optional, none, or CERT_REQUIRED,
// CERT_OPTIONAL, CERT_NONE; Celery demands it on rediss://, here it defaults
// to required), ssl_ca_certs, ssl_certfile and ssl_keyfile. As in Celery,
// TLS options on a redis:// URL are an error.
//
// expires is Celery's result_expires: the lifetime of a stored state,
// truncated to whole seconds as Celery's int() does; 0 keeps results
// forever. Below one second (which Celery would truncate to "forever" too)
// is refused as a likely mistake.
func NewRedisBackend(rawURL string, expires time.Duration) (*RedisBackend, error) {
	if expires < 0 {
		return nil, fmt.Errorf("redis result backend: negative expiry %v", expires)
	}
	if expires > 0 && expires < time.Second {
		return nil, fmt.Errorf("redis result backend: expiry %v is under a second (0 means never)", expires)
	}
	opt, err := redisOptions(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis result backend %s: %w", redactURL(rawURL), err)
	}
	return &RedisBackend{client: redis.NewClient(opt), expires: expires.Truncate(time.Second)}, nil
}

// celeryTLSOptions are the rediss:// query options Celery's backend reads
// (_params_from_url ssl_param_keys); go-redis does not know them.
var celeryTLSOptions = []string{"ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile"}

func redisOptions(rawURL string) (*redis.Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("invalid URL") // url.Error would repeat the password
	}
	switch u.Scheme {
	case "redis", "rediss":
	default:
		return nil, fmt.Errorf("scheme %q: want redis:// or rediss://", u.Scheme)
	}
	q := u.Query()
	tlsq := url.Values{}
	for _, k := range celeryTLSOptions {
		if q.Has(k) {
			tlsq.Set(k, q.Get(k))
			q.Del(k)
		}
	}
	if u.Scheme == "redis" && len(tlsq) > 0 {
		return nil, errors.New("TLS options on a redis:// URL; use rediss://")
	}
	u.RawQuery = q.Encode()
	opt, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, err
	}
	if opt.TLSConfig != nil {
		if err := configureTLS(opt.TLSConfig, tlsq); err != nil {
			return nil, err
		}
	}
	// Transient network errors (a dropped connection, a timeout) are
	// retried with backoff, up to a second apart as Celery's retry_policy
	// (interval_max 1); unless the URL says otherwise.
	if !q.Has("max_retries") {
		opt.MaxRetries = 3
	}
	if !q.Has("min_retry_backoff") {
		opt.MinRetryBackoff = 100 * time.Millisecond
	}
	if !q.Has("max_retry_backoff") {
		opt.MaxRetryBackoff = time.Second
	}
	return opt, nil
}

func configureTLS(c *tls.Config, q url.Values) error {
	switch q.Get("ssl_cert_reqs") {
	case "", "required", "CERT_REQUIRED", "optional", "CERT_OPTIONAL":
		// A TLS client always gets the server's certificate, so
		// CERT_OPTIONAL verifies it as CERT_REQUIRED does.
	case "none", "CERT_NONE":
		c.InsecureSkipVerify = true
	default:
		return fmt.Errorf("ssl_cert_reqs=%q: want required, optional or none", q.Get("ssl_cert_reqs"))
	}
	if f := q.Get("ssl_ca_certs"); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("ssl_ca_certs: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("ssl_ca_certs: no certificate in %s", f)
		}
		c.RootCAs = pool
	}
	cert, key := q.Get("ssl_certfile"), q.Get("ssl_keyfile")
	if cert != "" || key != "" {
		if key == "" {
			key = cert // a PEM holding both, as Python's load_cert_chain allows
		}
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return fmt.Errorf("ssl_certfile/ssl_keyfile: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return nil
}

// redactURL hides the password of a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}

// Store writes r where a Celery client looks for it. Unlike rpc://, the
// state is stored whether or not the request named a reply queue.
func (b *RedisBackend) Store(ctx context.Context, req *celery.Message, r celery.Result) error {
	if r.TaskID == "" && req != nil {
		r.TaskID = req.ID
	}
	value, err := celery.EncodeStoredResult(r)
	if err != nil {
		return fmt.Errorf("encoding result of %s: %w", r.TaskID, err)
	}
	if len(value) > redisMaxValue {
		return fmt.Errorf("result of %s: %d bytes is too large for Redis", r.TaskID, len(value))
	}
	key := celery.StoredResultKey(r.TaskID)

	// _store_result reads the current state first and leaves a SUCCESS
	// alone (a lost worker's redelivered task must not overwrite it).
	// Like Celery this is a plain GET, not a WATCH: the window is tiny
	// and both writers would store a state of the same task.
	cur, err := b.client.Get(ctx, key).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		return fmt.Errorf("reading stored state of %s: %w", r.TaskID, err)
	case storedSuccess(cur):
		return nil
	}

	_, err = b.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if b.expires > 0 {
			// Whole seconds, so go-redis sends SETEX key <s> value.
			p.SetEx(ctx, key, value, b.expires)
		} else {
			p.Set(ctx, key, value, 0)
		}
		p.Publish(ctx, key, value)
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing state %s of %s: %w", r.Status, r.TaskID, err)
	}
	return nil
}

// storedSuccess reports whether a stored value has status SUCCESS. A value
// that is not a result (Celery would fail to decode it) is overwritten.
func storedSuccess(v []byte) bool {
	var meta struct {
		Status string `json:"status"`
	}
	return json.Unmarshal(v, &meta) == nil && meta.Status == string(celery.Success)
}

// Ping checks that Redis answers, for readiness.
func (b *RedisBackend) Ping(ctx context.Context) error {
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis result backend: %w", err)
	}
	return nil
}

// Expires is the lifetime of stored states (0: forever).
func (b *RedisBackend) Expires() time.Duration { return b.expires }

// Close closes the connections.
func (b *RedisBackend) Close() error { return b.client.Close() }
