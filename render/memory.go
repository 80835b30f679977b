package render

// Per-job overheads the estimate adds on top of pixel buffers: libvips'
// per-thread region buffers and the encoders' working memory.
const (
	perThreadOverhead = 8 << 20
	fixedOverhead     = 16 << 20
)

// estimateMemory is how many bytes a job may hold at its peak. It errs high:
// admission uses it to keep the sum of running jobs under the host budget.
func estimateMemory(h Header, scale int, plans []plan, vipsThreads int) int64 {
	bands := int64(max(h.Bands, 3))
	bps := int64(max(h.BytesPerSample, 1))
	// The decoded (shrunk) source is held in memory while variants are cut
	// from it.
	dw, dh := int64(scaledSize(h.Width, scale)), int64(scaledSize(h.Height, scale))
	decoded := dw * dh * bands * bps
	// A progressive JPEG can't be decoded in strips: libjpeg keeps every DCT
	// coefficient of the full-size image (2 bytes each) until the last scan,
	// whatever the shrink.
	var coefficients int64
	if h.Progressive {
		coefficients = int64(h.Width) * int64(h.Height) * bands * 2
	}
	// The largest variant's working set: resized pixels plus the encoded
	// output, with room for an alpha band and 16-bit intermediates.
	// The engine's horizontal pass (reduceH) holds its result whole: as
	// wide as the variant and as tall as the image it is cut from, at most
	// the decoded height.
	var largest, hpass int64
	for _, p := range plans {
		largest = max(largest, int64(max(p.resizeW, p.outW))*int64(max(p.resizeH, p.outH))*4*2)
		w, _ := p.storedSize(h)
		hpass = max(hpass, min(int64(w), dw)*dh*bands)
	}
	return int64(h.Bytes) + decoded + coefficients + 2*largest + hpass +
		fixedOverhead + int64(max(vipsThreads, 1))*perThreadOverhead
}
