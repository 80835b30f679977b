package render

import (
	"math"
	"testing"
)

// Compare scores what a person would call the same picture as zero, a
// re-encode as a small difference, and will not score images of other sizes.
func TestCompare(t *testing.T) {
	e := testEngine(t)
	q80, _ := renderOne(t, "photo.jpg", Variant{Width: 320, Format: FormatJPEG, Quality: 80})
	q30, _ := renderOne(t, "photo.jpg", Variant{Width: 320, Format: FormatJPEG, Quality: 30})
	small, _ := renderOne(t, "photo.jpg", Variant{Width: 160, Format: FormatJPEG, Quality: 80})
	png, _ := renderOne(t, "alpha.png", Variant{Width: 64, Format: FormatPNG})
	flat, _ := renderOne(t, "alpha.png", Variant{Width: 64, Format: FormatJPEG, Quality: 100})
	for _, tc := range []struct {
		name       string
		a, b       []byte
		comparable bool
		same       bool
	}{
		{"identical bytes", q80.Data, q80.Data, true, true},
		{"another quality", q80.Data, q30.Data, true, false},
		{"another size", q80.Data, small.Data, false, false},
		{"alpha against none", png.Data, flat.Data, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.Compare(tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if d.Comparable != tc.comparable {
				t.Fatalf("comparable = %v, want %v (%+v)", d.Comparable, tc.comparable, d)
			}
			switch {
			case !tc.comparable:
				if d.Width != 320 || d.OtherWidth != 160 {
					t.Errorf("sizes %+v", d)
				}
			case tc.same && (d.MeanAbs != 0 || !math.IsInf(d.PSNR, 1)):
				t.Errorf("identical images: %+v", d)
			case !tc.same && (d.MeanAbs <= 0 || d.PSNR <= 0 || math.IsInf(d.PSNR, 1)):
				t.Errorf("different images scored %+v", d)
			}
		})
	}
	if _, err := e.Compare(q80.Data, []byte("<svg/>")); err == nil {
		t.Error("an SVG was decoded")
	}
}
