package render

import "math"

// plan is the geometry of one variant, worked out from the header before
// any decoding so that the shrink-on-load and the memory estimate can be
// chosen for the whole job.
type plan struct {
	// resizeW x resizeH is the size after resizing, in display orientation,
	// before cover crops or contain pads it to outW x outH.
	resizeW, resizeH int
	outW, outH       int
}

// planVariant works out a variant's sizes for a source shown at srcW x srcH.
func planVariant(v *Variant, srcW, srcH int) plan {
	sw, sh := float64(srcW), float64(srcH)
	bw, bh := float64(v.Width), float64(v.Height)
	var scale float64
	switch v.fit() {
	case FitFill:
		return plan{resizeW: v.Width, resizeH: v.Height, outW: v.Width, outH: v.Height}
	case FitInside, FitContain:
		scale = math.Inf(1)
		if v.Width > 0 {
			scale = bw / sw
		}
		if v.Height > 0 {
			scale = math.Min(scale, bh/sh)
		}
	case FitCover, FitOutside:
		if v.Width > 0 {
			scale = bw / sw
		}
		if v.Height > 0 {
			scale = math.Max(scale, bh/sh)
		}
	}
	if scale > 1 && !v.Enlarge && (v.fit() == FitInside || v.fit() == FitOutside) {
		scale = 1
	}
	p := plan{resizeW: scaled(srcW, scale), resizeH: scaled(srcH, scale)}
	switch v.fit() {
	case FitCover:
		// Rounding may leave the covering size a pixel short of the box.
		p.resizeW, p.resizeH = max(p.resizeW, v.Width), max(p.resizeH, v.Height)
		p.outW, p.outH = v.Width, v.Height
	case FitContain:
		p.resizeW, p.resizeH = min(p.resizeW, v.Width), min(p.resizeH, v.Height)
		p.outW, p.outH = v.Width, v.Height
	default:
		p.outW, p.outH = p.resizeW, p.resizeH
	}
	return p
}

// storedSize is the resize size in the source's stored axes, before the
// EXIF orientation turns it: what resampling the decoded pixels must reach.
func (p plan) storedSize(h Header) (w, ht int) {
	if h.swapsAxes() {
		return p.resizeH, p.resizeW
	}
	return p.resizeW, p.resizeH
}

func scaled(n int, scale float64) int {
	return min(max(int(math.Round(float64(n)*scale)), 1), MaxDimension)
}

// chooseScale picks the JPEG DCT scale M/8 to decode at and returns M; 8
// is the full size. libjpeg decodes at any M from 1 to 8, and the scale
// must cover every variant's resize size, so the final resample only ever
// reduces. The smallest covering power of two (1/8, 1/4, 1/2) is what
// Pillow's draft() and libvips' shrink-on-load use; ShrinkFine also takes
// a scale between them where it lands exactly on the largest variant, so
// that the decode is that variant's whole resample: 2560 px to 1600 px is a
// 5/8 decode and no Lanczos at all. A scale between them that misses would
// stack the DCT's block-wise filter under a Lanczos at a small ratio, which
// measurably blurred texture (docs/performance.md), so it is not used.
// ShrinkOff, and libvips where it decodes (CMYK), never use a finer scale.
func chooseScale(h Header, plans []plan, mode ShrinkMode) int {
	if h.Format != SourceJPEG || mode == ShrinkOff {
		return 8
	}
	fine := mode != ShrinkCoarse && jpegDirect(h)
	for m := 1; m < 8; m++ {
		covers, exact := true, false
		for _, p := range plans {
			needW, needH := p.storedSize(h)
			w, ht := scaledSize(h.Width, m), scaledSize(h.Height, m)
			covers = covers && w >= needW && ht >= needH
			exact = exact || (w == needW && ht == needH)
		}
		if covers && (m&(m-1) == 0 || fine && exact) {
			return m
		}
	}
	return 8
}

// scaledSize is libjpeg's output size for n pixels at DCT scale m/8.
func scaledSize(n, m int) int { return ceilDiv(n*m, 8) }

// powerOfTwoShrink is the libvips shrink-on-load (1, 2, 4 or 8) that covers
// at least what DCT scale m/8 does.
func powerOfTwoShrink(m int) int {
	s := 8
	for s*m > 8 {
		s /= 2
	}
	return s
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
