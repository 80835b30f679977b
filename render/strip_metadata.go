package render

import "encoding/binary"

// stripMetadata removes EXIF, XMP, IPTC and ICC data (GPS positions
// included) unless the variant keeps it. Exporters' own strip options are
// set too, but WebP's is broken in libvips 8.14.1, so strip the image.
func stripMetadata(st *variantState) error {
	if !st.v.strip() {
		return nil
	}
	return st.img.RemoveMetadata()
}

// stripWebPChunks drops EXIF and XMP chunks from an encoded WebP and clears
// their flags in the VP8X header. libvips 8.14.1's webpsave ignores strip
// and always writes a small EXIF block (fixed in 8.14.2), so the encoded
// file is cleaned instead. Anything unexpected leaves the data untouched.
func stripWebPChunks(data []byte) []byte {
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WEBP" {
		return data
	}
	out := make([]byte, 12, len(data))
	copy(out, data[:12])
	vp8x := -1
	for p := 12; p < len(data); {
		if p+8 > len(data) {
			return data
		}
		size := int(binary.LittleEndian.Uint32(data[p+4 : p+8]))
		end := p + 8 + size + size%2 // chunks are padded to even length
		if size < 0 || end > len(data) {
			return data
		}
		switch string(data[p : p+4]) {
		case "EXIF", "XMP ":
		default:
			if string(data[p:p+4]) == "VP8X" {
				vp8x = len(out)
			}
			out = append(out, data[p:end]...)
		}
		p = end
	}
	if vp8x >= 0 && vp8x+8 < len(out) {
		out[vp8x+8] &^= 0x08 | 0x04 // EXIF and XMP present flags
	}
	binary.LittleEndian.PutUint32(out[4:8], uint32(len(out)-8))
	return out
}
