package render

import (
	"fmt"
	"testing"
)

// BenchmarkVerticalGap times libvips' vertical pass, as resize runs it after
// the engine's horizontal one, with and without its box pre-shrink (gap 1
// and 0), at the shrinks where resize's choice between them changes.
func BenchmarkVerticalGap(b *testing.B) {
	src := photoAt(b, 1600, 1067)
	defer src.Close()
	for _, r := range []float64{0.3, 0.25, 0.2, 0.125, 0.0625} {
		narrow, _ := src.Copy()
		if err := reduceH(narrow, int(1600*r), 1); err != nil {
			b.Fatal(err)
		}
		for _, gap := range []float64{0, 1} {
			b.Run(fmt.Sprintf("1:%.3g/gap%g", 1/r, gap), func(b *testing.B) {
				for b.Loop() {
					img, _ := narrow.Copy()
					if err := resizeGap(img, 1, r, gap); err != nil {
						b.Fatal(err)
					}
					if err := materialize(img); err != nil {
						b.Fatal(err)
					}
					img.Close()
				}
			})
		}
		narrow.Close()
	}
}
