package render

import (
	"sort"

	"github.com/davidbyttow/govips/v2/vips"
)

// cascade cuts each variant from the smallest already-rendered size that
// still covers it, rather than from the full decode: in a 1600/800/200/64
// recipe the 64 px variant resamples a 200 px image, not a 2560 px one.
// libvips' resize costs in proportion to its input's pixels, so this turns
// N full-size resamples into one and a series of small ones.
type cascade struct {
	base *vips.ImageRef
	// kept are materialised resize results in stored orientation, before
	// colour conversion, each with the decoded source's aspect ratio.
	kept []*vips.ImageRef
}

// source returns the smallest image that covers w x h (stored axes).
func (c *cascade) source(w, h int) *vips.ImageRef {
	best := c.base
	for _, k := range c.kept {
		if k.Width() >= w && k.Height() >= h && k.Width()*k.Height() < best.Width()*best.Height() {
			best = k
		}
	}
	return best
}

// keep materialises img, the result of a resize, and keeps a reference for
// later variants. Failure only costs speed, so it is not an error.
func (c *cascade) keep(img *vips.ImageRef) {
	if img.Width()*img.Height() >= c.base.Width()*c.base.Height() || materialize(img) != nil {
		return
	}
	if cp, err := img.Copy(); err == nil {
		c.kept = append(c.kept, cp)
	}
}

func (c *cascade) close() {
	for _, k := range c.kept {
		k.Close()
	}
	c.kept = nil
}

// renderOrder lists variant indexes largest first, so each can feed the
// smaller ones after it, and marks which results are worth keeping: those
// that keep the source's aspect (not fill) and that a later variant fits in.
func renderOrder(plans []plan, variants []Variant) (order []int, keep []bool) {
	order = make([]int, len(plans))
	for i := range order {
		order[i] = i
	}
	area := func(i int) int { return plans[i].resizeW * plans[i].resizeH }
	sort.SliceStable(order, func(a, b int) bool { return area(order[a]) > area(order[b]) })
	keep = make([]bool, len(plans))
	for n, i := range order {
		if variants[i].fit() == FitFill {
			continue
		}
		for _, j := range order[n+1:] {
			if plans[j].resizeW <= plans[i].resizeW && plans[j].resizeH <= plans[i].resizeH {
				keep[i] = true
				break
			}
		}
	}
	return order, keep
}
