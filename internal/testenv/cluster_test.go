//go:build cluster

package testenv

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// The rig is a real cluster: every node sees the three as running members.
func TestRabbitMQCluster(t *testing.T) {
	start := time.Now()
	c := RabbitMQCluster(t)
	t.Logf("three-node cluster up in %v", time.Since(start).Round(time.Millisecond))
	var want []string
	for _, n := range c.Nodes {
		want = append(want, n.Name)
	}
	slices.Sort(want)
	for _, n := range c.Nodes {
		var st struct {
			Running []string `json:"running_nodes"`
		}
		if err := json.Unmarshal([]byte(n.Ctl(t, "cluster_status", "--formatter", "json")), &st); err != nil {
			t.Fatal(err)
		}
		slices.Sort(st.Running)
		if !slices.Equal(st.Running, want) {
			t.Errorf("%s: running nodes %v, want %v", n.Name, st.Running, want)
		}
	}
}
