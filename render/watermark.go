package render

import (
	"github.com/davidbyttow/govips/v2/vips"
)

// watermark overlays the variant's watermark image, scaled to a fraction of
// the output width and faded to its opacity. The watermark bytes come from
// the caller and pass the same format and size checks as any source.
func watermark(st *variantState) error {
	st.opaque = !st.img.HasAlpha()
	wm := st.v.Watermark
	if wm == nil {
		return nil
	}
	h, mark, err := probe(st.watermark, st.limits)
	if err != nil {
		if e, ok := err.(*Error); ok {
			e.Field, e.Msg = "watermark.image", "watermark "+e.Msg
		}
		return err
	}
	defer mark.Close()
	if h.Orientation > 1 {
		if err := mark.AutoRotate(); err != nil {
			return err
		}
	}
	wmState := &variantState{img: mark}
	if err := toSRGB(wmState); err != nil {
		return err
	}
	if !mark.HasAlpha() {
		if err := mark.AddAlpha(); err != nil {
			return err
		}
	}
	scale := wm.Scale
	if scale == 0 {
		scale = defaultWMScale
	}
	width := max(1, int(float64(st.img.Width())*scale+0.5))
	if f := float64(width) / float64(mark.Width()); f != 1 {
		if err := mark.Resize(f, vips.KernelLanczos3); err != nil {
			return err
		}
	}
	if wm.Opacity != nil && *wm.Opacity < 1 {
		if err := mark.Linear([]float64{1, 1, 1, *wm.Opacity}, []float64{0, 0, 0, 0}); err != nil {
			return err
		}
	}
	if !st.img.HasAlpha() {
		if err := st.img.AddAlpha(); err != nil {
			return err
		}
	}
	margin := defaultWMMargin
	if wm.Margin != nil {
		margin = *wm.Margin
	}
	x, y := place(wm.Position, st.img.Width(), st.img.Height(), mark.Width(), mark.Height(), margin)
	return st.img.Composite(mark, vips.BlendModeOver, x, y)
}

// place returns the top-left corner for an overlay of ow x oh on a base of
// bw x bh at the compass position, margin pixels in from the edges.
func place(pos Position, bw, bh, ow, oh, margin int) (int, int) {
	x, y := (bw-ow)/2, (bh-oh)/2
	if pos == "" {
		pos = "south-east"
	}
	switch pos {
	case "north", "north-east", "north-west":
		y = margin
	case "south", "south-east", "south-west":
		y = bh - oh - margin
	}
	switch pos {
	case "west", "north-west", "south-west":
		x = margin
	case "east", "north-east", "south-east":
		x = bw - ow - margin
	}
	return x, y
}
