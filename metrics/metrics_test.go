package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Wrap must label by the route it was given, not the raw path: ids in paths
// would otherwise grow the series without bound.
func TestWrapLabelsByRoute(t *testing.T) {
	reg := NewRegistry()
	m := NewHTTP(reg, "test")
	h := m.Wrap("GET /things/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/missing") {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	for _, p := range []string{"/things/1", "/things/2", "/things/missing"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}

	want := `
# HELP renderfarm_test_http_requests_total HTTP requests answered, by route, method and status code.
# TYPE renderfarm_test_http_requests_total counter
renderfarm_test_http_requests_total{code="200",method="get",route="GET /things/{id}"} 2
renderfarm_test_http_requests_total{code="404",method="get",route="GET /things/{id}"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "renderfarm_test_http_requests_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(m.inFlight); n != 0 {
		t.Fatalf("in flight after all requests returned: %v", n)
	}

	// The registry's own handler serves what was counted.
	rec := httptest.NewRecorder()
	Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `route="GET /things/{id}"`) || !strings.Contains(rec.Body.String(), "go_goroutines") {
		t.Fatalf("/metrics lacks the route series or the Go collector:\n%.2000s", rec.Body.String())
	}
}
