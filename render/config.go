package render

import "fmt"

// Limits bound what one source may cost. They protect a worker from image
// bombs: a small file that declares a huge canvas or thousands of frames.
type Limits struct {
	MaxPixels int64 `json:"max_pixels"` // width x height x frames
	MaxBytes  int64 `json:"max_bytes"`  // encoded source size
}

const (
	DefaultMaxPixels = 50_000_000
	DefaultMaxBytes  = 64 << 20
)

// DefaultLimits suit photo uploads: 50 MP covers every phone and most
// cameras.
func DefaultLimits() Limits {
	return Limits{MaxPixels: DefaultMaxPixels, MaxBytes: DefaultMaxBytes}
}

// Config is what an Engine runs with; Tune derives it from the host.
type Config struct {
	Limits
	// Slots is how many renders run at once.
	Slots int
	// VipsThreads is libvips' worker threads per image. Parallelism comes
	// from many images at once, so one thread each is the efficient default.
	VipsThreads int
	// MemoryBudget caps the bytes that admitted renders may hold together,
	// by their estimates.
	MemoryBudget int64
	// ShrinkOnLoad is how far a JPEG's decode may already scale it down;
	// empty means ShrinkFine.
	ShrinkOnLoad ShrinkMode
}

// ShrinkMode chooses the JPEG DCT scales a decode may use: the speed and
// fidelity trade of shrink-on-load (docs/performance.md has the figures).
type ShrinkMode string

const (
	// ShrinkFine uses the smallest power-of-two scale (1/8, 1/4, 1/2)
	// that covers the largest variant, or a scale between them (3/8, 5/8,
	// 6/8, 7/8) where that lands exactly on the largest variant's size:
	// 2560 px to 1600 px is a 5/8 decode and no resample at all. On the
	// bench's photographs that costs 0.00003 SSIM on average against
	// ShrinkCoarse, at most 0.0003 on one output.
	ShrinkFine ShrinkMode = "fine"
	// ShrinkCoarse uses only 1/8, 1/4 and 1/2, as Pillow's draft() and
	// libvips' own shrink-on-load do.
	ShrinkCoarse ShrinkMode = "coarse"
	// ShrinkOff always decodes the full size and leaves all scaling to the
	// Lanczos resample: the most faithful (DCT scaling aliases fine texture
	// into a crisper grain), and the slowest.
	ShrinkOff ShrinkMode = "off"
)

// ParseShrinkMode reads a ShrinkMode; "" is ShrinkFine.
func ParseShrinkMode(s string) (ShrinkMode, error) {
	switch m := ShrinkMode(s); m {
	case "":
		return ShrinkFine, nil
	case ShrinkFine, ShrinkCoarse, ShrinkOff:
		return m, nil
	}
	return "", fmt.Errorf("shrink-on-load must be fine, coarse or off, got %q", s)
}
