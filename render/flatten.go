package render

import "github.com/davidbyttow/govips/v2/vips"

// flatten composes transparency onto the background for formats that have
// none, and drops an alpha band the watermark added to an opaque image.
func flatten(st *variantState) error {
	if !st.img.HasAlpha() {
		return nil
	}
	if st.format == FormatJPEG {
		bg := st.background
		return st.img.Flatten(&vips.Color{R: bg.R, G: bg.G, B: bg.B})
	}
	if st.opaque {
		return st.img.ExtractBand(0, st.img.Bands()-1)
	}
	return nil
}
