package render

import (
	"fmt"
	"math"

	"github.com/davidbyttow/govips/v2/vips"
)

// Difference is how far two encoded images are apart, for checking a rerun
// of a job against the outputs it stored. Sizes are as decoded; the pixel
// scores need equal sizes and are left at zero (Comparable false)
// otherwise.
type Difference struct {
	Width, Height           int
	OtherWidth, OtherHeight int
	Comparable              bool
	// MeanAbs is the mean absolute difference of the samples, each on
	// 0-255 (8-bit sRGB, alpha included when either image has one): 0 for
	// identical pixels, about 1-2 for a re-encode at another quality, up to
	// 255.
	MeanAbs float64
	// PSNR is the peak signal-to-noise ratio in dB, +Inf for identical
	// pixels; above about 40 dB the difference is hard to see.
	PSNR float64
}

// Compare decodes both images with libvips and scores their pixel
// difference. Only the formats the engine accepts as sources are decoded
// (the outputs it writes are among them).
func (e *Engine) Compare(a, b []byte) (Difference, error) {
	pa, wa, ha, alphaA, err := comparePixels(a, false)
	if err != nil {
		return Difference{}, err
	}
	pb, wb, hb, alphaB, err := comparePixels(b, alphaA)
	if err != nil {
		return Difference{}, err
	}
	if alphaB && !alphaA {
		// Only the second has alpha: decode the first again with one, so
		// the samples line up.
		if pa, _, _, _, err = comparePixels(a, true); err != nil {
			return Difference{}, err
		}
	}
	d := Difference{Width: wa, Height: ha, OtherWidth: wb, OtherHeight: hb}
	if wa != wb || ha != hb || len(pa) != len(pb) || len(pa) == 0 {
		return d, nil
	}
	d.Comparable = true
	var sumAbs, sumSq float64
	for i := range pa {
		diff := float64(pa[i]) - float64(pb[i])
		sumAbs += math.Abs(diff)
		sumSq += diff * diff
	}
	n := float64(len(pa))
	d.MeanAbs = sumAbs / n
	d.PSNR = math.Inf(1)
	if sumSq > 0 {
		d.PSNR = 10 * math.Log10(255*255/(sumSq/n))
	}
	return d, nil
}

// comparePixels decodes an image to 8-bit sRGB samples, with an alpha
// band when it has one or withAlpha asks for one.
func comparePixels(data []byte, withAlpha bool) (pix []byte, w, h int, alpha bool, err error) {
	format, ok := sniff(data)
	if !ok {
		return nil, 0, 0, false, newError(ErrUnsupportedFormat, "", "not an accepted image: %s", describe(data))
	}
	img, err := vips.LoadImageFromBuffer(data, vips.NewImportParams())
	if err != nil {
		return nil, 0, 0, false, &Error{Code: ErrCorrupt, Msg: fmt.Sprintf("cannot decode the %s image", format), Err: vipsError(err)}
	}
	defer img.Close()
	if err := img.ToColorSpace(vips.InterpretationSRGB); err != nil {
		return nil, 0, 0, false, vipsError(err)
	}
	if err := img.Cast(vips.BandFormatUchar); err != nil {
		return nil, 0, 0, false, vipsError(err)
	}
	if withAlpha {
		if err := img.AddAlpha(); err != nil {
			return nil, 0, 0, false, vipsError(err)
		}
	}
	pix, err = img.ToBytes()
	if err != nil {
		return nil, 0, 0, false, vipsError(err)
	}
	return pix, img.Width(), img.Height(), img.HasAlpha(), nil
}
