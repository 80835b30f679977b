package render

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestTuneReadsTheHost(t *testing.T) {
	meminfo := &fstest.MapFile{Data: []byte("MemTotal:       16384000 kB\nMemFree: 1 kB\n")}
	tests := []struct {
		name       string
		files      fstest.MapFS
		numCPU     int
		o          Overrides
		cpus       float64
		memory     int64
		slots      int
		vipsThread int
		from       string
	}{
		{"bare host", fstest.MapFS{"proc/meminfo": meminfo}, 8, Overrides{}, 8, 16384000 << 10, 8, 1, "MemTotal"},
		{"cgroup v2 quota and limit", fstest.MapFS{
			"proc/meminfo":             meminfo,
			"sys/fs/cgroup/cpu.max":    {Data: []byte("150000 100000\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("2147483648\n")},
		}, 8, Overrides{}, 1.5, 2 << 30, 2, 1, "cgroup v2"},
		{"cgroup v2 unlimited", fstest.MapFS{
			"proc/meminfo":             meminfo,
			"sys/fs/cgroup/cpu.max":    {Data: []byte("max 100000\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("max\n")},
		}, 4, Overrides{}, 4, 16384000 << 10, 4, 1, "MemTotal"},
		{"cgroup v1", fstest.MapFS{
			"proc/meminfo":                               meminfo,
			"sys/fs/cgroup/cpu/cpu.cfs_quota_us":         {Data: []byte("200000\n")},
			"sys/fs/cgroup/cpu/cpu.cfs_period_us":        {Data: []byte("100000\n")},
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("1073741824\n")},
		}, 16, Overrides{}, 2, 1 << 30, 2, 1, "cgroup v1"},
		{"cgroup v1 no limit", fstest.MapFS{
			"proc/meminfo": meminfo,
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")},
		}, 2, Overrides{}, 2, 16384000 << 10, 2, 1, "MemTotal"},
		{"fewer slots give libvips threads", fstest.MapFS{"proc/meminfo": meminfo}, 8, Overrides{Slots: 2}, 8, 16384000 << 10, 2, 4, "MemTotal"},
		{"overrides win", fstest.MapFS{"proc/meminfo": meminfo}, 8, Overrides{CPUs: 3, Memory: 4 << 30, VipsThreads: 2}, 3, 4 << 30, 3, 2, "override"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TuneFrom(tt.files, tt.numCPU, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if got.Host.CPUs != tt.cpus || got.Host.Memory != tt.memory || got.Slots != tt.slots || got.VipsThreads != tt.vipsThread {
				t.Errorf("cpus %v memory %d slots %d threads %d; want %v %d %d %d",
					got.Host.CPUs, got.Host.Memory, got.Slots, got.VipsThreads, tt.cpus, tt.memory, tt.slots, tt.vipsThread)
			}
			if !strings.Contains(got.Host.MemoryFrom, tt.from) {
				t.Errorf("memory from %q, want it to mention %q", got.Host.MemoryFrom, tt.from)
			}
			if want := max(int64(float64(tt.memory)*0.75)-256<<20, 64<<20); got.MemoryBudget != want {
				t.Errorf("budget %d, want %d", got.MemoryBudget, want)
			}
			if got.MaxPixels != DefaultMaxPixels || got.From["slots"] == "" {
				t.Errorf("limits or provenance missing: %+v", got)
			}
		})
	}
	if _, err := TuneFrom(fstest.MapFS{}, 1, Overrides{}); err == nil {
		t.Error("no /proc/meminfo and no error")
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"512MiB": 512 << 20, "4GiB": 4 << 30, "1.5G": 3 << 29, "100": 100, "2 GB": 2e9, "64K": 64 << 10} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-1G", "1e30TB"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
}
