package render

import (
	"fmt"

	"github.com/davidbyttow/govips/v2/vips"
)

// decode loads the source's pixels, once, at the chosen JPEG shrink. libvips
// decodes a random-access load whole on first touch, so decode touches one
// pixel: corrupt or truncated data fails here, as a bad-input error, rather
// than halfway through the first export. The probe's lazy image is reused
// when no shrink applies; otherwise it is closed and the source reloaded.
func decode(src []byte, probed *vips.ImageRef, shrink int) (*vips.ImageRef, error) {
	img := probed
	if shrink > 1 {
		var err error
		img, err = vips.LoadImageFromBuffer(src, loadParams(shrink))
		if err != nil {
			return probed, &Error{Code: ErrCorrupt, Msg: "cannot read the image header", Err: vipsError(err)}
		}
		probed.Close()
	}
	touch, err := img.Copy()
	if err == nil {
		if err = touch.ExtractArea(0, 0, 1, 1); err == nil {
			_, err = touch.Average()
		}
		touch.Close()
	}
	if err != nil {
		return img, &Error{Code: ErrCorrupt, Msg: fmt.Sprintf("the %s data is truncated or corrupt", sourceName(img)), Err: vipsError(err)}
	}
	return img, nil
}

func sourceName(img *vips.ImageRef) string {
	return vips.ImageTypes[img.Format()]
}
