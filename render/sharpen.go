package render

// sharpen applies libvips' unsharp mask on lightness. Downscaled photos
// look soft; a sigma around 0.5-1 restores edges.
func sharpen(st *variantState) error {
	if st.v.Sharpen <= 0 {
		return nil
	}
	// x1 and m2 are libvips' defaults: sharpen edges above a small
	// threshold, leave flat areas alone.
	return st.img.Sharpen(st.v.Sharpen, 2, 3)
}
