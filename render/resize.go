package render

import "github.com/davidbyttow/govips/v2/vips"

// resize scales the decoded source to the variant's resize size, still in
// stored orientation. Horizontal and vertical scales are given separately
// so the result is exactly the planned size, not a pixel off from rounding.
func resize(st *variantState) error {
	tw, th := st.plan.storedSize(st.header)
	w, h := st.img.Width(), st.img.Height()
	if w == tw && h == th {
		return nil
	}
	// Premultiply so transparent pixels' colours don't bleed into edges.
	alpha := st.img.HasAlpha()
	if alpha {
		if err := st.img.PremultiplyAlpha(); err != nil {
			return err
		}
	}
	hs, vs := float64(tw)/float64(w), float64(th)/float64(h)
	// The horizontal pass is the engine's own where it can be (reduceH,
	// three times libvips 8.14's speed, and a true Lanczos3 at any shrink);
	// the vertical stays libvips', whose reducev is already vectorised.
	if hs < 1 && reducibleH(st.img) {
		if err := reduceH(st.img, tw, st.threads); err != nil {
			return err
		}
		hs = 1
	}
	// gap is vips_resize's: 0 is a plain Lanczos reduce, 1 box-shrinks by
	// an integer factor first. libvips 8.14's box shrink is slow, so it
	// pays only on steep steps: measured on the vertical pass
	// (BenchmarkVerticalGap, 2026-12-02), gap 0 is 1.4-2.5x faster down to
	// 1/5, the two are level at 1/8, and gap 1 is 2x faster at 1/16. When
	// libvips does both passes, its own horizontal reduce, about as slow
	// either way, is kept under the box shrink past 4x, as before.
	gap := 0.0
	if vs < 1.0/8 || (hs != 1 && min(hs, vs) < 0.25) {
		gap = 1
	}
	if hs != 1 || st.img.Height() != th {
		if err := resizeGap(st.img, hs, vs, gap); err != nil {
			return err
		}
	}
	if alpha {
		if err := st.img.UnpremultiplyAlpha(); err != nil {
			return err
		}
	}
	// libvips rounds its output size; trim or extend the odd pixel so the
	// size is exact.
	if st.img.Width() != tw || st.img.Height() != th {
		if st.img.Width() >= tw && st.img.Height() >= th {
			return st.img.ExtractArea(0, 0, tw, th)
		}
		return st.img.Embed(0, 0, tw, th, vips.ExtendCopy)
	}
	return nil
}

// keepForSmaller hands the resized image to the cascade, before colour and
// geometry steps make it this variant's own.
func keepForSmaller(st *variantState) error {
	if st.cascade != nil {
		st.cascade.keep(st.img)
	}
	return nil
}
