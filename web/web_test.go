package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/renderfarm/renderfarm/broker/celery"
	"github.com/renderfarm/renderfarm/fleet"
	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/web"
)

// TestWebTier runs the API against a real broker, S3 and worker, one
// behaviour per subtest, in order: later ones look at what earlier ones
// enqueued. At the end every operation openapi.json describes must have
// been exercised.
func TestWebTier(t *testing.T) {
	st := startStack(t, true)
	base := st.url

	t.Run("a posted render reaches the worker and GET shows its outputs", func(t *testing.T) {
		src := st.upload(t, "uploads", "u/photo.jpg", testenv.Testdata(t, "photo.jpg"))
		a := call(t, "POST", base+"/v1/renders", bearer(token), mustJSON(map[string]any{
			"source": src,
			"outputs": []map[string]any{
				{"key": "s3://renders/photo/800.webp", "width": 800, "format": "webp"},
				{"key": "s3://renders/photo/160.jpg", "width": 160, "height": 160, "fit": "cover"},
			},
			"cache_control": "public, max-age=60",
		}))
		if a.status != http.StatusAccepted {
			t.Fatalf("POST: %d %s", a.status, a.body)
		}
		v := a.json(t)
		id, _ := v["id"].(string)
		if _, ok := job.IDTime(id); !ok {
			t.Fatalf("id %q is not a UUIDv7", id)
		}
		if v["status_url"] != "/v1/renders/"+id || a.header.Get("Location") != "/v1/renders/"+id {
			t.Fatalf("status_url %v, Location %q", v["status_url"], a.header.Get("Location"))
		}
		got := waitStatus(t, base, id)
		if got["status"] != "succeeded" {
			t.Fatalf("render ended %v", got)
		}
		outs, _ := got["outputs"].([]any)
		if len(outs) != 2 {
			t.Fatalf("outputs: %v", got["outputs"])
		}
		for i, want := range []struct {
			key   string
			w, h  float64
			magic []byte
		}{{"s3://renders/photo/800.webp", 800, 533, []byte("RIFF")}, {"s3://renders/photo/160.jpg", 160, 160, []byte{0xff, 0xd8}}} {
			o := outs[i].(map[string]any)
			if o["key"] != want.key || o["width"] != want.w || o["height"] != want.h {
				t.Errorf("output %d: %v, want %s %vx%v", i, o, want.key, want.w, want.h)
			}
			stored := st.object(t, want.key)
			sum := sha256.Sum256(stored)
			if o["sha256"] != fmt.Sprintf("%x", sum) || !bytes.HasPrefix(stored, want.magic) {
				t.Errorf("output %d: stored object does not match the reported sha256 %v", i, o["sha256"])
			}
			// The output's URL redirects to a presigned S3 URL that
			// serves the same bytes without credentials.
			r := call(t, "GET", base+o["url"].(string), bearer(token), nil)
			if r.status != http.StatusFound {
				t.Fatalf("GET %s: %d %s", o["url"], r.status, r.body)
			}
			resp, err := http.Get(r.header.Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, stored) {
				t.Errorf("presigned URL of output %d: %d, %d bytes", i, resp.StatusCode, len(body))
			}
		}
		if src, _ := got["source"].(map[string]any); src["width"] != 1200.0 {
			t.Errorf("source: %v", got["source"])
		}
	})

	t.Run("a failed render shows its error", func(t *testing.T) {
		src := st.upload(t, "uploads", "u/corrupt.png", testenv.Testdata(t, "corrupt.png"))
		a := call(t, "POST", base+"/v1/renders", bearer(token), mustJSON(map[string]any{
			"source": src, "recipe": "default", "dest": "s3://renders/corrupt/"}))
		if a.status != http.StatusAccepted {
			t.Fatalf("POST: %d %s", a.status, a.body)
		}
		got := waitStatus(t, base, a.json(t)["id"].(string))
		e, _ := got["error"].(map[string]any)
		if got["status"] != "failed" || e["code"] != "corrupt_image" || got["outputs"] != nil {
			t.Fatalf("corrupt source: %v", got)
		}
	})

	t.Run("the status page shows the recent render's thumbnail", func(t *testing.T) {
		magenta := color.RGBA{230, 20, 200, 255}
		src := st.upload(t, "uploads", "u/magenta.png", solidPNG(400, 300, magenta))
		a := call(t, "POST", base+"/v1/renders", bearer(token), mustJSON(map[string]any{
			"source": src,
			"outputs": []map[string]any{
				{"key": "s3://renders/magenta/120.jpg", "width": 120},
				{"key": "s3://renders/magenta/400.jpg", "width": 400},
			}}))
		if a.status != http.StatusAccepted {
			t.Fatalf("POST: %d %s", a.status, a.body)
		}
		id := a.json(t)["id"].(string)
		if got := waitStatus(t, base, id); got["status"] != "succeeded" {
			t.Fatalf("render ended %v", got)
		}
		// The page is cached for a few seconds: a fresh server shows the
		// journal as it is now.
		// With the fleet view, as renderfarm web runs it.
		view := fleet.NewView(st.conn, []string{"celery"}, celery.DefaultDeadLetter, time.Second)
		if err := view.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer view.Stop(context.Background())
		page := st.serve(t, func(c *web.Config) { c.Fleet = view })
		u, _ := url.Parse(page + "/")
		u.User = url.UserPassword("ops", token) // a browser's Basic auth: the token is the password
		dom := testenv.DumpDOM(t, u.String())
		// The fleet comes first: the worker (it sends no events, so it
		// shows from its stats reply), its queue, the dead letters.
		worker := regexp.MustCompile(`(?s)<tr id="worker-[^"]+">.*?</tr>`).FindString(dom)
		queue := regexp.MustCompile(`(?s)<tr id="queue-celery">.*?</tr>`).FindString(dom)
		if !regexp.MustCompile(`[0-2]/2<`).MatchString(worker) || !strings.Contains(worker, ">online<") ||
			!strings.Contains(queue, `<td class="num">1</td>`) || !strings.Contains(dom, `<tr id="dead-letter">`) ||
			strings.Index(dom, `id="workers"`) > strings.Index(dom, `id="render-`) {
			t.Fatalf("the status page's fleet section lacks the worker (2 slots, online), the queue with its consumer or the dead letters, or is not on top:\nworker %q\nqueue %q\n%s", worker, queue, truncate(dom))
		}
		row := regexp.MustCompile(`(?s)<tr id="render-` + id + `">.*?</tr>`).FindString(dom)
		if !strings.Contains(row, `class="state succeeded"`) || !strings.Contains(row, "<img") {
			t.Fatalf("status page has no succeeded row with an image for %s:\n%s", id, truncate(dom))
		}
		// Tall enough for the fleet section above the renders.
		shot := testenv.Screenshot(t, u.String(), 1200, 1600)
		// The thumbnail is the smallest output, 120x90, shown at its size.
		if n := testenv.CountColour(shot, magenta, 40); n < 120*90*8/10 {
			t.Fatalf("screenshot shows %d magenta pixels, want the 120x90 thumbnail (%d)", n, 120*90)
		}
	})

	t.Run("bad bodies get 400s naming the field, and nothing is enqueued", func(t *testing.T) {
		src := "s3://uploads/u/photo.jpg"
		out := func(extra string) string {
			return `{"source":"` + src + `","outputs":[{"key":"s3://renders/x/1.jpg","width":100` + extra + `}]}`
		}
		before := enqueued(t, base)
		for _, tc := range []struct {
			name, body, ctype string
			status            int
			code, field       string
		}{
			{"not JSON", `{"source":`, "", 400, "invalid_request", ""},
			{"not an object", `[1,2]`, "", 400, "invalid_request", ""},
			{"unknown field", `{"source":"` + src + `","recipe":"default","dest":"s3://renders/x/","colour":"red"}`, "", 400, "invalid_request", "colour"},
			{"no source", `{"recipe":"default","dest":"s3://renders/x/"}`, "", 400, "invalid_request", "source"},
			{"recipe without dest", `{"source":"` + src + `","recipe":"default"}`, "", 400, "invalid_request", "dest"},
			{"unknown recipe", `{"source":"` + src + `","recipe":"posters","dest":"s3://renders/x/"}`, "", 400, "invalid_request", "recipe"},
			{"zero height", out(`,"height":0`), "", 400, "invalid_request", "outputs[0].height"},
			{"huge width", strings.Replace(out(""), `"width":100`, `"width":99999`, 1), "", 400, "invalid_request", "outputs[0].width"},
			{"bad format", out(`,"format":"bmp"`), "", 400, "invalid_request", "outputs[0].format"},
			{"wrong type", out(`,"quality":"high"`), "", 400, "invalid_request", "outputs[0].quality"},
			{"ftp source", strings.Replace(out(""), src, "ftp://example.com/a.jpg", 1), "", 400, "invalid_location", "source"},
			{"metadata address", strings.Replace(out(""), src, "https://169.254.169.254/latest/meta-data/", 1), "", 400, "forbidden", "source"},
			{"IPv4-translated loopback", strings.Replace(out(""), src, "https://[::ffff:0:7f00:1]/a.jpg", 1), "", 400, "forbidden", "source"},
			{"bucket not allowed", strings.Replace(out(""), src, "s3://secret/a.jpg", 1), "", 400, "forbidden", "source"},
			{"output bucket not allowed", strings.Replace(out(""), "s3://renders/x/1.jpg", "s3://secret/x.jpg", 1), "", 400, "forbidden", "outputs[0].key"},
			{"traversal key", strings.Replace(out(""), "s3://renders/x/1.jpg", "s3://renders/../x.jpg", 1), "", 400, "invalid_location", "outputs[0].key"},
			{"file outside roots", strings.Replace(out(""), src, "file:///etc/passwd", 1), "", 400, "forbidden", "source"},
			{"dest in a refused bucket", `{"source":"` + src + `","recipe":"default","dest":"s3://secret/x/"}`, "", 400, "forbidden", "dest"},
			{"CR/LF in cache_control", `{"source":"` + src + `","recipe":"default","dest":"s3://renders/x/","cache_control":"public\r\nX-Evil: 1"}`, "", 400, "invalid_argument", "cache_control"},
			{"newline in content_disposition", `{"source":"` + src + `","recipe":"default","dest":"s3://renders/x/","content_disposition":"inline\nX: y"}`, "", 400, "invalid_argument", "content_disposition"},
			{"metadata key not a token", `{"source":"` + src + `","recipe":"default","dest":"s3://renders/x/","metadata":{"bad key":"v"}}`, "", 400, "invalid_argument", "metadata"},
			{"metadata value with CR", `{"source":"` + src + `","recipe":"default","dest":"s3://renders/x/","metadata":{"k":"a\rb"}}`, "", 400, "invalid_argument", "metadata"},
			{"a second object after the body", out("") + `{"source":"s3://uploads/other.jpg"}`, "", 400, "invalid_request", ""},
			{"garbage after the body", out("") + ` garbage`, "", 400, "invalid_request", ""},
			{"text body", out(""), "text/plain", 415, "unsupported_media_type", ""},
			{"too large", `{"source":"` + strings.Repeat("a", 2<<20) + `"}`, "", 413, "body_too_large", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := call(t, "POST", base+"/v1/renders", bearer(token), []byte(tc.body), "Content-Type", tc.ctype)
				code, field := a.errorOf(t)
				if a.status != tc.status || code != tc.code || field != tc.field {
					t.Errorf("%d %s %q, want %d %s %q: %s", a.status, code, field, tc.status, tc.code, tc.field, a.body)
				}
			})
		}
		if after := enqueued(t, base); after != before {
			t.Errorf("bad requests enqueued %v tasks", after-before)
		}
	})

	t.Run("tokens: 401 without a valid one, probes open", func(t *testing.T) {
		basic := func(pass string) string {
			return "Basic " + base64.StdEncoding.EncodeToString([]byte("anyone:"+pass))
		}
		for _, tc := range []struct {
			name, method, path, auth string
			status                   int
		}{
			{"no token", "GET", "/openapi.json", "", 401},
			{"wrong token", "GET", "/openapi.json", bearer("not-the-token-0123456789"), 401},
			{"a token's prefix", "GET", "/openapi.json", bearer(token[:20]), 401},
			{"empty bearer", "GET", "/openapi.json", "Bearer ", 401},
			{"bearer", "GET", "/openapi.json", bearer(token), 200},
			{"lower-case scheme", "GET", "/openapi.json", "bearer " + otherToken, 200},
			{"basic, token as password", "GET", "/openapi.json", basic(token), 200},
			{"basic, wrong password", "GET", "/openapi.json", basic("nope"), 401},
			{"post without token", "POST", "/v1/renders", "", 401},
			{"status without token", "GET", "/v1/renders/" + uuid.NewString(), "", 401},
			{"page without token", "GET", "/", "", 401},
			{"metrics without token", "GET", "/metrics", "", 401},
			{"healthz is open", "GET", "/healthz", "", 200},
			{"readyz is open", "GET", "/readyz", "", 200},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var body []byte
				if tc.method == "POST" {
					body = []byte(`{}`)
				}
				a := call(t, tc.method, base+tc.path, tc.auth, body)
				if a.status != tc.status {
					t.Fatalf("%d, want %d: %s", a.status, tc.status, a.body)
				}
				if tc.status == 401 && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without WWW-Authenticate: %v", a.header)
				}
			})
		}
	})

	t.Run("an Idempotency-Key retried returns the same id", func(t *testing.T) {
		body := mustJSON(map[string]any{"source": "s3://uploads/u/photo.jpg", "recipe": "default", "dest": "s3://renders/idem/"})
		first := call(t, "POST", base+"/v1/renders", bearer(token), body, "Idempotency-Key", "upload-42")
		again := call(t, "POST", base+"/v1/renders", bearer(token), body, "Idempotency-Key", "upload-42")
		if first.status != 202 || again.status != 202 || first.json(t)["id"] != again.json(t)["id"] {
			t.Fatalf("retry: %d %s then %d %s", first.status, first.body, again.status, again.body)
		}
		if again.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay not marked: %v", again.header)
		}
		if !bytes.Equal(first.body, again.body) || first.header.Get("Location") != again.header.Get("Location") {
			t.Errorf("the replay differs from the first answer:\n%s\n%s", first.body, again.body)
		}
		other := call(t, "POST", base+"/v1/renders", bearer(otherToken), body, "Idempotency-Key", "upload-42")
		if other.status != 202 || other.json(t)["id"] == first.json(t)["id"] {
			t.Errorf("another token's same key shares the id: %s", other.body)
		}
		changed := bytes.Replace(body, []byte("idem/"), []byte("idem2/"), 1)
		if a := call(t, "POST", base+"/v1/renders", bearer(token), changed, "Idempotency-Key", "upload-42"); a.status != 422 {
			t.Errorf("same key, another body: %d %s", a.status, a.body)
		}
		if a := call(t, "POST", base+"/v1/renders", bearer(token), body, "Idempotency-Key", "upload-43"); a.status != 202 || a.json(t)["id"] == first.json(t)["id"] {
			t.Errorf("another key: %d %s", a.status, a.body)
		}
	})

	t.Run("a batch has a result per item", func(t *testing.T) {
		ok := map[string]any{"source": "s3://uploads/u/photo.jpg", "outputs": []map[string]any{{"key": "s3://renders/batch/a.jpg", "width": 64}}}
		bad := map[string]any{"source": "s3://uploads/u/photo.jpg", "outputs": []map[string]any{{"key": "s3://renders/batch/b.jpg", "width": -1}}}
		ok2 := map[string]any{"source": "s3://uploads/u/photo.jpg", "outputs": []map[string]any{{"key": "s3://renders/batch/c.jpg", "width": 32}}}
		a := call(t, "POST", base+"/v1/renders/batch", bearer(token), mustJSON(map[string]any{"requests": []any{ok, bad, ok2}}))
		if a.status != 200 {
			t.Fatalf("batch: %d %s", a.status, a.body)
		}
		res, _ := a.json(t)["results"].([]any)
		if len(res) != 3 {
			t.Fatalf("results: %s", a.body)
		}
		for i, wantStatus := range []float64{202, 400, 202} {
			r := res[i].(map[string]any)
			if r["status"] != wantStatus {
				t.Errorf("item %d: %v", i, r)
			}
		}
		if e := res[1].(map[string]any)["error"].(map[string]any); e["field"] != "requests[1].outputs[0].width" {
			t.Errorf("item 1's error: %v", e)
		}
		for _, i := range []int{0, 2} {
			id := res[i].(map[string]any)["id"].(string)
			if got := waitStatus(t, base, id); got["status"] != "succeeded" {
				t.Errorf("batch item %d: %v", i, got)
			}
		}
		tooMany := make([]any, 101)
		for i := range tooMany {
			tooMany[i] = ok
		}
		a = call(t, "POST", base+"/v1/renders/batch", bearer(token), mustJSON(map[string]any{"requests": tooMany}))
		if code, field := a.errorOf(t); a.status != 400 || field != "requests" {
			t.Errorf("101 items: %d %s %s", a.status, code, field)
		}
	})

	t.Run("ids: unknown is 404, malformed is 400", func(t *testing.T) {
		if a := call(t, "GET", base+"/v1/renders/"+uuid.NewString(), bearer(token), nil); a.status != 404 {
			t.Errorf("unknown v4 id: %d %s", a.status, a.body)
		}
		if a := call(t, "GET", base+"/v1/renders/no%20such%20id", bearer(token), nil); a.status != 400 {
			t.Errorf("malformed id: %d %s", a.status, a.body)
		}
		if a := call(t, "GET", base+"/v1/renders/"+uuid.NewString()+"/outputs/0", bearer(token), nil); a.status != 404 {
			t.Errorf("outputs of an unknown id: %d %s", a.status, a.body)
		}
	})

	t.Run("over the rate: 429 with Retry-After, per token", func(t *testing.T) {
		limited := st.serve(t, func(c *web.Config) { c.RatePerSecond, c.Burst, c.BatchMax = 0.5, 3, 3 })
		for i := range 3 {
			if a := call(t, "GET", limited+"/openapi.json", bearer(token), nil); a.status != 200 {
				t.Fatalf("request %d within the burst: %d", i, a.status)
			}
		}
		a := call(t, "GET", limited+"/openapi.json", bearer(token), nil)
		if code, _ := a.errorOf(t); a.status != 429 || code != "rate_limited" {
			t.Fatalf("over the burst: %d %s", a.status, a.body)
		}
		if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 || s > 3 {
			t.Errorf("Retry-After %q, want the 2 s until a token is back", a.header.Get("Retry-After"))
		}
		if a := call(t, "GET", limited+"/openapi.json", bearer(otherToken), nil); a.status != 200 {
			t.Errorf("another token is limited too: %d", a.status)
		}
	})

	t.Run("batches are charged before their body is read", func(t *testing.T) {
		limited := st.serve(t, func(c *web.Config) { c.RatePerSecond, c.Burst, c.BatchMax = 0.1, 3, 3 })
		item := `{"source":"s3://uploads/u/photo.jpg","recipe":"default","dest":"s3://renders/b/"}`
		for i, body := range []string{
			`{"requests": [`, // does not decode
			`{"requests": [` + strings.Repeat(item+",", 3) + item + `]}`, // over --batch-max
			`{"requests": []} {"requests": []}`,                          // trailing data
		} {
			if a := call(t, "POST", limited+"/v1/renders/batch", bearer(token), []byte(body)); a.status != 400 {
				t.Fatalf("bad batch %d: %d %s", i, a.status, a.body)
			}
		}
		a := call(t, "POST", limited+"/v1/renders/batch", bearer(token), []byte(`{"requests": [`))
		if code, _ := a.errorOf(t); a.status != 429 || code != "rate_limited" {
			t.Fatalf("a fourth bad batch over a burst of 3: %d %s", a.status, a.body)
		}
	})

	t.Run("failed authentications are throttled per client address", func(t *testing.T) {
		guarded := st.serve(t, func(c *web.Config) { c.AuthFailures = 3 })
		for i := range 3 {
			if a := call(t, "GET", guarded+"/openapi.json", bearer(fmt.Sprintf("guess-%016d", i)), nil); a.status != 401 {
				t.Fatalf("guess %d: %d", i, a.status)
			}
		}
		for _, tok := range []string{"guess-0000000000000009", token} {
			a := call(t, "GET", guarded+"/openapi.json", bearer(tok), nil)
			if code, _ := a.errorOf(t); a.status != 429 || code != "rate_limited" || a.header.Get("Retry-After") == "" {
				t.Fatalf("after 3 failures, a token is still looked at: %d %s", a.status, a.body)
			}
		}
		// Probes need no token and are never throttled.
		if a := call(t, "GET", guarded+"/healthz", "", nil); a.status != 200 {
			t.Errorf("/healthz: %d", a.status)
		}
	})

	if missing := st.api.unexercised(); len(missing) > 0 {
		t.Errorf("operations in openapi.json no test exercised: %v", missing)
	}
}

// enqueued reads renderfarm_web_renders_enqueued_total from /metrics.
func enqueued(t *testing.T, base string) float64 {
	t.Helper()
	a := call(t, "GET", base+"/metrics", bearer(token), nil)
	m := regexp.MustCompile(`(?m)^renderfarm_web_renders_enqueued_total ([0-9.e+]+)$`).FindSubmatch(a.body)
	if a.status != 200 || m == nil {
		t.Fatalf("metrics: %d, no enqueued counter:\n%s", a.status, truncate(string(a.body)))
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func solidPNG(w, h int, c color.RGBA) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
