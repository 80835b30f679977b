package render

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Host is what Tune reads off the machine. CPUs may be fractional under a
// cgroup quota (a container given 1.5 CPUs).
type Host struct {
	CPUs         float64 `json:"cpus"`
	CPUsFrom     string  `json:"cpus_from"`
	Memory       int64   `json:"memory_bytes"`
	MemoryFrom   string  `json:"memory_from"`
	LogicalCPUs  int     `json:"logical_cpus"`
	TotalMemory  int64   `json:"total_memory_bytes"`
	CgroupMemory int64   `json:"cgroup_memory_bytes,omitempty"`
}

// Overrides replace derived values; zero keeps the derived one. They come
// from flags and RENDERFARM_* variables.
type Overrides struct {
	CPUs         float64
	Memory       int64
	Slots        int
	VipsThreads  int
	MemoryBudget int64
	MaxPixels    int64
	MaxBytes     int64
	ShrinkOnLoad ShrinkMode
}

// Tuning is a Config with the reasoning behind each value, for
// `renderfarm tune` to show.
type Tuning struct {
	Config
	Host Host              `json:"host"`
	From map[string]string `json:"from"`
}

// Budget shape: leave the OS, page cache and the Go heap a share of memory,
// and never less than a fixed floor.
const (
	budgetFraction = 0.75
	reserveBytes   = 256 << 20
	minBudget      = 64 << 20
)

// Tune reads this host's usable CPUs and memory, cgroup limits first, and
// derives the engine's settings from them.
func Tune(o Overrides) (Tuning, error) {
	return TuneFrom(os.DirFS("/"), runtime.NumCPU(), o)
}

// TuneFrom is Tune reading /sys and /proc from root, so tests can give it a
// container's files.
func TuneFrom(root fs.FS, numCPU int, o Overrides) (Tuning, error) {
	t := Tuning{From: map[string]string{}}
	h := &t.Host
	h.LogicalCPUs = numCPU
	h.CPUs, h.CPUsFrom = float64(numCPU), "runtime.NumCPU (affinity mask)"
	if q, src, ok := cgroupCPUQuota(root); ok && q < h.CPUs {
		h.CPUs, h.CPUsFrom = q, src
	}
	total, err := memTotal(root)
	if err != nil {
		return t, err
	}
	h.TotalMemory = total
	h.Memory, h.MemoryFrom = total, "/proc/meminfo MemTotal"
	if lim, src, ok := cgroupMemoryLimit(root); ok {
		h.CgroupMemory = lim
		if lim < total {
			h.Memory, h.MemoryFrom = lim, src
		}
	}
	if o.CPUs > 0 {
		h.CPUs, h.CPUsFrom = o.CPUs, "override"
	}
	if o.Memory > 0 {
		h.Memory, h.MemoryFrom = o.Memory, "override"
	}

	cores := max(1, int(math.Ceil(h.CPUs-0.01)))
	t.Slots = cores
	t.From["slots"] = fmt.Sprintf("one per usable CPU (%s)", trimFloat(h.CPUs))
	if o.Slots > 0 {
		t.Slots, t.From["slots"] = o.Slots, "override"
	}
	// Parallelism across images beats parallelism within one: with a slot
	// per core each image gets one libvips thread. Fewer slots than cores
	// (a memory-bound host) hand the spare cores to libvips.
	t.VipsThreads = max(1, cores/t.Slots)
	t.From["vips_threads"] = fmt.Sprintf("usable CPUs / slots = %d / %d", cores, t.Slots)
	if o.VipsThreads > 0 {
		t.VipsThreads, t.From["vips_threads"] = o.VipsThreads, "override"
	}
	t.MemoryBudget = max(minBudget, int64(float64(h.Memory)*budgetFraction)-reserveBytes)
	t.From["memory_budget"] = fmt.Sprintf("%.0f%% of %d MiB (%s) less %d MiB reserve",
		budgetFraction*100, h.Memory>>20, h.MemoryFrom, reserveBytes>>20)
	if o.MemoryBudget > 0 {
		t.MemoryBudget, t.From["memory_budget"] = o.MemoryBudget, "override"
	}
	t.Limits = DefaultLimits()
	t.From["max_pixels"], t.From["max_bytes"] = "default", "default"
	if o.MaxPixels > 0 {
		t.MaxPixels, t.From["max_pixels"] = o.MaxPixels, "override"
	}
	if o.MaxBytes > 0 {
		t.MaxBytes, t.From["max_bytes"] = o.MaxBytes, "override"
	}
	t.ShrinkOnLoad, t.From["shrink_on_load"] = ShrinkFine, "default: JPEG DCT scales 1/8, 1/4, 1/2, or M/8 where it is the largest variant's size"
	if o.ShrinkOnLoad != "" {
		mode, err := ParseShrinkMode(string(o.ShrinkOnLoad))
		if err != nil {
			return t, err
		}
		t.ShrinkOnLoad, t.From["shrink_on_load"] = mode, "override"
	}
	t.From["vips_cache"] = "off: every render is of a new source"
	return t, nil
}

// cgroupCPUQuota reads a CPU quota in CPUs, from cgroup v2's cpu.max or
// v1's cfs files.
func cgroupCPUQuota(root fs.FS) (float64, string, bool) {
	if b, err := fs.ReadFile(root, "sys/fs/cgroup/cpu.max"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 && f[0] != "max" {
			q, err1 := strconv.ParseFloat(f[0], 64)
			p, err2 := strconv.ParseFloat(f[1], 64)
			if err1 == nil && err2 == nil && q > 0 && p > 0 {
				return q / p, "cgroup v2 cpu.max " + strings.TrimSpace(string(b)), true
			}
		}
		return 0, "", false
	}
	q, err1 := readInt(root, "sys/fs/cgroup/cpu/cpu.cfs_quota_us")
	p, err2 := readInt(root, "sys/fs/cgroup/cpu/cpu.cfs_period_us")
	if err1 == nil && err2 == nil && q > 0 && p > 0 {
		return float64(q) / float64(p), fmt.Sprintf("cgroup v1 cfs quota %d/%d", q, p), true
	}
	return 0, "", false
}

// cgroupMemoryLimit reads a memory limit from cgroup v2's memory.max or v1's
// memory.limit_in_bytes; v1 reports "no limit" as a huge number.
func cgroupMemoryLimit(root fs.FS) (int64, string, bool) {
	if b, err := fs.ReadFile(root, "sys/fs/cgroup/memory.max"); err == nil {
		s := strings.TrimSpace(string(b))
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			return n, "cgroup v2 memory.max", true
		}
		return 0, "", false
	}
	if n, err := readInt(root, "sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil && n > 0 && n < 1<<60 {
		return n, "cgroup v1 memory.limit_in_bytes", true
	}
	return 0, "", false
}

func memTotal(root fs.FS) (int64, error) {
	b, err := fs.ReadFile(root, "proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("tune: reading memory size: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				break
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("tune: no MemTotal in /proc/meminfo")
}

func readInt(root fs.FS, name string) (int64, error) {
	b, err := fs.ReadFile(root, name)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func trimFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// ParseBytes reads a size such as 512MiB, 4G, 1.5GiB or a plain byte count.
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
	}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || f*mult > math.MaxInt64 {
		return 0, fmt.Errorf("not a size: %q (try 512MiB or 4GiB)", s)
	}
	return int64(f * mult), nil
}
