package render

import (
	"fmt"

	"github.com/davidbyttow/govips/v2/vips"
)

// Header is what the engine learns about a source before decoding any
// pixels. Width and Height are as stored; Orientation says how to turn them.
type Header struct {
	Format         SourceFormat `json:"format"`
	Width          int          `json:"width"`
	Height         int          `json:"height"`
	Bands          int          `json:"bands"`
	BytesPerSample int          `json:"bytes_per_sample"`
	Pages          int          `json:"pages"`
	Progressive    bool         `json:"progressive"`
	Orientation    int          `json:"orientation"`
	Bytes          int          `json:"bytes"`
}

// swapsAxes reports whether the EXIF orientation turns the image a quarter.
func (h Header) swapsAxes() bool { return h.Orientation >= 5 && h.Orientation <= 8 }

// DisplaySize is the size a viewer shows, after orientation.
func (h Header) DisplaySize() (int, int) {
	if h.swapsAxes() {
		return h.Height, h.Width
	}
	return h.Width, h.Height
}

// Pixels counts every frame: a 1000-frame GIF is a thousand images' work
// even though only the first is rendered, because decoders walk them.
func (h Header) Pixels() int64 { return int64(h.Width) * int64(h.Height) * int64(max(h.Pages, 1)) }

// probe reads the header with a lazy libvips load: libvips parses only the
// header until a pixel is asked for. The returned image is reused as the
// decode when no shrink-on-load applies.
func probe(src []byte, lim Limits) (Header, *vips.ImageRef, error) {
	h := Header{Bytes: len(src)}
	if lim.MaxBytes > 0 && int64(len(src)) > lim.MaxBytes {
		return h, nil, newError(ErrTooManyBytes, "", "source is %d bytes, the limit is %d", len(src), lim.MaxBytes)
	}
	format, ok := sniff(src)
	if !ok {
		return h, nil, newError(ErrUnsupportedFormat, "", "source is not an accepted image: %s", describe(src))
	}
	h.Format = format
	img, err := vips.LoadImageFromBuffer(src, loadParams(1))
	if err != nil {
		return h, nil, &Error{Code: ErrCorrupt, Msg: fmt.Sprintf("cannot read the %s header", format), Err: vipsError(err)}
	}
	h.Width, h.Height, h.Bands = img.Width(), img.Height(), img.Bands()
	h.BytesPerSample = bytesPerSample(img.BandFormat())
	h.Pages = max(img.Pages(), 1)
	h.Orientation = img.Orientation()
	if h.Orientation < 1 || h.Orientation > 8 {
		h.Orientation = 1
	}
	h.Progressive = format == SourceJPEG && hasField(img, "interlaced") && img.GetInt("interlaced") == 1
	if lim.MaxPixels > 0 && h.Pixels() > lim.MaxPixels {
		img.Close()
		frames := ""
		if h.Pages > 1 {
			frames = fmt.Sprintf(" x %d frames", h.Pages)
		}
		return h, nil, newError(ErrTooManyPixels, "", "source is %dx%d%s = %.1f MP, the limit is %.1f MP",
			h.Width, h.Height, frames, float64(h.Pixels())/1e6, float64(lim.MaxPixels)/1e6)
	}
	return h, img, nil
}

// Probe reads a source's header and checks it against the limits without
// decoding pixels.
func Probe(src []byte, lim Limits) (Header, error) {
	h, img, err := probe(src, lim)
	if img != nil {
		img.Close()
	}
	return h, err
}

// hasField guards metadata reads: a miss leaves a message in libvips'
// process-wide error buffer, which the next failing job would report.
func hasField(img *vips.ImageRef, name string) bool {
	for _, f := range img.GetFields() {
		if f == name {
			return true
		}
	}
	return false
}

func loadParams(shrink int) *vips.ImportParams {
	p := vips.NewImportParams() // sets fail, so truncated data is an error, not grey
	p.AutoRotate.Set(false)     // rotate after resizing: fewer pixels to turn
	if shrink > 1 {
		p.JpegShrinkFactor.Set(shrink)
	}
	return p
}

func bytesPerSample(f vips.BandFormat) int {
	switch f {
	case vips.BandFormatUshort, vips.BandFormatShort:
		return 2
	case vips.BandFormatUint, vips.BandFormatInt, vips.BandFormatFloat:
		return 4
	case vips.BandFormatDouble, vips.BandFormatComplex:
		return 8
	case vips.BandFormatDpComplex:
		return 16
	}
	return 1
}
