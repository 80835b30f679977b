package render

// orient applies the EXIF orientation after resizing, when there are fewest
// pixels to turn, and drops the tag so viewers don't turn it again.
func orient(st *variantState) error {
	if st.header.Orientation <= 1 {
		return nil
	}
	return st.img.AutoRotate()
}
