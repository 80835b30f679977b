package render

import "github.com/davidbyttow/govips/v2/vips"

// crop cuts a cover variant's resized image down to its box, keeping the
// part its gravity picks.
func crop(st *variantState) error {
	if st.v.fit() != FitCover {
		return nil
	}
	w, h, tw, th := st.img.Width(), st.img.Height(), st.plan.outW, st.plan.outH
	if w == tw && h == th {
		return nil
	}
	switch st.v.gravity() {
	case GravityAttention:
		return st.img.SmartCrop(tw, th, vips.InterestingAttention)
	case GravityEntropy:
		return st.img.SmartCrop(tw, th, vips.InterestingEntropy)
	}
	return st.img.ExtractArea((w-tw)/2, (h-th)/2, tw, th)
}
