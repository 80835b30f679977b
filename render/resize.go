package render

import "github.com/davidbyttow/govips/v2/vips"

// resize scales the decoded source to the variant's resize size, still in
// stored orientation. Horizontal and vertical scales are given separately
// so the result is exactly the planned size, not a pixel off from rounding.
func resize(st *variantState) error {
	tw, th := st.plan.resizeW, st.plan.resizeH
	if st.header.swapsAxes() {
		tw, th = th, tw
	}
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
	if err := st.img.ResizeWithVScale(float64(tw)/float64(w), float64(th)/float64(h), vips.KernelLanczos3); err != nil {
		return err
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
