package render

import (
	"bytes"
	"context"
	"image"
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/davidbyttow/govips/v2/vips"
	_ "golang.org/x/image/webp"
)

// testEngine is an engine with room for anything in testdata.
func testEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := New(Config{Limits: DefaultLimits(), Slots: 2, VipsThreads: 1, MemoryBudget: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatalf("testdata: %v (regenerate with `make testdata`)", err)
	}
	return b
}

// renderOne renders a single variant of a testdata file and fails the test
// on error.
func renderOne(t *testing.T, file string, v Variant) (Output, *Result) {
	t.Helper()
	if v.Key == "" {
		v.Key = "out"
	}
	res, err := testEngine(t).Render(context.Background(), Job{Source: testdata(t, file), Variants: []Variant{v}})
	if err != nil {
		t.Fatalf("render %s %+v: %v", file, v, err)
	}
	return res.Outputs[0], res
}

// decodeImage decodes an output with Go's own decoders, so pixel checks
// don't depend on libvips agreeing with itself.
func decodeImage(t *testing.T, data []byte) (image.Image, string) {
	t.Helper()
	img, format, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decoding output: %v", err)
	}
	return img, format
}

// rgbAt returns 8-bit colour at (x, y).
func rgbAt(img image.Image, x, y int) [3]int {
	r, g, b, _ := img.At(img.Bounds().Min.X+x, img.Bounds().Min.Y+y).RGBA()
	return [3]int{int(r >> 8), int(g >> 8), int(b >> 8)}
}

func alphaAt(img image.Image, x, y int) int {
	_, _, _, a := img.At(img.Bounds().Min.X+x, img.Bounds().Min.Y+y).RGBA()
	return int(a >> 8)
}

// near reports whether two colours are within tol on every channel; JPEG
// moves colours a little.
func near(a, b [3]int, tol int) bool {
	for i := range a {
		if d := a[i] - b[i]; d > tol || d < -tol {
			return false
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }

// pixels returns an image's pixels, failing the test if libvips cannot.
func pixels(t *testing.T, img *vips.ImageRef) []byte {
	t.Helper()
	b, err := img.ToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
