package render

// stripMetadata removes EXIF, XMP, IPTC and ICC data (GPS positions
// included) unless the variant keeps it. Exporters' own strip options are
// set too, but WebP's is broken in libvips 8.14.1, so strip the image.
func stripMetadata(st *variantState) error {
	if !st.v.strip() {
		return nil
	}
	return st.img.RemoveMetadata()
}
