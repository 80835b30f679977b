package render

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/davidbyttow/govips/v2/vips"
)

// photoAt is testdata's photo resampled to w x h and held in memory.
func photoAt(t testing.TB, w, h int) *vips.ImageRef {
	t.Helper()
	testEngine(t)
	img, err := vips.LoadImageFromBuffer(testdata(t, "photo.jpg"), loadParams(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := resizeGap(img, float64(w)/float64(img.Width()), float64(h)/float64(img.Height()), 0); err != nil {
		t.Fatal(err)
	}
	if err := materialize(img); err != nil {
		t.Fatal(err)
	}
	return img
}

// BenchmarkReduceH runs the engine's horizontal pass (with its SSSE3 loop,
// and with the plain C loop other CPUs run) and libvips' reduceh on the same
// image, for the cascade's usual steps.
func BenchmarkReduceH(b *testing.B) {
	for _, step := range [][2]int{{1920, 1600}, {1600, 800}, {800, 200}} {
		src := photoAt(b, step[0], step[0]*2/3)
		for _, impl := range []string{"engine", "engine-plain-c", "libvips"} {
			b.Run(fmt.Sprintf("%d-%d/%s", step[0], step[1], impl), func(b *testing.B) {
				for b.Loop() {
					img, _ := src.Copy()
					var err error
					switch impl {
					case "engine":
						err = reduceH(img, step[1], 1)
					case "engine-plain-c":
						err = reduceHWith(img, step[1], 1, false)
					default:
						err = resizeGap(img, float64(step[1])/float64(step[0]), 1, 0)
						if err == nil {
							err = materialize(img)
						}
					}
					if err != nil {
						b.Fatal(err)
					}
					img.Close()
				}
			})
		}
		src.Close()
	}
}

// TestReduceH holds the engine's horizontal pass to the Lanczos3 reduce
// worked out in floating point: within rounding of it for every band count
// and for shrinks from slight to the cascade's steepest, down to outputs
// narrower than the kernel, and at 960x, where each tap's weight is a few
// units. libvips' own reduce, up to 8x, must agree to within its coarser
// arithmetic (it rounds positions to 1/64 px and weights to 12 bits), which
// pins the geometry to libvips'.
func TestReduceH(t *testing.T) {
	src := photoAt(t, 1920, 32)
	defer src.Close()
	bands := map[int]func(*vips.ImageRef) error{
		1: func(img *vips.ImageRef) error { return img.ExtractBand(1, 1) },
		2: func(img *vips.ImageRef) error { return img.ExtractBand(0, 2) },
		3: func(*vips.ImageRef) error { return nil },
		4: func(img *vips.ImageRef) error {
			a, err := img.ExtractBandToImage(2, 1)
			if err != nil {
				return err
			}
			defer a.Close()
			return img.BandJoin(a)
		},
	}
	cases := []struct{ inW, outW int }{
		{1920, 1600}, {1920, 1919}, {1920, 2}, {1920, 30}, {1600, 800}, {800, 200}, {801, 200}, {200, 64}, {64, 3}, {9, 2}, {5, 1}, {2, 1},
	}
	// Random widths move each row's last windows across the vector loop's
	// 16-byte reads, where the scalar loop must take over.
	rng := rand.New(rand.NewPCG(16, 2))
	for range 24 {
		in := 2 + rng.IntN(300)
		cases = append(cases, struct{ inW, outW int }{in, 1 + rng.IntN(in-1)})
	}
	for _, tt := range cases {
		for nb, shape := range bands {
			t.Run(fmt.Sprintf("%d-%d/%dbands", tt.inW, tt.outW, nb), func(t *testing.T) {
				base, _ := src.Copy()
				defer base.Close()
				if err := shape(base); err != nil {
					t.Fatal(err)
				}
				if err := resizeGap(base, float64(tt.inW)/float64(base.Width()), 1, 1); err != nil {
					t.Fatal(err)
				}
				if err := materialize(base); err != nil {
					t.Fatal(err)
				}
				ours, _ := base.Copy()
				defer ours.Close()
				if err := reduceH(ours, tt.outW, 2); err != nil {
					t.Fatal(err)
				}
				if ours.Width() != tt.outW || ours.Height() != base.Height() || ours.Bands() != nb {
					t.Fatalf("got %dx%d, %d bands; want %dx%d, %d", ours.Width(), ours.Height(), ours.Bands(), tt.outW, base.Height(), nb)
				}
				got := pixels(t, ours)
				want := lanczos3H(pixels(t, base), tt.inW, nb, tt.outW)
				if worst, mean := diff(got, want); worst > 0.75 || mean > 0.3 {
					t.Errorf("differs from the exact reduce by up to %.2f, %.3f on average", worst, mean)
				}
				// The plain C loop, which CPUs without SSSE3 run for whole
				// rows, does the same integer sums.
				scalar, _ := base.Copy()
				defer scalar.Close()
				if err := reduceHWith(scalar, tt.outW, 1, false); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(pixels(t, scalar), got) {
					t.Error("the plain C loop and the vector loop disagree")
				}
				// Past 8x libvips' own rounding grows (up to 4 levels at 64x),
				// so it is no reference there.
				if tt.inW > 8*tt.outW {
					return
				}
				theirs, _ := base.Copy()
				defer theirs.Close()
				if resizeGap(theirs, float64(tt.outW)/float64(tt.inW), 1, 0) != nil || theirs.Width() != tt.outW {
					return
				}
				lv := pixels(t, theirs)
				asFloat := make([]float64, len(lv))
				for i, v := range lv {
					asFloat[i] = float64(v)
				}
				if worst, mean := diff(got, asFloat); worst > 2 || mean > 1 {
					t.Errorf("differs from libvips by up to %.0f, %.3f on average", worst, mean)
				}
			})
		}
	}
}

// lanczos3H is the reduce the engine approximates in fixed point, worked out
// directly: centres aligned, the kernel stretched by the shrink, edge pixels
// repeated, weights normalised per pixel.
func lanczos3H(in []byte, w, bands, outW int) []float64 {
	h := len(in) / (w * bands)
	s := float64(w) / float64(outW)
	out := make([]float64, outW*h*bands)
	for y := range h {
		for x := range outW {
			c := (float64(x)+0.5)*s - 0.5
			for b := range bands {
				sum, weight := 0.0, 0.0
				for i := int(math.Floor(c - 3*s)); i <= int(math.Ceil(c+3*s)); i++ {
					k := lanczos3((float64(i) - c) / s)
					sum += k * float64(in[(y*w+min(max(i, 0), w-1))*bands+b])
					weight += k
				}
				out[(y*outW+x)*bands+b] = min(max(sum/weight, 0), 255)
			}
		}
	}
	return out
}

func diff(got []byte, want []float64) (worst, mean float64) {
	for i, v := range want {
		d := math.Abs(float64(got[i]) - v)
		worst = max(worst, d)
		mean += d
	}
	return worst, mean / float64(len(want))
}
