package render

import "bytes"

// SourceFormat is a decoder renderfarm accepts. Anything else is refused
// before libvips sees it, so loaders meant for trusted files (svg, pdf,
// ImageMagick, ...) are never reached by an upload.
type SourceFormat string

const (
	SourceJPEG SourceFormat = "jpeg"
	SourcePNG  SourceFormat = "png"
	SourceWebP SourceFormat = "webp"
	SourceGIF  SourceFormat = "gif"
	SourceTIFF SourceFormat = "tiff"
	SourceHEIF SourceFormat = "heif"
	SourceAVIF SourceFormat = "avif"
)

var heifBrands = map[string]SourceFormat{
	"heic": SourceHEIF, "heix": SourceHEIF, "hevc": SourceHEIF, "hevx": SourceHEIF,
	"heim": SourceHEIF, "heis": SourceHEIF, "hevm": SourceHEIF, "hevs": SourceHEIF,
	"mif1": SourceHEIF, "msf1": SourceHEIF,
	"avif": SourceAVIF, "avis": SourceAVIF,
}

// sniff names the format from the file's magic bytes alone; extensions and
// declared content types are not trusted.
func sniff(b []byte) (SourceFormat, bool) {
	switch {
	case bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}):
		return SourceJPEG, true
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return SourcePNG, true
	case len(b) >= 12 && bytes.Equal(b[:4], []byte("RIFF")) && bytes.Equal(b[8:12], []byte("WEBP")):
		return SourceWebP, true
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return SourceGIF, true
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")),
		bytes.HasPrefix(b, []byte("II+\x00")), bytes.HasPrefix(b, []byte("MM\x00+")):
		return SourceTIFF, true
	case len(b) >= 12 && bytes.Equal(b[4:8], []byte("ftyp")):
		// The major brand decides; compatible brands could be read too, but
		// every HEIF/AVIF writer we know puts a recognised major brand first.
		f, ok := heifBrands[string(b[8:12])]
		return f, ok
	}
	return "", false
}

// describe guesses what a refused file is, so the error tells a person more
// than "unsupported".
func describe(b []byte) string {
	head := bytes.TrimSpace(b[:min(len(b), 512)])
	switch {
	case len(b) == 0:
		return "the file is empty"
	case bytes.HasPrefix(head, []byte("<svg")), bytes.HasPrefix(head, []byte("<?xml")):
		return "it looks like SVG/XML, which is not accepted"
	case bytes.HasPrefix(b, []byte("%PDF")):
		return "it looks like a PDF, which is not accepted"
	case isText(head):
		return "it looks like text, not an image"
	}
	return "its first bytes match none of jpeg, png, webp, gif, tiff, heif, avif"
}

func isText(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 0x09 || (c > 0x0d && c < 0x20) || c == 0x7f {
			return false
		}
	}
	return true
}
