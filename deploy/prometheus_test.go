package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The Prometheus configuration and alert rules are what promtool accepts
// (Debian's prometheus package ships it).
func TestPrometheusFiles(t *testing.T) {
	tool(t, "promtool", "check", "rules", "prometheus/rules.yml")
	// check config opens the files it names: the rules beside it, and the
	// web tier's token file, which exists only on a monitoring host.
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("a-token-of-16-chars\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile("prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.ReplaceAll(string(cfg), "/etc/prometheus/renderfarm-web-token", token))
	for name, data := range map[string][]byte{"prometheus.yml": cfg, "rules.yml": rules} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tool(t, "promtool", "check", "config", filepath.Join(dir, "prometheus.yml"))
	var dash struct {
		Panels []struct {
			Targets []struct{ Expr string }
		}
	}
	data, err := os.ReadFile("grafana/renderfarm.json")
	if err == nil {
		err = json.Unmarshal(data, &dash)
	}
	if err != nil || len(dash.Panels) == 0 {
		t.Fatalf("grafana/renderfarm.json: %v (%d panels)", err, len(dash.Panels))
	}
}

var metricName = regexp.MustCompile(`\brenderfarm_[a-z0-9_]+`)

// monitoredMetrics is every renderfarm_* name the alert rules and the
// dashboard use, as its family is named (histograms without _bucket,
// _sum or _count).
func monitoredMetrics(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, f := range []string{"prometheus/rules.yml", "grafana/renderfarm.json"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricName.FindAllString(string(data), -1) {
			for _, sfx := range []string{"_bucket", "_sum", "_count"} {
				m = strings.TrimSuffix(m, sfx)
			}
			seen[m] = true
		}
	}
	var out []string
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// checkMonitoredMetrics fails for each metric a rule or panel names that
// none of the live scrapes exports: a renamed metric would otherwise
// silence its alert without a word.
func checkMonitoredMetrics(t *testing.T, scrapes ...string) {
	t.Helper()
	all := strings.Join(scrapes, "\n")
	names := monitoredMetrics(t)
	if len(names) < 10 {
		t.Fatalf("only %d metrics found in the rules and dashboard: %v", len(names), names)
	}
	for _, m := range names {
		if !strings.Contains(all, "# TYPE "+m+" ") {
			t.Errorf("%s is in the rules or the dashboard but no live worker or web tier exports it", m)
		}
	}
}
