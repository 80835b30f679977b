package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/davidbyttow/govips/v2/vips"
)

// The engine's own decode must give exactly the pixels libvips' jpegload
// gives at the scales both have, and keep the metadata later steps read:
// the ICC profile (colour) and the EXIF orientation (orient). libvips rounds
// a shrunk size down where libjpeg rounds up (80x60 at 1/8: 10x7 against
// 10x8), so the engine's image may have one more row or column.
func TestDirectDecodeMatchesLibvips(t *testing.T) {
	start(1)
	for _, file := range []string{"photo.jpg", "photo-progressive.jpg", "gray.jpg", "adobergb.jpg", "orient-6.jpg"} {
		for _, scale := range []int{8, 4, 2, 1} {
			t.Run(fmt.Sprintf("%s-%d", file, scale), func(t *testing.T) {
				src := testdata(t, file)
				want, err := vips.LoadImageFromBuffer(src, loadParams(8/scale))
				if err != nil {
					t.Fatal(err)
				}
				defer want.Close()
				got, err := vips.LoadImageFromBuffer(src, loadParams(1))
				if err != nil {
					t.Fatal(err)
				}
				defer got.Close()
				if err := decodeJPEG(src, got, scale, jpegMaxScans); err != nil {
					t.Fatal(err)
				}
				dw, dh := got.Width()-want.Width(), got.Height()-want.Height()
				if dw < 0 || dw > 1 || dh < 0 || dh > 1 || got.Bands() != want.Bands() {
					t.Fatalf("decoded %dx%dx%d, libvips %dx%dx%d", got.Width(), got.Height(), got.Bands(), want.Width(), want.Height(), want.Bands())
				}
				if got.Width() != want.Width() || got.Height() != want.Height() {
					if err := got.ExtractArea(0, 0, want.Width(), want.Height()); err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(pixels(t, got), pixels(t, want)) {
					t.Errorf("pixels differ from libvips' decode")
				}
				if got.HasICCProfile() != want.HasICCProfile() || got.Orientation() != want.Orientation() {
					t.Errorf("metadata: ICC %v orientation %d, libvips ICC %v orientation %d",
						got.HasICCProfile(), got.Orientation(), want.HasICCProfile(), want.Orientation())
				}
				if got.Interpretation() != want.Interpretation() {
					t.Errorf("interpretation %v, libvips %v", got.Interpretation(), want.Interpretation())
				}
			})
		}
	}
}

// Every scale M/8 decodes to libjpeg's ceil(size x M / 8), which is what
// chooseScale and the memory estimate count on.
func TestDirectDecodeSizes(t *testing.T) {
	start(1)
	src := testdata(t, "photo.jpg") // 1200x800
	for m := 1; m <= 8; m++ {
		img, err := vips.LoadImageFromBuffer(src, loadParams(1))
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeJPEG(src, img, m, jpegMaxScans); err != nil {
			t.Fatal(err)
		}
		if img.Width() != scaledSize(1200, m) || img.Height() != scaledSize(800, m) {
			t.Errorf("scale %d/8: %dx%d, want %dx%d", m, img.Width(), img.Height(), scaledSize(1200, m), scaledSize(800, m))
		}
		img.Close()
	}
}

func TestDirectDecodeRefuses(t *testing.T) {
	start(1)
	tests := []struct {
		name     string
		file     string
		maxScans int
		want     error
		msg      string
	}{
		{"truncated", "truncated.jpg", jpegMaxScans, ErrCorrupt, "truncated or corrupt"},
		// photo-progressive.jpg has 10 scans: a limit of 5 must stop it
		// the way 500 stops a scan bomb.
		{"too many scans", "photo-progressive.jpg", 5, ErrCorrupt, "more than 5 progressive scans"},
		{"CMYK left to libvips", "cmyk.jpg", jpegMaxScans, errJPEGUnsupported, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := testdata(t, tt.file)
			img, err := vips.LoadImageFromBuffer(src, loadParams(1))
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			w, h := img.Width(), img.Height()
			err = decodeJPEG(src, img, 8, tt.maxScans)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			var re *Error
			if errors.As(err, &re) && !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
			if img.Width() != w || img.Height() != h {
				t.Errorf("a refused decode changed the image to %dx%d", img.Width(), img.Height())
			}
		})
	}
}

// --shrink-on-load: fine may use any M/8, coarse only libvips' powers of
// two, off never shrinks; every mode makes the same sizes.
func TestShrinkOnLoadModes(t *testing.T) {
	tests := []struct {
		mode  ShrinkMode
		width int
		scale string
	}{
		{ShrinkFine, 750, "5/8"},
		{ShrinkCoarse, 750, "8/8"},
		{ShrinkOff, 750, "8/8"},
		{ShrinkFine, 300, "2/8"},
		{ShrinkCoarse, 300, "2/8"},
		{ShrinkOff, 300, "8/8"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-%d", tt.mode, tt.width), func(t *testing.T) {
			e, err := New(Config{Limits: DefaultLimits(), Slots: 1, VipsThreads: 1, MemoryBudget: 1 << 30, ShrinkOnLoad: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			res, err := e.Render(context.Background(), Job{Source: testdata(t, "photo.jpg"), Variants: []Variant{{Key: "v", Width: tt.width, Format: FormatJPEG}}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Scale != tt.scale {
				t.Errorf("scale %s, want %s", res.Scale, tt.scale)
			}
			if o := res.Outputs[0]; o.Width != tt.width || o.Height != tt.width*2/3 {
				t.Errorf("output %dx%d, want %dx%d", o.Width, o.Height, tt.width, tt.width*2/3)
			}
		})
	}
	if _, err := New(Config{Limits: DefaultLimits(), Slots: 1, VipsThreads: 1, MemoryBudget: 1 << 30, ShrinkOnLoad: "fast"}); err == nil {
		t.Error("an unknown shrink-on-load mode was accepted")
	}
}
