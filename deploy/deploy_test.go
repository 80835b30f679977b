// Package deploy's tests check the deployment files in this directory with
// the tools that will read them: cloud-init's schema checker, bash and
// shellcheck on the scripts cloud-init runs, systemd-analyze on the units,
// and a real RabbitMQ importing definitions.json, whose users then run the
// real worker and web tier and are refused what their role does not need.
// scripts/setup.sh installs the tools; a missing one fails the test.
package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var roles = []string{"worker", "web"}

// cloudConfig is the part of a cloud-config these tests read.
type cloudConfig struct {
	WriteFiles []struct {
		Path        string `yaml:"path"`
		Content     string `yaml:"content"`
		Permissions string `yaml:"permissions"`
	} `yaml:"write_files"`
	RunCmd []any `yaml:"runcmd"`
}

func readCloudConfig(t *testing.T, role string) cloudConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("cloud-init", role+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c cloudConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s.yaml: %v", role, err)
	}
	return c
}

// file returns the content cloud-init writes at path.
func (c cloudConfig) file(t *testing.T, path string) string {
	t.Helper()
	for _, f := range c.WriteFiles {
		if f.Path == path {
			return f.Content
		}
	}
	t.Fatalf("no write_files entry for %s", path)
	return ""
}

// tool runs a checker and fails the test with its output when it fails;
// an absent tool is a failure too (scripts/setup.sh installs them).
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed: run scripts/setup.sh (%v)", name, err)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestCloudInitSchema(t *testing.T) {
	for _, role := range roles {
		out := tool(t, "cloud-init", "schema", "--config-file", filepath.Join("cloud-init", role+".yaml"))
		if !strings.Contains(out, "Valid cloud-config") {
			t.Errorf("%s.yaml: %s", role, out)
		}
	}
}

// TestCloudInitScripts runs bash -n and shellcheck on every script the
// user-data writes (a #! first line) and on its runcmd, as the shell
// cloud-init hands it to.
func TestCloudInitScripts(t *testing.T) {
	for _, role := range roles {
		c := readCloudConfig(t, role)
		dir := t.TempDir()
		n := 0
		for _, f := range c.WriteFiles {
			if !strings.HasPrefix(f.Content, "#!/bin/bash") {
				continue
			}
			if f.Permissions != "0755" {
				t.Errorf("%s.yaml: script %s is not executable (permissions %q)", role, f.Path, f.Permissions)
			}
			p := filepath.Join(dir, filepath.Base(f.Path))
			if err := os.WriteFile(p, []byte(f.Content), 0o755); err != nil {
				t.Fatal(err)
			}
			tool(t, "bash", "-n", p)
			tool(t, "shellcheck", p)
			n++
		}
		if n == 0 {
			t.Errorf("%s.yaml: no scripts found; the test would check nothing", role)
		}
		// runcmd: each entry is a string (run by sh) or an argv list.
		var sh strings.Builder
		sh.WriteString("#!/bin/sh\n")
		for _, cmd := range c.RunCmd {
			switch v := cmd.(type) {
			case string:
				sh.WriteString(v + "\n")
			case []any:
				for i, a := range v {
					if i > 0 {
						sh.WriteString(" ")
					}
					sh.WriteString("'" + strings.ReplaceAll(a.(string), "'", `'\''`) + "'")
				}
				sh.WriteString("\n")
				if p, _ := v[0].(string); p != "" && strings.HasPrefix(p, "/usr/local/") {
					c.file(t, p) // a runcmd program the user-data itself must provide
				}
			}
		}
		p := filepath.Join(dir, "runcmd.sh")
		if err := os.WriteFile(p, []byte(sh.String()), 0o755); err != nil {
			t.Fatal(err)
		}
		tool(t, "sh", "-n", p)
		tool(t, "shellcheck", p)
	}
}

// TestHealthcheckScript checks the image's health check script, which the
// image runs with bash; testFarm and `make image` run it for real.
func TestHealthcheckScript(t *testing.T) {
	tool(t, "bash", "-n", "docker/healthcheck.sh")
	tool(t, "shellcheck", "docker/healthcheck.sh")
	// Roles without a server are healthy while they run.
	tool(t, "bash", "docker/healthcheck.sh", "/usr/local/bin/renderfarm", "tune", "--json")
}

// TestHealthcheckFromPID1 runs the health check as Docker does: without
// arguments, in the PID namespace where `renderfarm web` is PID 1, with the
// container's environment; the listen address given as a flag, then as
// RENDERFARM_LISTEN. The web tier serves /healthz before it reaches a
// broker, so none is needed.
func TestHealthcheckFromPID1(t *testing.T) {
	bin := renderfarmBinary(t)
	script, err := filepath.Abs("docker/healthcheck.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		args, env func(addr string) []string
	}{
		{"flag", func(a string) []string { return []string{"web", "--listen", a} }, func(string) []string { return nil }},
		{"env", func(string) []string { return []string{"web"} }, func(a string) []string { return []string{"RENDERFARM_LISTEN=" + a} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close()
			env := append(os.Environ(), tc.env(addr)...)
			web := exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", "--kill-child", bin}, tc.args(addr)...)...)
			web.Env = append(env, "RENDERFARM_BROKER_URL=amqp://guest:guest@127.0.0.1:1/", "RENDERFARM_API_TOKENS=healthcheck-test-token")
			var out bytes.Buffer
			web.Stdout, web.Stderr = &out, &out
			if err := web.Start(); err != nil {
				t.Fatalf("unshare: %v", err)
			}
			t.Cleanup(func() { _ = web.Process.Kill(); _ = web.Wait() })
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
					resp.Body.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("web tier not serving on %s:\n%s", addr, out.String())
				}
			}
			// unshare's one child is PID 1 of the new namespace.
			children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", web.Process.Pid, web.Process.Pid))
			if err != nil || len(strings.Fields(string(children))) != 1 {
				t.Fatalf("children of unshare: %q %v", children, err)
			}
			pid1 := strings.Fields(string(children))[0]
			check := exec.Command("nsenter", "--target", pid1, "--pid", "--mount", "--", "bash", script)
			check.Env = env
			if b, err := check.CombinedOutput(); err != nil {
				t.Errorf("health check of web (%s) as PID 1: %v\n%s", strings.Join(tc.args(addr), " "), err, b)
			}
		})
	}
}

// The user-data carries the units and shared files inline (it must work
// with nothing else); these must not drift from deploy/systemd or from each
// other.
func TestCloudInitCopiesAreIdentical(t *testing.T) {
	web, worker := readCloudConfig(t, "web"), readCloudConfig(t, "worker")
	for _, role := range roles {
		unit := "renderfarm-" + role + ".service"
		want, err := os.ReadFile(filepath.Join("systemd", unit))
		if err != nil {
			t.Fatal(err)
		}
		if got := readCloudConfig(t, role).file(t, "/etc/systemd/system/"+unit); got != string(want) {
			t.Errorf("%s.yaml's %s differs from deploy/systemd/%s", role, unit, unit)
		}
	}
	for _, p := range []string{"/usr/local/sbin/renderfarm-install", "/etc/apt/apt.conf.d/20auto-upgrades",
		"/etc/needrestart/conf.d/renderfarm.conf", "/etc/renderfarm/install.env"} {
		if web.file(t, p) != worker.file(t, p) {
			t.Errorf("%s differs between web.yaml and worker.yaml", p)
		}
	}
}

// envFile parses KEY=VALUE lines.
func envFile(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m
}

// The hosts' settings must name what definitions.json declares and grants:
// the role's own user, the vhost, and the one task route, declared the same
// way (a queue declared otherwise stops the worker and the web tier).
func TestCloudInitSettingsMatchBroker(t *testing.T) {
	defs := readDefinitions(t)
	route := defs.Bindings[0].Destination + ":" + defs.Bindings[0].Source + ":" + defs.Bindings[0].RoutingKey
	for _, role := range roles {
		env := envFile(readCloudConfig(t, role).file(t, "/etc/renderfarm/"+role+".env"))
		want := regexp.MustCompile(`^amqp://renderfarm-` + role + `:[^@]+@[^/]+/` + regexp.QuoteMeta(defs.Vhosts[0].Name) + `$`)
		if !want.MatchString(env["RENDERFARM_BROKER_URL"]) {
			t.Errorf("%s.env: RENDERFARM_BROKER_URL %q is not the renderfarm-%s user on vhost %s", role, env["RENDERFARM_BROKER_URL"], role, defs.Vhosts[0].Name)
		}
		q := env["RENDERFARM_QUEUES"] + env["RENDERFARM_QUEUE"]
		if q != route {
			t.Errorf("%s.env: queue %q, definitions.json binds %q", role, q, route)
		}
		if env["RENDERFARM_QUORUM"] != "true" || env["RENDERFARM_DELIVERY_LIMIT"] != strconv.Itoa(deliveryLimit) || env["RENDERFARM_DEAD_LETTER_EXCHANGE"] != "renderfarm.dead" {
			t.Errorf("%s.env: quorum settings %v do not match definitions.json's renderfarm.render", role, env)
		}
	}
}

// Every RENDERFARM_* setting the user-data writes is one the role's command
// reads (its --help lists the variable): a misspelt name would be ignored
// silently, and a worker meant to drain on an EC2 retirement would not.
func TestCloudInitSettingsAreFlags(t *testing.T) {
	bin := renderfarmBinary(t)
	for _, role := range roles {
		help, err := exec.Command(bin, role, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("renderfarm %s --help: %v\n%s", role, err, help)
		}
		for k := range envFile(readCloudConfig(t, role).file(t, "/etc/renderfarm/"+role+".env")) {
			if strings.HasPrefix(k, "RENDERFARM_") && !strings.Contains(string(help), "$"+k+"]") {
				t.Errorf("%s.env sets %s, which renderfarm %s does not read", role, k, role)
			}
		}
	}
	if env := envFile(readCloudConfig(t, "worker").file(t, "/etc/renderfarm/worker.env")); env["RENDERFARM_EC2_LIFECYCLE"] != "true" {
		t.Error("worker.env does not turn on --ec2-lifecycle: a spot notice or a scale-in would drop the renders running")
	}
}

// unitSetting returns the last value of key in a unit file.
func unitSetting(t *testing.T, unit, key string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("systemd", unit))
	if err != nil {
		t.Fatal(err)
	}
	v := ""
	for _, l := range strings.Split(string(b), "\n") {
		if k, val, ok := strings.Cut(l, "="); ok && k == key {
			v = val
		}
	}
	if v == "" {
		t.Fatalf("%s has no %s", unit, key)
	}
	return v
}

// systemd must wait longer than the drain grace before SIGKILL, or the
// renders (and requests) the grace promised to finish are killed.
func TestStopTimeoutExceedsGrace(t *testing.T) {
	for _, role := range roles {
		unit := "renderfarm-" + role + ".service"
		m := regexp.MustCompile(`--shutdown-grace (\S+)`).FindStringSubmatch(unitSetting(t, unit, "ExecStart"))
		if m == nil {
			t.Fatalf("%s: ExecStart sets no --shutdown-grace", unit)
		}
		grace, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatal(err)
		}
		stop, err := time.ParseDuration(unitSetting(t, unit, "TimeoutStopSec"))
		if err != nil {
			t.Fatal(err)
		}
		// The margin: after the grace the worker still sends worker-offline
		// and closes its connection.
		if stop < grace+10*time.Second {
			t.Errorf("%s: TimeoutStopSec %v is not at least 10s longer than --shutdown-grace %v", unit, stop, grace)
		}
		for _, k := range []string{"NoNewPrivileges", "ProtectSystem", "MemoryMax", "User"} {
			unitSetting(t, unit, k)
		}
		if v := unitSetting(t, unit, "ProtectSystem"); v != "strict" {
			t.Errorf("%s: ProtectSystem=%s, want strict", unit, v)
		}
	}
}

// TestWorkerMemoryFollowsMemoryMax runs the worker unit's ExecStart shell
// line (with `tune` for `worker`) in a private mount namespace whose cgroup
// filesystem holds this process's cgroup with a memory.max, as systemd
// makes one for MemoryMax: tune must then see that limit, not MemTotal.
// (This machine's cgroups are hybrid, so a real cgroup v2 memory limit
// cannot be made here; the kernel's /proc/self/cgroup is real.)
func TestWorkerMemoryFollowsMemoryMax(t *testing.T) {
	bin := renderfarmBinary(t)
	exec0 := unitSetting(t, "renderfarm-worker.service", "ExecStart")
	const prefix, worker = "/bin/sh -c '", "/usr/local/bin/renderfarm worker --shutdown-grace 30s"
	if !strings.HasPrefix(exec0, prefix) || !strings.HasSuffix(exec0, "'") || !strings.Contains(exec0, worker) {
		t.Fatalf("ExecStart is not the expected sh -c line: %s", exec0)
	}
	// systemd's unescaping: $$ is a literal $.
	script := strings.ReplaceAll(exec0[len(prefix):len(exec0)-1], "$$", "$")
	script = strings.Replace(script, worker, bin+" tune", 1)
	for _, tc := range []struct{ max, want string }{
		// 4 GiB: budget 75% of it less 256 MiB.
		{"4294967296", "memory budget 2816 MiB 75% of 4096 MiB (override)"},
		{"max", "(/proc/meminfo MemTotal) less 256 MiB"},
	} {
		fake := `mount -t tmpfs none /sys/fs/cgroup && cg=$(sed -n "s/^0:://p" /proc/self/cgroup) && ` +
			`mkdir -p "/sys/fs/cgroup$cg" && echo "$1" >"/sys/fs/cgroup$cg/memory.max" && exec sh -c "$0"`
		out, err := exec.Command("unshare", "--mount", "sh", "-c", fake, script, tc.max).CombinedOutput()
		if err != nil {
			t.Fatalf("memory.max %s: %v\n%s", tc.max, err, out)
		}
		var mem string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "memory budget") {
				mem = strings.Join(strings.Fields(l), " ") // the table's column widths are not the point
			}
		}
		if !strings.Contains(mem, tc.want) {
			t.Errorf("memory.max %s: tune says %q, want %q\n%s", tc.max, mem, tc.want, out)
		}
	}
}

// TestSystemdVerify runs systemd-analyze verify on the units in a scratch
// root holding what they reference: the real binary, the env files, kill
// for ExecReload, and systemd's own units. Verify exits 0 on warnings
// (unknown keys, bad values), so any output at all is a failure.
func TestSystemdVerify(t *testing.T) {
	t.Parallel()
	bin := renderfarmBinary(t)
	root := t.TempDir()
	for _, d := range []string{"usr/local/bin", "usr/bin", "etc/renderfarm", "etc/systemd/system", "usr/lib/systemd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tool(t, "cp", bin, filepath.Join(root, "usr/local/bin/renderfarm"))
	tool(t, "cp", "/usr/bin/kill", filepath.Join(root, "usr/bin/kill"))
	tool(t, "cp", "/usr/bin/sh", filepath.Join(root, "usr/bin/sh"))
	tool(t, "cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/"))
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	var units []string
	for _, role := range roles {
		unit := "renderfarm-" + role + ".service"
		tool(t, "cp", filepath.Join("systemd", unit), filepath.Join(root, "etc/systemd/system", unit))
		if err := os.WriteFile(filepath.Join(root, "etc/renderfarm", role+".env"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		units = append(units, "/etc/systemd/system/"+unit)
	}
	out := tool(t, "systemd-analyze", append([]string{"verify", "--man=no", "--root=" + root}, units...)...)
	if out != "" {
		t.Errorf("systemd-analyze verify:\n%s", out)
	}
}

// definitions is the part of definitions.json these tests read.
type definitions struct {
	Vhosts []struct {
		Name string `json:"name"`
	} `json:"vhosts"`
	Users []struct {
		Name string `json:"name"`
	} `json:"users"`
	Bindings []struct {
		Source, Destination string
		RoutingKey          string `json:"routing_key"`
	} `json:"bindings"`
}

func readDefinitions(t *testing.T) definitions {
	t.Helper()
	b, err := os.ReadFile("rabbitmq/definitions.json")
	if err != nil {
		t.Fatal(err)
	}
	var d definitions
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("definitions.json: %v", err)
	}
	if len(d.Vhosts) != 1 || len(d.Bindings) == 0 {
		t.Fatalf("definitions.json: want one vhost and the task binding first, got %+v", d)
	}
	return d
}
