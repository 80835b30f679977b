package render

import "github.com/davidbyttow/govips/v2/vips"

// toSRGB brings every source to 8-bit sRGB: CMYK and images with an ICC
// profile go through the profile (CMYK without one through libvips' built-in
// CMYK profile), and 16-bit, greyscale and other spaces are converted.
// Browsers assume sRGB for untagged images, so outputs carry no profile.
func toSRGB(st *variantState) error {
	img := st.img
	interp := img.Interpretation()
	if img.HasICCProfile() || interp == vips.InterpretationCMYK {
		fallback := "srgb"
		if interp == vips.InterpretationCMYK {
			fallback = "cmyk"
		}
		if err := img.TransformICCProfileWithFallback("srgb", fallback); err != nil {
			return err
		}
		if err := img.RemoveICCProfile(); err != nil {
			return err
		}
	}
	if img.Interpretation() != vips.InterpretationSRGB || img.BandFormat() != vips.BandFormatUchar {
		if err := img.ToColorSpace(vips.InterpretationSRGB); err != nil {
			return err
		}
		if img.BandFormat() != vips.BandFormatUchar {
			return img.Cast(vips.BandFormatUchar)
		}
	}
	return nil
}
