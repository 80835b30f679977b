package render

/*
#cgo pkg-config: vips
#cgo LDFLAGS: -ljpeg
#include "jpeg_decode.h"
*/
import "C"

import (
	"errors"
	"unsafe"

	"github.com/davidbyttow/govips/v2/vips"
)

// errJPEGUnsupported means the JPEG is in a colour space the engine's own
// decoder leaves to libvips (CMYK, YCCK).
var errJPEGUnsupported = errors.New("render: JPEG colour space left to libvips")

// jpegDirect reports whether the engine decodes this source with
// libjpeg-turbo itself (jpeg_decode.c), and so may use any DCT scale M/8
// rather than only libvips' 1/1, 1/2, 1/4 and 1/8. CMYK JPEGs (4 bands)
// go through libvips.
func jpegDirect(h Header) bool {
	return h.Format == SourceJPEG && (h.Bands == 1 || h.Bands == 3)
}

// jpegMaxScans bounds a progressive JPEG's scans. Each scan is a pass over
// every coefficient, so a few kilobytes of scans can cost minutes of CPU;
// encoders write about ten, and TurboJPEG's own limit is 500.
const jpegMaxScans = 500

// decodeJPEG decodes src at DCT scale scale/8 and points img, the probe's
// lazy load of the same bytes, at the decoded pixels; img keeps its
// metadata. Corrupt data, and more than maxScans scans, is an *Error with
// ErrCorrupt. At scale 1/8 a progressive JPEG's AC scans are left out
// (jpegDCOnly).
func decodeJPEG(src []byte, img *vips.ImageRef, scale, maxScans int) error {
	if scale == 1 {
		if dc := jpegDCOnly(src, maxScans, func() ([]byte, bool) { return jpegFullIDCT(src, scale) }); dc != nil {
			src = dc
		}
	}
	return decodeJPEGStream(src, img, scale, maxScans)
}

// jpegFullIDCT returns the ids of src's components whose IDCT at scale/8
// reads AC coefficients, as the linked libjpeg decides it; ok is false if
// the header cannot be read.
func jpegFullIDCT(src []byte, scale int) (ids []byte, ok bool) {
	if len(src) == 0 {
		return nil, false
	}
	var buf [C.RF_JPEG_MAX_COMPONENTS]C.uchar
	n := C.rf_jpeg_full_idct((*C.uchar)(unsafe.Pointer(&src[0])), C.size_t(len(src)), C.int(scale), &buf[0])
	if n < 0 {
		return nil, false
	}
	return C.GoBytes(unsafe.Pointer(&buf[0]), n), true
}

// decodeJPEGStream is decodeJPEG on exactly the stream given.
func decodeJPEGStream(src []byte, img *vips.ImageRef, scale, maxScans int) error {
	if len(src) == 0 {
		return newError(ErrCorrupt, "", "the JPEG data is empty")
	}
	var (
		rc  C.int
		msg [C.RF_JPEG_MSG_MAX]C.char
	)
	err := apply(img, func(in *C.VipsImage, out **C.VipsImage) C.int {
		rc = C.rf_jpeg_decode((*C.uchar)(unsafe.Pointer(&src[0])), C.size_t(len(src)), C.int(scale), C.int(maxScans), in, out, &msg[0])
		return rc
	})
	switch {
	case rc == C.RF_JPEG_OK && err == nil:
		return nil
	case rc == C.RF_JPEG_UNSUPPORTED:
		return errJPEGUnsupported
	case rc == C.RF_JPEG_CORRUPT:
		return &Error{Code: ErrCorrupt, Msg: "the JPEG data is truncated or corrupt", Err: errors.New(C.GoString(&msg[0]))}
	case rc == C.RF_JPEG_NO_MEMORY:
		return &Error{Code: ErrInternal, Msg: "cannot allocate the decoded image", Err: vipsError(err)}
	}
	return &Error{Code: ErrInternal, Msg: "cannot decode the JPEG", Err: err}
}
