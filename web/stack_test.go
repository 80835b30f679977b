package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/renderfarm/renderfarm/broker/celery"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/storage"
	"github.com/renderfarm/renderfarm/web"
)

const (
	token      = "test-token-0123456789abcdef"
	otherToken = "other-token-0123456789abcdef"
	journal    = "s3://journal/jobs/"
)

// stack is the web tier under test, in process behind httptest with every
// exchange checked against openapi.json, on a real RabbitMQ (a vhost of
// its own) and versitygw, with a real `renderfarm worker` process taking
// the tasks.
type stack struct {
	amqp   string
	s3     testenv.S3Server
	client *s3.Client
	conn   *broker.Conn
	store  *storage.Store
	jstore *storage.Store
	api    *apiCheck
	url    string // of the default server
}

func startStack(t *testing.T, withWorker bool) *stack {
	t.Helper()
	ctx := context.Background()
	st := &stack{amqp: testenv.RabbitMQ(t), s3: testenv.S3(t, false)}
	st.client = st.s3.Client(t)
	for _, b := range []string{"uploads", "renders", "journal", "secret"} {
		st.s3.CreateBucket(t, b)
	}
	scfg := storage.Config{S3Endpoint: st.s3.Endpoint, S3Region: st.s3.Region, S3PathStyle: true,
		S3Credentials:  credentials.NewStaticCredentialsProvider(st.s3.AccessKey, st.s3.SecretKey, ""),
		AllowedBuckets: []string{"uploads", "renders"}}
	var err error
	if st.store, err = storage.New(ctx, scfg); err != nil {
		t.Fatal(err)
	}
	scfg.AllowedBuckets = nil
	if st.jstore, err = storage.New(ctx, scfg); err != nil {
		t.Fatal(err)
	}
	if st.conn, err = broker.Dial(ctx, broker.Config{URL: st.amqp, Name: "web test"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.conn.Close() })
	if err := st.conn.Declare(ctx, celery.Queue{Name: "celery"}.Topology(celery.DefaultDeadLetter)); err != nil {
		t.Fatal(err)
	}
	if withWorker {
		testenv.Worker(t, st.amqp, st.s3.Env(), "--concurrency", "2", "--journal", journal,
			"--buckets", "uploads,renders", "--s3-path-style", "--events=false")
	}
	st.api = newAPICheck(t)
	st.url = st.serve(t, nil)
	return st
}

// serve starts a web tier on the stack's broker and stores; adjust may
// change its configuration. It returns the server's base URL.
func (st *stack) serve(t *testing.T, adjust func(*web.Config)) string {
	t.Helper()
	cfg := web.Config{
		Broker: st.conn, Exchange: "celery", RoutingKey: "celery",
		Store: st.store, Journal: &job.Journal{Store: st.jstore, Prefix: journal},
		Tokens: []string{token, otherToken}, RatePerSecond: -1,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	srv, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.api.checkRoutes(t, srv.Routes())
	ts := httptest.NewServer(st.api.wrap(srv.Handler()))
	t.Cleanup(ts.Close)
	return ts.URL
}

func (st *stack) upload(t *testing.T, bucket, key string, data []byte) string {
	t.Helper()
	_, err := st.client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatal(err)
	}
	return "s3://" + bucket + "/" + key
}

func (st *stack) object(t *testing.T, loc string) []byte {
	t.Helper()
	bucket, key, _ := strings.Cut(strings.TrimPrefix(loc, "s3://"), "/")
	out, err := st.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("reading %s: %v", loc, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// answer is one HTTP exchange as a test sees it.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("answer %d is not JSON: %q", a.status, a.body)
	}
	return v
}

// errorOf is the {"error": {...}} body's code and field.
func (a answer) errorOf(t *testing.T) (code, field string) {
	t.Helper()
	e, _ := a.json(t)["error"].(map[string]any)
	code, _ = e["code"].(string)
	field, _ = e["field"].(string)
	return code, field
}

// call sends one request; header values "" are left out.
func call(t *testing.T, method, url, auth string, body []byte, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] != "" {
			req.Header.Set(header[i], header[i+1])
		}
	}
	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: data}
}

func bearer(tok string) string { return "Bearer " + tok }

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}

// waitStatus polls GET /v1/renders/{id} until it leaves pending.
func waitStatus(t *testing.T, base, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		a := call(t, "GET", base+"/v1/renders/"+id, bearer(token), nil)
		if a.status != http.StatusOK {
			t.Fatalf("GET render %s: %d %s", id, a.status, a.body)
		}
		v := a.json(t)
		if v["status"] != "pending" {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("render %s still pending after 90s: %s", id, a.body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// apiCheck holds the handlers to openapi.json: every route they register
// is described, every request the description refuses is refused, and
// every answer validates against it, status code included. It also notes
// which operations the tests exercised.
type apiCheck struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	mu     sync.Mutex
	seen   map[string]bool
}

func newAPICheck(t *testing.T) *apiCheck {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(web.OpenAPI())
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not valid OpenAPI 3: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &apiCheck{t: t, doc: doc, router: router, seen: map[string]bool{}}
}

// checkRoutes compares the server's route patterns with the description's
// operations, both ways.
func (c *apiCheck) checkRoutes(t *testing.T, patterns []string) {
	t.Helper()
	routes := map[string]bool{}
	for _, p := range patterns {
		method, path, _ := strings.Cut(p, " ")
		if path == "/{$}" {
			path = "/"
		}
		routes[method+" "+path] = true
		if c.doc.Paths.Find(path) == nil || c.doc.Paths.Find(path).GetOperation(method) == nil {
			t.Errorf("route %s is not in openapi.json", p)
		}
	}
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			if !routes[method+" "+path] {
				t.Errorf("openapi.json describes %s %s, which the server does not route", method, path)
			}
		}
	}
}

func (c *apiCheck) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		route, params, err := c.router.FindRoute(r)
		if err != nil {
			c.t.Errorf("%s %s: not described in openapi.json: %v", r.Method, r.URL.Path, err)
			h.ServeHTTP(w, r)
			return
		}
		in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		refused := openapi3filter.ValidateRequest(r.Context(), in)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)

		if refused != nil && rec.Code < 400 {
			c.t.Errorf("%s %s answered %d to a request openapi.json does not allow: %v", r.Method, r.URL.Path, rec.Code, refused)
		}
		opts := &openapi3filter.Options{IncludeResponseStatus: true}
		if mt, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type")); mt != "application/json" {
			opts.ExcludeResponseBody = true // HTML, images, Prometheus text: described by type only
		}
		in.Options = opts
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(), Options: opts}
		out.SetBodyBytes(rec.Body.Bytes())
		if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
			c.t.Errorf("%s %s answered %d %s, not as openapi.json describes: %v", r.Method, r.URL.Path, rec.Code, truncate(rec.Body.String()), err)
		}
		c.mu.Lock()
		c.seen[route.Operation.OperationID] = true
		c.mu.Unlock()

		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// unexercised lists the described operations no request reached.
func (c *apiCheck) unexercised() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, item := range c.doc.Paths.Map() {
		for _, op := range item.Operations() {
			if !c.seen[op.OperationID] {
				out = append(out, op.OperationID)
			}
		}
	}
	return out
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
