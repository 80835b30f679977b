package render

/*
#include <malloc.h>
*/
import "C"

import (
	"os"
	"sync"

	"github.com/davidbyttow/govips/v2/vips"
)

// startOnce guards libvips' process-wide start: the only package-level
// state, because libvips itself is process-wide.
var startOnce sync.Once

// start initialises libvips for untrusted input. The first engine's thread
// count wins; libvips has one setting per process.
func start(vipsThreads int) {
	startOnce.Do(func() {
		// Read by vips_init: loaders meant for trusted files (svg, pdf,
		// magick, ...) refuse to run even if something reaches them.
		os.Setenv("VIPS_BLOCK_UNTRUSTED", "1")
		// glibc gives each thread its own arena; with libvips' many
		// short-lived buffers that fragments into RSS that never returns.
		C.mallopt(C.M_ARENA_MAX, 2)
		// Keep freed image buffers in the heap rather than handing them
		// back to the kernel at every free: profiled (docs/performance.md),
		// a quarter of a render's CPU went to page faults and zeroing as
		// each decode and resize buffer was unmapped and faulted in again.
		// trimMemory still returns it all once the engine has been idle;
		// buffers past 32 MiB (large decodes) are still mapped and unmapped
		// on their own.
		C.mallopt(C.M_MMAP_THRESHOLD, 32<<20)
		C.mallopt(C.M_TRIM_THRESHOLD, 256<<20)
		vips.LoggingSettings(nil, vips.LogLevelError)
		// Every field set on purpose: zero means "libvips default" here, not
		// zero (see the libvips notes).
		vips.Startup(&vips.Config{
			ConcurrencyLevel: max(vipsThreads, 1),
			MaxCacheFiles:    0,
			MaxCacheMem:      0,
			MaxCacheSize:     0, // operation cache off: renders never repeat
		})
	})
}

// trimMemory hands freed heap pages back to the kernel, so a worker's RSS
// falls back after a large image instead of staying at its high-water mark.
func trimMemory() { C.malloc_trim(0) }

// VipsMemory is libvips' own count of the memory it has allocated and of
// its live allocations (vips_tracked_get_mem and _allocs).
func VipsMemory() (bytes, allocations int64) {
	var st vips.MemoryStats
	vips.ReadVipsMemStats(&st)
	return st.Mem, st.Allocs
}

// VipsVersion is the version of the libvips this process runs on.
func VipsVersion() string { return vips.Version }
