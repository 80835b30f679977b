package render

import (
	"errors"
	"fmt"

	"github.com/davidbyttow/govips/v2/vips"
)

// decode loads the source's pixels, once, at JPEG DCT scale scale/8, and
// returns the image and the scale it used. JPEGs in RGB, YCbCr or grey are
// decoded by libjpeg-turbo directly (jpeg_decode.c), eagerly and whole, so
// corrupt data fails here as a bad-input error. Everything else goes
// through libvips: its random-access load decodes on first touch, so decode
// touches one pixel to the same end. The probe's lazy image is reused when
// it can be; otherwise it is closed and the source reloaded.
func decode(src []byte, probed *vips.ImageRef, h Header, scale int) (*vips.ImageRef, int, error) {
	if jpegDirect(h) {
		err := decodeJPEG(src, probed, scale, jpegMaxScans)
		if !errors.Is(err, errJPEGUnsupported) {
			return probed, scale, err
		}
	}
	img := probed
	shrink := powerOfTwoShrink(scale)
	if shrink > 1 {
		var err error
		img, err = vips.LoadImageFromBuffer(src, loadParams(shrink))
		if err != nil {
			return probed, scale, &Error{Code: ErrCorrupt, Msg: "cannot read the image header", Err: vipsError(err)}
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
		return img, 8 / shrink, &Error{Code: ErrCorrupt, Msg: fmt.Sprintf("the %s data is truncated or corrupt", sourceName(img)), Err: vipsError(err)}
	}
	return img, 8 / shrink, nil
}

func sourceName(img *vips.ImageRef) string {
	return vips.ImageTypes[img.Format()]
}
