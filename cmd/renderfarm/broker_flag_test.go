package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// Every command reads --broker alike: a node list it cannot use is a
// usage error (exit 2) naming the mistake, before anything connects.
func TestBrokerListUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, list := range []struct{ value, want string }{
		{"amqp://u:secret@127.0.0.1:1//,amqp://u:secret@127.0.0.1:2//", "separate several URLs with ';'"},
		{"127.0.0.1:1;amqp://127.0.0.1:2//", "the first entry must be a full amqp:// URL"},
		{"amqp://127.0.0.1:1//;u:secret@127.0.0.1:2", "an entry without a scheme is a host[:port]"},
	} {
		for _, cmd := range [][]string{
			{"worker", "--state-dir", dir, "--metrics-listen", ""},
			{"web", "--listen", "127.0.0.1:0", "--tokens", webToken},
			{"replay", "--journal", "file://" + dir + "/", filepath.Join(dir, "m.json")},
			{"enqueue", "--journal", "file://" + dir + "/", "--source", "file:///nowhere.jpg", "--recipe", "default", "--dest", "file:///out/"},
		} {
			out, err := run(t, append(cmd, "--broker", list.value)...)
			if exitCode(err) != exitUsage || err == nil || !strings.Contains(err.Error()+out, list.want) {
				t.Errorf("%s --broker %q: exit %d, %v\n%s; want exit %d saying %q", cmd[0], list.value, exitCode(err), err, out, exitUsage, list.want)
			}
			if strings.Contains(err.Error()+out, "secret") {
				t.Errorf("%s: the password shows: %v\n%s", cmd[0], err, out)
			}
		}
	}
}
