package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/renderfarm/renderfarm/internal/testenv"
)

func renderfarmBinary(t *testing.T) string { return testenv.Renderfarm(t) }

const (
	taskExchange = "renderfarm.tasks"
	taskQueue    = "renderfarm.render"
	deadLetters  = "renderfarm.dead"
	route        = taskQueue + ":" + taskExchange + ":" + taskQueue
	// deliveryLimit is definitions.json's x-delivery-limit: the broker's
	// backstop, 4 x the workers' default --max-starts.
	deliveryLimit = 20
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// brokerUsers imports definitions.json into a fresh vhost of the local
// RabbitMQ (testenv's, deleted when the test ends) with its users renamed
// for this test (users are node-wide), gives each a password, as an
// operator does after importing, and returns each role's AMQP URL.
func brokerUsers(t *testing.T) map[string]string {
	t.Helper()
	guestURL := testenv.RabbitMQ(t)
	u, err := url.Parse(guestURL)
	if err != nil {
		t.Fatal(err)
	}
	vhost := strings.TrimPrefix(u.Path, "/")

	raw, err := os.ReadFile("rabbitmq/definitions.json")
	if err != nil {
		t.Fatal(err)
	}
	var defs map[string]any
	if err := json.Unmarshal(raw, &defs); err != nil {
		t.Fatal(err)
	}
	suffix := "-test-" + randomHex(4)
	rename := func(v any, key string, f func(string) string) {
		for _, e := range v.([]any) {
			m := e.(map[string]any)
			if s, ok := m[key].(string); ok {
				m[key] = f(s)
			}
		}
	}
	toVhost := func(string) string { return vhost }
	toUser := func(s string) string { return s + suffix }
	for _, k := range []string{"permissions", "policies", "exchanges", "queues", "bindings", "vhosts"} {
		key := "vhost"
		if k == "vhosts" {
			key = "name"
		}
		rename(defs[k], key, toVhost)
	}
	rename(defs["users"], "name", toUser)
	rename(defs["permissions"], "user", toUser)
	var users []string
	for _, e := range defs["users"].([]any) {
		users = append(users, e.(map[string]any)["name"].(string))
	}
	t.Cleanup(func() {
		for _, name := range users {
			testenv.RabbitMQCtl(t, "delete_user", name)
		}
	})

	// Not in t.TempDir(): Debian's rabbitmqctl runs as the rabbitmq user,
	// which cannot enter a 0700 directory.
	f, err := os.CreateTemp("", "renderfarm-definitions-*.json")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	if err := json.NewEncoder(f).Encode(defs); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.RabbitMQCtl(t, "import_definitions", f.Name())

	// The import is asynchronous: wait for its last part (users and
	// permissions come first, then policies and the topology).
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out := testenv.RabbitMQCtl(t, "list_queues", "-p", vhost, "name", "policy")
		if strings.Contains(out, "renderfarm-tasks") && strings.Contains(out, "renderfarm.delay.renderfarm.render.3600s") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("definitions not imported within 60s; queues:\n%s", out)
		}
	}
	// The definitions carry no passwords: nobody can log in until an
	// operator sets one.
	urls := map[string]string{}
	for _, name := range users {
		role := strings.TrimSuffix(strings.TrimPrefix(name, "renderfarm-"), suffix)
		if _, err := amqp.Dial(fmt.Sprintf("amqp://%s:@%s/%s", name, u.Host, url.PathEscape(vhost))); err == nil {
			t.Errorf("%s logged in with a blank password", name)
		}
		pw := randomHex(12)
		testenv.RabbitMQCtl(t, "change_password", name, pw)
		urls[role] = fmt.Sprintf("amqp://%s:%s@%s/%s", name, pw, u.Host, url.PathEscape(vhost))
	}
	urls["guest"] = guestURL
	return urls
}

// session is one role's connection; each step gets a fresh channel, since
// a refused operation closes its channel.
type session struct {
	t    *testing.T
	role string
	conn *amqp.Connection
}

func dial(t *testing.T, role, amqpURL string) *session {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("%s: dial: %v", role, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &session{t: t, role: role, conn: conn}
}

func (s *session) channel() *amqp.Channel {
	s.t.Helper()
	ch, err := s.conn.Channel()
	if err != nil {
		s.t.Fatalf("%s: channel: %v", s.role, err)
	}
	return ch
}

// may fails the test unless op succeeds; mayNot unless the broker refuses
// it with 403 ACCESS_REFUSED (any other error is a broken test).
func (s *session) may(what string, op func(ch *amqp.Channel) error) {
	s.t.Helper()
	ch := s.channel()
	defer ch.Close()
	if err := op(ch); err != nil {
		s.t.Errorf("%s should be able to %s: %v", s.role, what, err)
	}
}

func (s *session) mayNot(what string, op func(ch *amqp.Channel) error) {
	s.t.Helper()
	ch := s.channel()
	defer ch.Close()
	err := op(ch)
	var aerr *amqp.Error
	switch {
	case err == nil:
		s.t.Errorf("%s could %s", s.role, what)
	case errors.As(err, &aerr) && aerr.Code == amqp.AccessRefused:
	default:
		s.t.Errorf("%s: %s: want 403 ACCESS_REFUSED, got %v", s.role, what, err)
	}
}

// publish sends one persistent message and waits for the broker's confirm.
// A refused publish closes the channel, which also nacks it: the channel's
// error is the one that says why.
func publish(ch *amqp.Channel, exchange, key, body string) error {
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Confirm(false); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false,
		amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)})
	if err != nil {
		return err
	}
	ok, err := dc.WaitContext(ctx)
	if err == nil && !ok {
		select {
		case cerr := <-closed:
			if cerr != nil {
				return cerr
			}
		case <-time.After(time.Second):
		}
		err = errors.New("nacked")
	}
	return err
}

// consume takes one delivery from queue (a consumer, as a worker does).
func consume(ch *amqp.Channel, queue string, within time.Duration) (amqp.Delivery, error) {
	if err := ch.Qos(1, 0, false); err != nil {
		return amqp.Delivery{}, err
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return amqp.Delivery{}, err
	}
	select {
	case d, ok := <-ds:
		if !ok {
			return d, fmt.Errorf("consumer on %s closed", queue)
		}
		return d, nil
	case <-time.After(within):
		return amqp.Delivery{}, fmt.Errorf("nothing on %s within %v", queue, within)
	}
}

// get takes one message from queue (acknowledged), waiting for it to
// arrive; getNoAck leaves it to be acknowledged or returned.
func get(ch *amqp.Channel, queue string) (amqp.Delivery, error) { return basicGet(ch, queue, true) }

func getNoAck(ch *amqp.Channel, queue string) (amqp.Delivery, error) {
	return basicGet(ch, queue, false)
}

func basicGet(ch *amqp.Channel, queue string, autoAck bool) (amqp.Delivery, error) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		d, ok, err := ch.Get(queue, autoAck)
		if err != nil || ok {
			return d, err
		}
	}
	return amqp.Delivery{}, fmt.Errorf("nothing on %s within 10s", queue)
}

// TestDefinitions imports definitions.json once (each import costs several
// rabbitmqctl runs) and checks, in order, that each role's user does its job
// and nothing more, that the policies dead-letter what they should, and
// that the real farm runs on those users. Each part leaves the queues empty.
func TestDefinitions(t *testing.T) {
	t.Parallel() // with TestRabbitMQConf and TestSystemdVerify: each mostly waits on a tool
	urls := brokerUsers(t)
	for _, part := range []struct {
		name string
		run  func(*testing.T, map[string]string)
	}{{"roles", testRoles}, {"policies", testPolicies}, {"farm", testFarm}} {
		if !t.Run(part.name, func(t *testing.T) { part.run(t, urls) }) {
			return
		}
	}
}

// testRoles: each role's user does its job and nothing more.
func testRoles(t *testing.T, urls map[string]string) {
	web, worker, ops := dial(t, "web", urls["web"]), dial(t, "worker", urls["worker"]), dial(t, "ops", urls["ops"])

	// A Celery client's rpc reply queue and another app's queue: nothing
	// of the workers'.
	replyQueue := "c0ffee00-" + randomHex(4) + "-4000-8000-" + randomHex(6)
	ops.may("declare a client's reply queue and another app's queue", func(ch *amqp.Channel) error {
		if _, err := ch.QueueDeclare(replyQueue, false, false, false, false, nil); err != nil {
			return err
		}
		_, err := ch.QueueDeclare("billing.invoices", true, false, false, false, nil)
		return err
	})

	// web: publish tasks, and nothing else.
	web.may("publish a task", func(ch *amqp.Channel) error { return publish(ch, taskExchange, taskQueue, "task-1") })
	web.mayNot("consume tasks", func(ch *amqp.Channel) error { _, err := consume(ch, taskQueue, time.Second); return err })
	web.mayNot("read tasks with basic.get", func(ch *amqp.Channel) error { _, _, err := ch.Get(taskQueue, false); return err })
	web.mayNot("purge the task queue", func(ch *amqp.Channel) error { _, err := ch.QueuePurge(taskQueue, false); return err })
	web.mayNot("consume dead letters", func(ch *amqp.Channel) error { _, err := consume(ch, deadLetters, time.Second); return err })
	web.mayNot("delete the dead-letter queue", func(ch *amqp.Channel) error { _, err := ch.QueueDelete(deadLetters, false, false, false); return err })
	web.mayNot("publish an event", func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare("celeryev", "topic", true, false, false, false, nil)
	})
	web.mayNot("publish a control command", func(ch *amqp.Channel) error { return publish(ch, "celery.pidbox", "", "{}") })
	web.mayNot("declare a queue of its own", func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare("web.stash", true, false, false, false, nil)
		return err
	})

	// worker: consume tasks, publish results, events and control replies;
	// dead-letter; no other queue is its to declare, read or delete.
	worker.may("consume a task", func(ch *amqp.Channel) error {
		d, err := consume(ch, taskQueue, 10*time.Second)
		if err == nil && string(d.Body) != "task-1" {
			err = fmt.Errorf("got %q, want task-1", d.Body)
		}
		if err == nil {
			err = d.Ack(false)
		}
		return err
	})
	worker.may("publish a result to a client's reply queue", func(ch *amqp.Channel) error {
		return publish(ch, "", replyQueue, "result-1")
	})
	ops.may("receive the result", func(ch *amqp.Channel) error {
		d, err := get(ch, replyQueue)
		if err == nil && string(d.Body) != "result-1" {
			err = fmt.Errorf("got %q", d.Body)
		}
		return err
	})
	worker.may("publish an event", func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare("celeryev", "topic", true, false, false, false, nil); err != nil {
			return err
		}
		return publish(ch, "celeryev", "worker.heartbeat", "{}")
	})
	worker.may("answer a control command", func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare("reply.celery.pidbox", "direct", false, false, false, false, nil); err != nil {
			return err
		}
		return publish(ch, "reply.celery.pidbox", replyQueue, "{}")
	})
	worker.may("dead-letter a message", func(ch *amqp.Channel) error { return publish(ch, deadLetters, taskQueue, "bad-1") })
	worker.mayNot("delete a client's reply queue", func(ch *amqp.Channel) error {
		_, err := ch.QueueDelete(replyQueue, false, false, false)
		return err
	})
	worker.mayNot("delete another app's queue", func(ch *amqp.Channel) error {
		_, err := ch.QueueDelete("billing.invoices", false, false, false)
		return err
	})
	worker.mayNot("read another app's queue", func(ch *amqp.Channel) error { _, _, err := ch.Get("billing.invoices", false); return err })
	worker.mayNot("consume a client's replies", func(ch *amqp.Channel) error { _, err := consume(ch, replyQueue, time.Second); return err })
	worker.mayNot("declare a queue of its own", func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare("worker.stash", true, false, false, false, nil)
		return err
	})
	worker.mayNot("publish to another app's exchange", func(ch *amqp.Channel) error { return publish(ch, "amq.topic", "x", "{}") })

	// ops: reads what was set aside.
	ops.may("read the dead letters", func(ch *amqp.Channel) error {
		d, err := get(ch, deadLetters)
		if err == nil && string(d.Body) != "bad-1" {
			err = fmt.Errorf("got %q", d.Body)
		}
		return err
	})
}

// testPolicies: the task queue is a quorum queue whose poison messages
// reach the dead-letter queue after the delivery limit, and rejected ones
// at once.
func testPolicies(t *testing.T, urls map[string]string) {
	web, worker, ops := dial(t, "web", urls["web"]), dial(t, "worker", urls["worker"]), dial(t, "ops", urls["ops"])

	web.may("publish two tasks", func(ch *amqp.Channel) error {
		if err := publish(ch, taskExchange, taskQueue, "rejected"); err != nil {
			return err
		}
		return publish(ch, taskExchange, taskQueue, "poison")
	})
	worker.may("reject one and keep failing the other", func(ch *amqp.Channel) error {
		d, err := consume(ch, taskQueue, 10*time.Second)
		if err != nil {
			return err
		}
		if err := d.Reject(false); err != nil {
			return err
		}
		return nil
	})
	// Delivered, then returned: with the definitions' limit of 20
	// (RabbitMQ 3.10 counts returns), the twentieth return dead-letters
	// it. basic.get, so that a requeued message is not delivered again to
	// the same consumer before the next round.
	for i := 0; i < deliveryLimit; i++ {
		worker.may(fmt.Sprintf("take the poison task (delivery %d)", i+1), func(ch *amqp.Channel) error {
			d, err := getNoAck(ch, taskQueue)
			if err == nil && string(d.Body) != "poison" {
				err = fmt.Errorf("got %q", d.Body)
			}
			if err == nil {
				err = d.Nack(false, true)
			}
			return err
		})
	}
	ops.may("find both in the dead-letter queue", func(ch *amqp.Channel) error {
		for _, want := range []string{"rejected", "poison"} {
			d, err := get(ch, deadLetters)
			if err != nil {
				return err
			}
			if string(d.Body) != want {
				return fmt.Errorf("dead letter %q, want %q", d.Body, want)
			}
		}
		d, ok, err := ch.Get(taskQueue, false)
		if err == nil && ok {
			err = fmt.Errorf("%q still in %s", d.Body, taskQueue)
		}
		return err
	})
}

// testFarm: the real web tier and worker, each with its own user, declare
// their topology (equal to the imported one, or they stop), take a render
// over HTTP and store it; the worker's events, heartbeats and control
// mailbox work within its permissions.
func testFarm(t *testing.T, urls map[string]string) {
	dir := t.TempDir()
	photo, err := os.ReadFile("../testdata/photo.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "photo.jpg"), photo, 0o644); err != nil {
		t.Fatal(err)
	}
	storage := []string{"--file-root", dir, "--journal", "file://" + dir + "/jobs/",
		"--quorum", "--delivery-limit", strconv.Itoa(deliveryLimit), "--dead-letter-exchange", deadLetters}
	worker := testenv.Worker(t, urls["worker"], nil, append([]string{"--queues", route,
		"--hostname", "deploytest@" + randomHex(3)}, storage...)...)
	worker.WaitOutput(t, "worker ready", 60*time.Second)

	token := "deploy-test-" + randomHex(12)
	web := testenv.Start(t, nil, append([]string{"web", "--broker", urls["web"], "--queue", route,
		"--listen", "127.0.0.1:0", "--tokens", token, "--shutdown-grace", "5s"}, storage...)...)
	line := web.WaitOutput(t, "web: serving", 30*time.Second)
	_, addr, _ := strings.Cut(line, " addr=")
	addr, _, _ = strings.Cut(addr, " ")
	base := "http://" + addr

	// The image's health check, given the web tier's command line as it
	// would read it from PID 1; and failing where nothing listens.
	if out, err := exec.Command("bash", "docker/healthcheck.sh", "web", "--listen", addr).CombinedOutput(); err != nil {
		t.Errorf("healthcheck on the web tier at %s: %v\n%s", addr, err, out)
	}
	if err := exec.Command("bash", "docker/healthcheck.sh", "worker", "--metrics-listen", "127.0.0.1:1").Run(); err == nil {
		t.Error("healthcheck passed for a worker with nothing listening")
	}

	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, _ := call("GET", "/readyz", ""); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web tier not ready within 30s:\n%s", web.Output())
		}
	}
	code, body := call("POST", "/v1/renders", fmt.Sprintf(`{"source": "file://%s/photo.jpg", "recipe": "default", "dest": "file://%s/out/"}`, dir, dir))
	if code != 202 {
		t.Fatalf("POST /v1/renders: %d %s", code, body)
	}
	var accepted struct{ ID string }
	if err := json.Unmarshal([]byte(body), &accepted); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, body = call("GET", "/v1/renders/"+accepted.ID, "")
		if !strings.Contains(body, `"status":"pending"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("render still pending after 60s; worker:\n%s", worker.Output())
		}
	}
	if !strings.Contains(body, `"status":"succeeded"`) {
		t.Fatalf("render: %s", body)
	}
	for _, f := range []string{"thumb.jpg", "medium.jpg", "large.jpg"} {
		if _, err := os.Stat(filepath.Join(dir, "out", f)); err != nil {
			t.Error(err)
		}
	}
	// Every metric the alert rules and the dashboard name is exported by
	// this live worker or web tier, after a real render.
	mline := worker.WaitOutput(t, "serving metrics", 5*time.Second)
	maddr := regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(mline)[1]
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	workerScrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, webScrape := call("GET", "/metrics", "")
	checkMonitoredMetrics(t, string(workerScrape), webScrape)

	// Nothing was refused along the way (events, heartbeats, the pidbox).
	for name, p := range map[string]*testenv.Process{"worker": worker, "web": web} {
		if out := p.Output(); strings.Contains(out, "ACCESS_REFUSED") || strings.Contains(out, "(403)") {
			t.Errorf("%s was refused something:\n%s", name, out)
		}
	}
}

// TestRabbitMQConf boots a private RabbitMQ node (its own name, ports and
// directories; the shared node is not touched) on deploy/rabbitmq's
// rabbitmq.conf: RabbitMQ refuses to start on a setting it does not know,
// and the settings must be the ones the file promises.
func TestRabbitMQConf(t *testing.T) {
	t.Parallel()
	if os.Getenv(testenv.SkipEnv) == "1" {
		t.Skipf("%s=1: skipping RabbitMQ integration test", testenv.SkipEnv)
	}
	dir, err := os.MkdirTemp("", "renderfarm-rabbitmq-conf-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf, err := os.ReadFile("rabbitmq/rabbitmq.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rabbitmq.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	// Debian's rabbitmq-server drops to the rabbitmq user: its directories
	// must be that user's, or the node never starts.
	for _, d := range []string{"mnesia", "log"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", "rabbitmq:rabbitmq", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port := 30000 + int(time.Now().UnixNano()%5000)
	node := fmt.Sprintf("renderfarm-conf-%d@localhost", port)
	env := append(os.Environ(),
		"RABBITMQ_NODENAME="+node,
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", port),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", port+10000),
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq"), // without .conf
	)
	ctl := func(args ...string) (string, error) {
		cmd := exec.Command("timeout", append([]string{"90", "rabbitmqctl", "-n", node}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	start := exec.Command("rabbitmq-server", "-detached")
	start.Env = env
	if out, err := start.CombinedOutput(); err != nil {
		t.Fatalf("rabbitmq-server: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := ctl("shutdown"); err != nil {
			t.Logf("stopping %s: %v %s", node, err, out)
		}
	})
	var out string
	for deadline := time.Now().Add(180 * time.Second); ; time.Sleep(time.Second) { // an Erlang boot on a loaded 2-core machine
		if out, err = ctl("await_startup", "--timeout", "60"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := exec.Command("sh", "-c", "tail -n 30 "+filepath.Join(dir, "log")+"/*.log").CombinedOutput()
			t.Fatalf("private node did not start on rabbitmq.conf: %v %s\n%s", err, out, logs)
		}
	}
	for setting, want := range map[string]string{
		"application:get_env(rabbit, consumer_timeout).": "{ok,900000}",
		"application:get_env(rabbit, disk_free_limit).":  `{ok,"2GB"}`,
	} {
		got, err := ctl("eval", setting)
		if err != nil || got != want {
			t.Errorf("%s = %s (%v), want %s", setting, got, err, want)
		}
	}
}
