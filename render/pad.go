package render

import "github.com/davidbyttow/govips/v2/vips"

// pad centres a contain variant's resized image on its box, filled with the
// background colour. A translucent background needs an alpha band.
func pad(st *variantState) error {
	if st.v.fit() != FitContain {
		return nil
	}
	w, h, tw, th := st.img.Width(), st.img.Height(), st.plan.outW, st.plan.outH
	if w == tw && h == th {
		return nil
	}
	bg := st.background
	if bg.A < 255 && !st.img.HasAlpha() && st.format != FormatJPEG {
		if err := st.img.AddAlpha(); err != nil {
			return err
		}
	}
	return st.img.EmbedBackgroundRGBA((tw-w)/2, (th-h)/2, tw, th,
		&vips.ColorRGBA{R: bg.R, G: bg.G, B: bg.B, A: bg.A})
}
