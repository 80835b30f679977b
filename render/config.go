package render

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
}
