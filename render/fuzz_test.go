package render

import (
	"context"
	"errors"
	"testing"
)

// FuzzRender feeds arbitrary bytes through probe, decode and a render. The
// property: every outcome is success or a *render.Error, and the process
// survives. Seeds are testdata's good and bad images.
func FuzzRender(f *testing.F) {
	for _, name := range []string{"photo.jpg", "photo-progressive.jpg", "alpha.png", "animated.gif",
		"animated.webp", "photo.tif", "truncated.jpg", "bomb.png", "corrupt.png", "orient-6.jpg", "gray.jpg"} {
		f.Add(testdata(f, name))
	}
	e, err := New(Config{Limits: Limits{MaxPixels: 4_000_000, MaxBytes: 1 << 20}, Slots: 1, VipsThreads: 1, MemoryBudget: 256 << 20})
	if err != nil {
		f.Fatal(err)
	}
	variants := []Variant{
		{Key: "a", Width: 32, Height: 32, Fit: FitCover, Format: FormatJPEG},
		{Key: "b", Width: 20, Format: FormatPNG},
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		res, err := e.Render(context.Background(), Job{Source: src, Variants: variants})
		if err != nil {
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if len(res.Outputs) != 2 || res.Outputs[0].Width != 32 || res.Outputs[0].Height != 32 {
			t.Fatalf("success with wrong outputs: %+v", res.Outputs)
		}
	})
}
