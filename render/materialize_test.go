package render

import (
	"testing"

	"github.com/davidbyttow/govips/v2/vips"
)

// TestMaterialize guards the one place that reaches into govips: if an
// upgrade moves its image field, this fails before the cascade silently
// stops working.
func TestMaterialize(t *testing.T) {
	testEngine(t)
	img, err := vips.LoadImageFromBuffer(testdata(t, "photo.jpg"), loadParams(1))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := img.Resize(0.25, vips.KernelLanczos3); err != nil {
		t.Fatal(err)
	}
	before, err := img.GetPoint(100, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := materialize(img); err != nil {
		t.Fatalf("materialize: %v", err)
	}
	after, _ := img.GetPoint(100, 100)
	if img.Width() != 300 || img.Height() != 200 || before[0] != after[0] || before[1] != after[1] {
		t.Errorf("materialised image %dx%d, pixel %v -> %v", img.Width(), img.Height(), before, after)
	}
	// A copy shares the buffer and outlives the original's Close.
	cp, _ := img.Copy()
	img.Close()
	if p, err := cp.GetPoint(100, 100); err != nil || p[0] != before[0] {
		t.Errorf("copy after close: %v %v", p, err)
	}
	cp.Close()
}
