package worker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/renderfarm/renderfarm/internal/testenv"
)

// redisClient opens a plain client on the test database, to look at what
// the backend wrote.
func redisClient(t *testing.T, rawURL string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// redisMonitor runs MONITOR on a raw connection and returns the lines it
// receives; stop closes the connection and waits for the reader.
func redisMonitor(t *testing.T, rawURL string) (lines chan string, stop func()) {
	t.Helper()
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", opt.Addr)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.ReadString('\n'); err != nil || ok != "+OK\r\n" {
		t.Fatalf("MONITOR: %q %v", ok, err)
	}
	lines = make(chan string, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			lines <- strings.TrimPrefix(strings.TrimSpace(l), "+")
		}
	}()
	stop = func() {
		conn.Close()
		<-done
	}
	t.Cleanup(stop)
	return lines, sync.OnceFunc(stop)
}

func newTestRedisBackend(t *testing.T, rawURL string, expires time.Duration) *RedisBackend {
	t.Helper()
	b, err := NewRedisBackend(rawURL, expires)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	return b
}

// runRedisClient runs testdata/celery_redis_client.py, a stock Celery app
// with backend=<redis URL>.
func runRedisClient(t *testing.T, brokerURL, backendURL string, args ...string) map[string]any {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", append([]string{"testdata/celery_redis_client.py", brokerURL, backendURL}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python client %v: %v\n%s", args, err, stderr.String())
	}
	var out map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("python client %v printed %q: %v", args, stdout.String(), err)
	}
	return out
}

// celeryDateDone is the naive UTC datetime.isoformat() Celery stores.
const celeryDateDone = "2006-01-02T15:04:05.999999"

// storedMeta reads a stored state, checks it is what _get_result_meta +
// task_id produce and returns it.
func storedMeta(t *testing.T, ctx context.Context, c *redis.Client, id string) map[string]any {
	t.Helper()
	raw, err := c.Get(ctx, "celery-task-meta-"+id).Bytes()
	if err != nil {
		t.Fatalf("GET celery-task-meta-%s: %v", id, err)
	}
	var meta map[string]any
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatalf("stored value %q: %v", raw, err)
	}
	var keys []string
	for k := range meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"children", "date_done", "result", "status", "task_id", "traceback"}; !slices.Equal(keys, want) {
		t.Errorf("stored fields %v, want %v", keys, want)
	}
	if meta["task_id"] != id {
		t.Errorf("task_id = %v, want %s", meta["task_id"], id)
	}
	if c, ok := meta["children"].([]any); !ok || len(c) != 0 {
		t.Errorf("children = %#v, want []", meta["children"])
	}
	done, _ := meta["date_done"].(string)
	when, err := time.Parse(celeryDateDone, done)
	if err != nil || strings.ContainsAny(done[10:], "Z+") {
		t.Errorf("date_done = %q, want a naive ISO time (%v)", done, err)
	} else if d := time.Since(when); d < -time.Minute || d > time.Minute {
		t.Errorf("date_done = %q is %v from now (UTC)", done, d)
	}
	return meta
}

func checkTTL(t *testing.T, ctx context.Context, c *redis.Client, id string, want time.Duration) {
	t.Helper()
	ttl, err := c.TTL(ctx, "celery-task-meta-"+id).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl > want || ttl < want-time.Minute {
		t.Errorf("TTL of celery-task-meta-%s = %v, want about %v", id, ttl, want)
	}
}

// TestRedisBackendCeleryClient runs a worker storing results in Redis and a
// stock Celery client with backend=redis://... waiting for them.
func TestRedisBackendCeleryClient(t *testing.T) {
	backendURL := testenv.Redis(t)
	const expires = 3 * time.Hour // not the 1-day default, to see it applied
	rb := newTestRedisBackend(t, backendURL, expires)
	tw := startWorker(t, func(c *Config) { c.Results = rb })
	rc := redisClient(t, backendURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("success", func(t *testing.T) {
		out := runRedisClient(t, tw.url, backendURL, "send", "renderfarm.test.add", "[2, 3]")
		if out["state"] != "SUCCESS" || out["result"] != 5.0 {
			t.Fatalf("add(2, 3): %v", out)
		}
		if out["backend"] != "RedisBackend" || out["meta_status"] != "SUCCESS" || out["date_done"] == nil {
			t.Errorf("the client's backend view: %v", out)
		}
		id := out["id"].(string)
		meta := storedMeta(t, ctx, rc, id)
		if meta["status"] != "SUCCESS" || meta["result"] != 5.0 || meta["traceback"] != nil {
			t.Errorf("stored %v", meta)
		}
		checkTTL(t, ctx, rc, id, expires)
	})

	t.Run("failure", func(t *testing.T) {
		out := runRedisClient(t, tw.url, backendURL, "send", "renderfarm.test.fail", `["bad"]`)
		want := map[string]any{"state": "FAILURE", "exc_type": "ValueError", "exc_module": "builtins", "exc_message": "bad", "meta_status": "FAILURE"}
		for k, v := range want {
			if out[k] != v {
				t.Errorf("%s = %v, want %v (whole outcome %v)", k, out[k], v, out)
			}
		}
		if fmt.Sprint(out["exc_args"]) != "['bad']" {
			t.Errorf("raised ValueError%v, want ValueError('bad')", out["exc_args"])
		}
		id := out["id"].(string)
		meta := storedMeta(t, ctx, rc, id)
		exc, _ := meta["result"].(map[string]any)
		if meta["status"] != "FAILURE" || exc["exc_type"] != "ValueError" || exc["exc_module"] != "builtins" ||
			fmt.Sprint(exc["exc_message"]) != "[bad]" {
			t.Errorf("stored %v", meta)
		}
		checkTTL(t, ctx, rc, id, expires)
	})

	// The client SUBSCRIBEs and reads the key once when it starts waiting;
	// a task still running then is only seen through the PUBLISH.
	t.Run("published while waiting", func(t *testing.T) {
		out := runRedisClient(t, tw.url, backendURL, "send", "renderfarm.test.sleep", "[1.5]", "20")
		if out["state"] != "SUCCESS" || out["result"] != 1.5 {
			t.Fatalf("sleep(1.5): %v", out)
		}
		if el := out["elapsed"].(float64); el > 10 {
			t.Errorf("client took %.1fs to see a 1.5s task finish", el)
		}
	})
}

// TestRedisBackendStore checks the commands Store sends: GET, then MULTI,
// SETEX, PUBLISH, EXEC, as Celery's _store_result and _set do.
func TestRedisBackendStore(t *testing.T) {
	backendURL := testenv.Redis(t)
	rc := redisClient(t, backendURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// MONITOR on a plain connection of its own: go-redis 9.23's Monitor
	// puts its connection back in the pool, which then drops it as
	// holding unread data, so the lines never arrive.
	monitor, stopMonitor := redisMonitor(t, backendURL)
	// A client name marks the backend's connections in MONITOR's output:
	// go-redis may use several (9.23 runs a transaction on another).
	const backendName = "rf-backend-under-test"
	sep := "?"
	if strings.Contains(backendURL, "?") {
		sep = "&"
	}
	b := newTestRedisBackend(t, backendURL+sep+"client_name="+backendName, 90*time.Second)

	id := "5b0c9b8e-redis-store-" + time.Now().Format("150405.000000")
	key := celery.StoredResultKey(id)
	sub := rc.Subscribe(ctx, key)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscribe confirmation
		t.Fatal(err)
	}

	req := &celery.Message{ID: id}
	store := func(r celery.Result) {
		t.Helper()
		r.TaskID = id
		if err := b.Store(ctx, req, r); err != nil {
			t.Fatal(err)
		}
	}
	published := func() string {
		t.Helper()
		select {
		case m := <-sub.Channel():
			if m.Channel != key {
				t.Fatalf("message on %s, want %s", m.Channel, key)
			}
			return m.Payload
		case <-time.After(5 * time.Second):
			t.Fatal("nothing published")
		}
		return ""
	}

	store(celery.Result{Status: celery.Retry, Result: celery.ExceptionInfo{Type: "ConnectionError", Module: "builtins", Message: []any{"try again"}}})
	if msg := published(); !strings.Contains(msg, `"status": "RETRY"`) && !strings.Contains(msg, `"status":"RETRY"`) {
		t.Errorf("published %s", msg)
	}
	store(celery.Result{Status: celery.Success, Result: 42})
	msg := published()
	stored, err := rc.Get(ctx, key).Result()
	if err != nil || stored != msg {
		t.Errorf("stored %q (%v), published %q: want the same value", stored, err, msg)
	}
	if got, err := celery.DecodeResult([]byte(stored)); err != nil || got.Status != celery.Success || fmt.Sprint(got.Result) != "42" {
		t.Errorf("stored %q decodes to %+v, %v", stored, got, err)
	}
	checkTTL(t, ctx, rc, id, 90*time.Second)

	// A SUCCESS stays: a redelivered run cannot replace it.
	store(celery.Result{Status: celery.Failure, Result: celery.ExceptionInfo{Type: "ValueError", Module: "builtins", Message: []any{"late"}}})
	if after, _ := rc.Get(ctx, key).Result(); after != stored {
		t.Errorf("SUCCESS overwritten by %s", after)
	}
	select {
	case m := <-sub.Channel():
		t.Errorf("published over a SUCCESS: %s", m.Payload)
	case <-time.After(300 * time.Millisecond):
	}

	time.Sleep(200 * time.Millisecond)
	stopMonitor()
	var cmds []string
	backendConns := map[string]bool{}
	line := regexp.MustCompile(`^[0-9.]+ \[\d+ (\S+)\] "(\w+)"`)
	for len(monitor) > 0 {
		l := <-monitor
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		switch cmd := strings.ToLower(m[2]); {
		case (cmd == "hello" || cmd == "client") && strings.Contains(l, backendName):
			backendConns[m[1]] = true
		case !backendConns[m[1]]:
		case cmd == "select" || cmd == "client" || cmd == "hello" || cmd == "ping":
			// connection set-up, and New's check that the server answers
		default:
			cmds = append(cmds, cmd)
		}
	}
	want := []string{"get", "multi", "setex", "publish", "exec", "get", "multi", "setex", "publish", "exec", "get"}
	if !slices.Equal(cmds, want) {
		t.Errorf("commands sent:\n%v\nwant\n%v", cmds, want)
	}

	t.Run("no expiry", func(t *testing.T) {
		forever := newTestRedisBackend(t, backendURL, 0)
		id := id + "-forever"
		if err := forever.Store(ctx, &celery.Message{ID: id}, celery.Result{TaskID: id, Status: celery.Success, Result: 1}); err != nil {
			t.Fatal(err)
		}
		if ttl, err := rc.TTL(ctx, celery.StoredResultKey(id)).Result(); err != nil || ttl != -1 {
			t.Errorf("TTL %v (%v), want none (-1)", ttl, err)
		}
	})

	t.Run("redis down", func(t *testing.T) {
		down, err := NewRedisBackend("redis://127.0.0.1:1/0?dial_timeout=200ms", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		defer down.Close()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		start := time.Now()
		if err := down.Store(ctx, req, celery.Result{TaskID: id, Status: celery.Success}); err == nil {
			t.Error("Store to a closed port succeeded")
		}
		if err := down.Ping(ctx); err == nil {
			t.Error("Ping of a closed port succeeded")
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("giving up took %v", d)
		}
	})
}

func TestNewRedisBackendURL(t *testing.T) {
	tests := []struct {
		url       string
		addr      string
		db        int
		password  string
		tls, skip bool
		err       string
	}{
		{url: "redis://127.0.0.1:6399/3", addr: "127.0.0.1:6399", db: 3},
		{url: "redis://localhost", addr: "localhost:6379"},
		{url: "redis://:s3cret@127.0.0.1:6380/1", addr: "127.0.0.1:6380", db: 1, password: "s3cret"},
		{url: "rediss://cache.example:6380/0?ssl_cert_reqs=CERT_REQUIRED", addr: "cache.example:6380", tls: true},
		{url: "rediss://cache.example:6380/0?ssl_cert_reqs=none", addr: "cache.example:6380", tls: true, skip: true},
		{url: "rediss://cache.example:6380", addr: "cache.example:6380", tls: true},
		{url: "redis://127.0.0.1/0?ssl_cert_reqs=required", err: "rediss://"},
		{url: "rediss://h/0?ssl_cert_reqs=maybe", err: "ssl_cert_reqs"},
		{url: "rediss://h/0?ssl_ca_certs=/nonexistent.pem", err: "ssl_ca_certs"},
		{url: "rpc://", err: "scheme"},
		{url: "redis://127.0.0.1/x", err: "database"},
		{url: "redis://:hunter2@127.0.0.1/0?bogus=1", err: "bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			b, err := NewRedisBackend(tt.url, time.Hour)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one about %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			o := b.client.Options()
			if o.Addr != tt.addr || o.DB != tt.db || o.Password != tt.password || (o.TLSConfig != nil) != tt.tls {
				t.Errorf("options addr %s db %d password %q tls %v", o.Addr, o.DB, o.Password, o.TLSConfig != nil)
			}
			if tt.tls && o.TLSConfig.InsecureSkipVerify != tt.skip {
				t.Errorf("InsecureSkipVerify = %v, want %v", o.TLSConfig.InsecureSkipVerify, tt.skip)
			}
			if o.MaxRetries != 3 {
				t.Errorf("MaxRetries = %d", o.MaxRetries)
			}
		})
	}
	for _, d := range []time.Duration{-time.Second, 500 * time.Millisecond} {
		if _, err := NewRedisBackend("redis://127.0.0.1/0", d); err == nil {
			t.Errorf("expiry %v accepted", d)
		}
	}
	b, err := NewRedisBackend("redis://127.0.0.1/0", 90*time.Minute+300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Expires() != 90*time.Minute {
		t.Errorf("expiry %v, want whole seconds 1h30m0s", b.Expires())
	}
}
