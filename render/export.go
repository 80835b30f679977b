package render

import (
	"github.com/davidbyttow/govips/v2/vips"
)

// export encodes the result. JPEGs are baseline unless asked otherwise,
// with optimised Huffman tables: a few percent smaller for little time.
func export(st *variantState) error {
	v, strip := st.v, st.v.strip()
	effort := func(def int) int {
		if v.Effort != nil {
			return *v.Effort
		}
		return def
	}
	quality := func(def int) int {
		if v.Quality > 0 {
			return v.Quality
		}
		return def
	}
	var (
		data []byte
		err  error
	)
	switch st.format {
	case FormatJPEG:
		data, _, err = st.img.ExportJpeg(&vips.JpegExportParams{
			StripMetadata:  strip,
			Quality:        quality(defaultJPEGQuality),
			Interlace:      v.Progressive,
			OptimizeCoding: true,
		})
	case FormatWebP:
		data, _, err = st.img.ExportWebp(&vips.WebpExportParams{
			StripMetadata:   strip,
			Quality:         quality(defaultWebPQuality),
			ReductionEffort: effort(defaultWebPEffort),
		})
	case FormatAVIF:
		data, _, err = st.img.ExportAvif(&vips.AvifExportParams{
			StripMetadata: strip,
			Quality:       quality(defaultAVIFQuality),
			Bitdepth:      8,
			Effort:        effort(defaultAVIFEffort),
		})
	case FormatPNG:
		data, _, err = st.img.ExportPng(&vips.PngExportParams{
			StripMetadata: strip,
			Compression:   effort(defaultPNGEffort),
			Filter:        vips.PngFilterAll,
			Interlace:     v.Progressive,
		})
	}
	if err != nil {
		return err
	}
	if st.format == FormatWebP && strip {
		data = stripWebPChunks(data)
	}
	st.out.Data = data
	st.out.Width, st.out.Height = st.img.Width(), st.img.Height()
	return nil
}
