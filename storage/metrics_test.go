package storage

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Failures are counted by operation, scheme and code, with only fixed
// label values; not-found answers are not failures.
func TestFailuresAreCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	root := t.TempDir()
	s := newStore(t, Config{FileRoots: []string{root}, Metrics: m})
	ctx := context.Background()

	_, _ = s.Get(ctx, MustParseLocation("file://"+root+"/missing.jpg"), 0)
	_, _ = s.Get(ctx, MustParseLocation("file:///etc/passwd"), 0)
	_, _ = s.Put(ctx, MustParseLocation("file:///etc/renderfarm-test"), []byte("x"), PutOptions{})
	_, _ = s.Get(ctx, Location{Scheme: "gopher\nhostile", Raw: "gopher://x"}, 0)

	// The five unavailable series exist from the start, at 0; the three
	// failures add one each; not_found adds none.
	if n := testutil.CollectAndCount(m.errors); n != 5+3 {
		t.Errorf("%d series, want 8 (5 outage series at 0, 3 failures, no not_found)", n)
	}
	for _, c := range []struct {
		op, scheme, code string
		want             float64
	}{
		{"get", "file", CodeNotFound, 0},
		{"get", "s3", CodeUnavailable, 0},
		{"put", "file", CodeUnavailable, 0},
		{"get", "file", CodeForbidden, 1},
		{"put", "file", CodeForbidden, 1},
		{"get", "other", CodeInvalidLocation, 1},
	} {
		if got := testutil.ToFloat64(m.errors.WithLabelValues(c.op, c.scheme, c.code)); got != c.want {
			t.Errorf("errors{op=%s,scheme=%s,code=%s} = %v, want %v", c.op, c.scheme, c.code, got, c.want)
		}
	}
}
