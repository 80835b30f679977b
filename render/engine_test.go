package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"testing"
	"time"

	"github.com/davidbyttow/govips/v2/vips"
)

var (
	red   = [3]int{255, 0, 0}
	green = [3]int{0, 255, 0}
	blue  = [3]int{0, 0, 255}
	white = [3]int{255, 255, 255}
)

// Every orientation must display as the same 60x40 picture: red top-left,
// green top-right, blue bottom-left, white bottom-right.
func TestOrientationsAllDisplayUpright(t *testing.T) {
	for o := 1; o <= 8; o++ {
		t.Run(fmt.Sprint(o), func(t *testing.T) {
			out, res := renderOne(t, fmt.Sprintf("orient-%d.jpg", o), Variant{Width: 120, Height: 120, Enlarge: true, Format: FormatPNG})
			if res.Source.Orientation != o {
				t.Errorf("probed orientation %d, want %d", res.Source.Orientation, o)
			}
			if out.Width != 120 || out.Height != 80 {
				t.Fatalf("output %dx%d, want 120x80", out.Width, out.Height)
			}
			img, _ := decodeImage(t, out.Data)
			for _, q := range []struct {
				x, y int
				want [3]int
			}{{30, 20, red}, {90, 20, green}, {30, 60, blue}, {90, 60, white}} {
				if got := rgbAt(img, q.x, q.y); !near(got, q.want, 40) {
					t.Errorf("pixel (%d,%d) = %v, want about %v", q.x, q.y, got, q.want)
				}
			}
		})
	}
}

// Output dimensions are exact for every fit mode, including odd aspect
// ratios that round awkwardly. photo.jpg is 1200x800.
func TestFitDimensions(t *testing.T) {
	tests := []struct {
		v          Variant
		wantW, wan int
	}{
		{Variant{Width: 300}, 300, 200},
		{Variant{Height: 333}, 500, 333},
		{Variant{Width: 301, Height: 301}, 301, 201},
		{Variant{Width: 2000}, 1200, 800}, // inside never enlarges by default
		{Variant{Width: 2000, Enlarge: true}, 2000, 1333},
		{Variant{Width: 200, Height: 200, Fit: FitCover}, 200, 200},
		{Variant{Width: 199, Height: 37, Fit: FitCover, Gravity: GravityEntropy}, 199, 37},
		{Variant{Width: 37, Height: 199, Fit: FitCover, Gravity: GravityAttention}, 37, 199},
		{Variant{Width: 1500, Height: 1500, Fit: FitCover}, 1500, 1500}, // cover fills even if it must enlarge
		{Variant{Width: 200, Height: 200, Fit: FitContain}, 200, 200},
		{Variant{Width: 333, Height: 77, Fit: FitContain}, 333, 77},
		{Variant{Width: 123, Height: 457, Fit: FitFill}, 123, 457},
		{Variant{Width: 200, Height: 200, Fit: FitOutside}, 300, 200},
		{Variant{Width: 1, Height: 1, Fit: FitCover}, 1, 1},
	}
	for _, tt := range tests {
		tt.v.Format = FormatJPEG
		t.Run(tt.v.Name(), func(t *testing.T) {
			out, _ := renderOne(t, "photo.jpg", tt.v)
			img, format := decodeImage(t, out.Data)
			b := img.Bounds()
			if out.Width != tt.wantW || out.Height != tt.wan || b.Dx() != tt.wantW || b.Dy() != tt.wan || format != "jpeg" {
				t.Errorf("got %dx%d (%s, reported %dx%d), want %dx%d jpeg", b.Dx(), b.Dy(), format, out.Width, out.Height, tt.wantW, tt.wan)
			}
		})
	}
}

func TestContainPadsWithBackground(t *testing.T) {
	out, _ := renderOne(t, "photo.jpg", Variant{Width: 300, Height: 300, Fit: FitContain, Background: "#00ff00", Format: FormatPNG})
	img, _ := decodeImage(t, out.Data)
	// 1200x800 in 300x300 is 300x200 centred: bands of 50 px above and below.
	if got := rgbAt(img, 150, 10); got != green {
		t.Errorf("padding is %v, want green", got)
	}
	if got := rgbAt(img, 150, 150); got == green {
		t.Errorf("centre is the background colour; the photo is missing")
	}
	// A transparent background gives transparent padding in formats with alpha.
	out, _ = renderOne(t, "photo.jpg", Variant{Width: 300, Height: 300, Fit: FitContain, Background: "#0000", Format: FormatAuto})
	img, format := decodeImage(t, out.Data)
	if format != "png" || alphaAt(img, 150, 10) != 0 || alphaAt(img, 150, 150) != 255 {
		t.Errorf("transparent padding: format %s, alpha %d at edge and %d at centre", format, alphaAt(img, 150, 10), alphaAt(img, 150, 150))
	}
}

// A 6-variant request decodes the source once, at the smallest JPEG DCT
// scale that still covers the largest variant.
func TestDecodeOnceAtSmallestCoveringScale(t *testing.T) {
	variants := func(sizes ...int) []Variant {
		var vs []Variant
		for i, s := range sizes {
			vs = append(vs, Variant{Key: fmt.Sprint(i), Width: s, Height: s, Format: FormatJPEG})
		}
		return vs
	}
	tests := []struct {
		file          string
		variants      []Variant
		scale         string
		decW          int
		decH, outputs int
	}{
		// 1200x800: 150 fits in 1200/8=150 exactly.
		{"photo.jpg", variants(150, 100, 64, 32, 16, 8), "1/8", 150, 100, 6},
		{"photo.jpg", variants(300, 200, 151, 64, 32, 16), "2/8", 300, 200, 6},
		{"photo.jpg", variants(450, 300, 200, 64, 32, 16), "3/8", 450, 300, 6},
		{"photo.jpg", variants(750, 300, 200, 64, 32, 16), "5/8", 750, 500, 6},
		{"photo.jpg", variants(1051, 300, 200, 64, 32, 16), "8/8", 1200, 800, 6},
		// Orientation 6 is stored 40x60 and shown 60x40: the scale is
		// checked against the stored axes.
		{"orient-6.jpg", variants(15), "2/8", 10, 15, 1},
		// PNG has no shrink-on-load: decoded whole.
		{"photo.png", variants(100, 50, 20, 10, 5, 2), "8/8", 600, 400, 6},
		// A cover crop needs the covering size, not the box.
		{"photo.jpg", []Variant{{Key: "c", Width: 150, Height: 150, Fit: FitCover}}, "2/8", 300, 200, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-%d", tt.file, tt.variants[0].Width), func(t *testing.T) {
			res, err := testEngine(t).Render(context.Background(), Job{Source: testdata(t, tt.file), Variants: tt.variants})
			if err != nil {
				t.Fatal(err)
			}
			if res.Scale != tt.scale || res.DecodedWidth != tt.decW || res.DecodedHeight != tt.decH {
				t.Errorf("scale %s decoded %dx%d, want scale %s decoded %dx%d",
					res.Scale, res.DecodedWidth, res.DecodedHeight, tt.scale, tt.decW, tt.decH)
			}
			if len(res.Outputs) != tt.outputs {
				t.Fatalf("%d outputs, want %d", len(res.Outputs), tt.outputs)
			}
			for i, o := range res.Outputs {
				p := planVariant(&tt.variants[i], res.Source.Width, res.Source.Height)
				if res.Source.swapsAxes() {
					p = planVariant(&tt.variants[i], res.Source.Height, res.Source.Width)
				}
				if o.Width != p.outW || o.Height != p.outH || o.Key != tt.variants[i].Key {
					t.Errorf("output %d is %s %dx%d, want %s %dx%d", i, o.Key, o.Width, o.Height, tt.variants[i].Key, p.outW, p.outH)
				}
			}
		})
	}
}

func TestColourManagement(t *testing.T) {
	t.Run("cmyk", func(t *testing.T) {
		src := testdata(t, "cmyk.jpg")
		orig, _ := decodeImage(t, src)
		if _, ok := orig.(*image.CMYK); !ok {
			t.Fatalf("testdata cmyk.jpg decodes as %T, not CMYK", orig)
		}
		out, res := renderOne(t, "cmyk.jpg", Variant{Width: 80, Format: FormatJPEG})
		if res.Source.Bands != 4 {
			t.Errorf("probed %d bands, want 4", res.Source.Bands)
		}
		img, _ := decodeImage(t, out.Data)
		if _, ok := img.(*image.CMYK); ok {
			t.Fatal("output is still CMYK; browsers show that wrongly")
		}
		// Through the profile, colours are less saturated than a naive
		// CMYK->RGB conversion but keep their hue; an inverted-CMYK bug
		// would turn them into their complements.
		for _, p := range [][2]int{{10, 10}, {70, 10}, {10, 50}, {70, 50}, {40, 30}} {
			c := orig.At(p[0], p[1])
			r, g, b, _ := color.RGBAModel.Convert(c).RGBA()
			want := [3]int{int(r >> 8), int(g >> 8), int(b >> 8)}
			got := rgbAt(img, p[0], p[1])
			if !near(got, want, 100) || dominant(got) != dominant(want) {
				t.Errorf("pixel %v = %v, naive conversion gives %v", p, got, want)
			}
		}
	})
	t.Run("wide gamut ICC", func(t *testing.T) {
		src := testdata(t, "adobergb.jpg")
		orig, _ := decodeImage(t, src)
		out, _ := renderOne(t, "adobergb.jpg", Variant{Width: 80, Format: FormatPNG})
		img, _ := decodeImage(t, out.Data)
		// Go's decoder ignores the profile; the engine must not. The same
		// stored numbers mean a different colour in sRGB.
		if got, raw := rgbAt(img, 40, 30), rgbAt(orig, 40, 30); near(got, raw, 6) {
			t.Errorf("pixel %v unchanged from the stored %v: the ICC profile was ignored", got, raw)
		}
	})
	t.Run("16-bit", func(t *testing.T) {
		out, res := renderOne(t, "rgb16.png", Variant{Width: 64, Format: FormatPNG})
		if res.Source.BytesPerSample != 2 {
			t.Errorf("probed %d bytes per sample, want 2", res.Source.BytesPerSample)
		}
		cfg, _, err := image.DecodeConfig(bytes.NewReader(out.Data))
		if err != nil || cfg.ColorModel != color.NRGBAModel && cfg.ColorModel != color.RGBAModel {
			t.Errorf("output colour model %v (%v), want 8-bit RGB", cfg.ColorModel, err)
		}
	})
	t.Run("greyscale", func(t *testing.T) {
		out, _ := renderOne(t, "gray.jpg", Variant{Width: 32, Format: FormatWebP})
		if img, format := decodeImage(t, out.Data); format != "webp" || img.Bounds().Dx() != 32 {
			t.Errorf("got %s %v", format, img.Bounds())
		}
	})
}

func TestAlpha(t *testing.T) {
	// alpha.png: left half opaque red, right half transparent.
	out, _ := renderOne(t, "alpha.png", Variant{Width: 64, Format: FormatJPEG, Background: "#0000ff"})
	img, _ := decodeImage(t, out.Data)
	if got := rgbAt(img, 8, 24); !near(got, red, 30) {
		t.Errorf("opaque half is %v, want red", got)
	}
	if got := rgbAt(img, 56, 24); !near(got, blue, 30) {
		t.Errorf("transparent half flattened to %v, want the blue background", got)
	}
	out, _ = renderOne(t, "alpha.png", Variant{Width: 32})
	img, format := decodeImage(t, out.Data)
	if out.Format != FormatPNG || format != "png" || alphaAt(img, 28, 12) != 0 || alphaAt(img, 4, 12) != 255 {
		t.Errorf("auto format kept transparency? format %s/%s, alpha %d and %d", out.Format, format, alphaAt(img, 28, 12), alphaAt(img, 4, 12))
	}
}

func TestAnimatedSourcesRenderTheirFirstFrame(t *testing.T) {
	for _, f := range []string{"animated.gif", "animated.webp"} {
		t.Run(f, func(t *testing.T) {
			out, res := renderOne(t, f, Variant{Width: 48, Format: FormatPNG})
			if res.Source.Pages != 3 {
				t.Errorf("probed %d frames, want 3", res.Source.Pages)
			}
			img, _ := decodeImage(t, out.Data)
			if b := img.Bounds(); b.Dx() != 48 || b.Dy() != 32 {
				t.Errorf("output %v, want one 48x32 frame", b)
			}
			if got := rgbAt(img, 24, 16); !near(got, red, 30) {
				t.Errorf("centre %v, want the first frame's red", got)
			}
		})
	}
}

func TestOutputFormats(t *testing.T) {
	for _, f := range []Format{FormatJPEG, FormatWebP, FormatAVIF, FormatPNG} {
		t.Run(string(f), func(t *testing.T) {
			out, _ := renderOne(t, "photo.jpg", Variant{Width: 160, Format: f, Quality: 70, Effort: effortFor(f)})
			got, ok := sniff(out.Data)
			want := map[Format]SourceFormat{FormatJPEG: SourceJPEG, FormatWebP: SourceWebP, FormatAVIF: SourceAVIF, FormatPNG: SourcePNG}[f]
			if !ok || got != want || out.Format != f || out.ContentType != "image/"+string(f) {
				t.Errorf("output sniffs as %s, reported %s %s", got, out.Format, out.ContentType)
			}
		})
	}
}

// dominant is the index of the strongest channel.
func dominant(c [3]int) int {
	i := 0
	for j := range c {
		if c[j] > c[i] {
			i = j
		}
	}
	return i
}

func effortFor(f Format) *int {
	if f == FormatJPEG {
		return nil
	}
	return ptr(1)
}

func TestMetadataStripping(t *testing.T) {
	// orient-6.jpg carries EXIF. Stripped by default; kept on request, minus
	// the orientation, which has been applied.
	out, _ := renderOne(t, "orient-6.jpg", Variant{Width: 30, Format: FormatJPEG})
	if bytes.Contains(out.Data, []byte("Exif\x00\x00")) {
		t.Error("default output still has an EXIF block")
	}
	out, _ = renderOne(t, "orient-6.jpg", Variant{Width: 30, Format: FormatJPEG, Strip: ptr(false)})
	if !bytes.Contains(out.Data, []byte("Exif\x00\x00")) {
		t.Error("strip=false dropped the EXIF block")
	}
	h, err := Probe(out.Data, DefaultLimits())
	if err != nil || h.Orientation != 1 {
		t.Errorf("kept metadata says orientation %d (%v); it must be 1 once applied", h.Orientation, err)
	}
	out, _ = renderOne(t, "orient-6.jpg", Variant{Width: 30, Format: FormatWebP})
	if bytes.Contains(out.Data, []byte("EXIF")) {
		t.Error("webp output has an EXIF chunk despite strip (libvips 8.14.1's webpsave strip bug)")
	}
}

func TestWatermark(t *testing.T) {
	plain := Variant{Key: "plain", Width: 400, Format: FormatPNG}
	marked := plain
	marked.Key = "marked"
	marked.Watermark = &Watermark{Image: "logo", Position: "south-east", Scale: 0.25, Margin: ptr(10)}
	faint := marked
	faint.Key = "faint"
	faint.Watermark = &Watermark{Image: "logo", Position: "south-east", Scale: 0.25, Margin: ptr(10), Opacity: ptr(0.2)}
	res, err := testEngine(t).Render(context.Background(), Job{
		Source:     testdata(t, "photo.jpg"),
		Variants:   []Variant{plain, marked, faint},
		Watermarks: map[string][]byte{"logo": testdata(t, "watermark.png")},
	})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := decodeImage(t, res.Outputs[0].Data)
	b, _ := decodeImage(t, res.Outputs[1].Data)
	c, _ := decodeImage(t, res.Outputs[2].Data)
	// 400x267 output; a 100x40 mark at 25% is 100 wide, 10 px from the
	// bottom-right corner. The top-left corner is untouched.
	diff := func(x, y int, p, q image.Image) int {
		d := 0
		for i, v := range rgbAt(p, x, y) {
			d += abs(v - rgbAt(q, x, y)[i])
		}
		return d
	}
	var inMark, faintMark, outside int
	for y := 267 - 50; y < 267-10; y++ {
		for x := 400 - 110; x < 400-10; x++ {
			inMark += diff(x, y, a, b)
			faintMark += diff(x, y, a, c)
			outside += diff(x-280, y-200, a, b)
		}
	}
	if inMark == 0 || outside != 0 {
		t.Errorf("watermark area changed by %d, elsewhere by %d; want changed only where the mark is", inMark, outside)
	}
	if faintMark == 0 || faintMark >= inMark {
		t.Errorf("opacity 0.2 changed the area by %d vs %d at full opacity", faintMark, inMark)
	}
	if ob := res.Outputs[1]; ob.Width != 400 || b.Bounds().Dx() != 400 {
		t.Errorf("watermarked output is %dx%d", ob.Width, ob.Height)
	}
	if _, ok := b.(*image.NRGBA); ok {
		t.Error("watermarking an opaque image added an alpha channel to the output")
	}

	// A missing watermark image is the caller's mistake, named.
	_, err = testEngine(t).Render(context.Background(), Job{Source: testdata(t, "photo.jpg"), Variants: []Variant{marked}})
	var re *Error
	if !errors.As(err, &re) || re.Field != "outputs[0].watermark.image" {
		t.Errorf("missing watermark data: %v", err)
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func TestSharpenChangesTheOutput(t *testing.T) {
	soft, _ := renderOne(t, "photo.jpg", Variant{Width: 300, Format: FormatPNG})
	sharp, _ := renderOne(t, "photo.jpg", Variant{Width: 300, Format: FormatPNG, Sharpen: 1})
	if bytes.Equal(soft.Data, sharp.Data) {
		t.Error("sharpen made no difference")
	}
	if sharp.Width != 300 || sharp.Height != 200 {
		t.Errorf("sharpened output %dx%d", sharp.Width, sharp.Height)
	}
}

// Every bad input gets its typed error, and the engine goes on rendering.
func TestBadInputs(t *testing.T) {
	e := testEngine(t)
	tests := []struct {
		file string
		code Code
		msg  string
	}{
		{"empty.jpg", ErrUnsupportedFormat, "empty"},
		{"text.jpg", ErrUnsupportedFormat, "text"},
		{"image.svg", ErrUnsupportedFormat, "SVG"},
		{"truncated.jpg", ErrCorrupt, "truncated or corrupt"},
		{"corrupt.png", ErrCorrupt, "truncated or corrupt"},
		{"bomb.png", ErrTooManyPixels, "60000x60000"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res, err := e.Render(context.Background(), Job{Source: testdata(t, tt.file), Variants: []Variant{{Key: "k", Width: 100}}})
			var re *Error
			if !errors.As(err, &re) || re.Code != tt.code || !errors.Is(err, tt.code) {
				t.Fatalf("got %v, want %s", err, tt.code)
			}
			if !re.Permanent() || !IsPermanent(err) {
				t.Errorf("%s must be permanent: retrying bad input cannot help", tt.code)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tt.msg)) {
				t.Errorf("message %q does not mention %q", err, tt.msg)
			}
			if res != nil && len(res.Outputs) != 0 {
				t.Errorf("failed render returned outputs")
			}
			// The engine is still good for the next job.
			if _, err := e.Render(context.Background(), Job{Source: testdata(t, "photo.jpg"), Variants: []Variant{{Key: "k", Width: 64}}}); err != nil {
				t.Fatalf("render after %s failed: %v", tt.file, err)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	e, err := New(Config{Limits: Limits{MaxPixels: 1_000_000, MaxBytes: 50_000}, Slots: 1, VipsThreads: 1, MemoryBudget: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	v := []Variant{{Key: "k", Width: 10}}
	if _, err := e.Render(context.Background(), Job{Source: testdata(t, "photo.jpg"), Variants: v}); !errors.Is(err, ErrTooManyBytes) {
		t.Errorf("60 KB source with a 50 KB limit: %v", err)
	}
	// photo.webp: 1200x800 = 0.96 MP fits; the 3-frame gif counts frames.
	if _, err := e.Render(context.Background(), Job{Source: testdata(t, "photo.webp"), Variants: v}); err != nil {
		t.Errorf("0.96 MP source with a 1 MP limit: %v", err)
	}
	small, _ := New(Config{Limits: Limits{MaxPixels: 48 * 32 * 2}, Slots: 1, VipsThreads: 1, MemoryBudget: 1 << 30})
	if _, err := small.Render(context.Background(), Job{Source: testdata(t, "animated.gif"), Variants: v}); !errors.Is(err, ErrTooManyPixels) || !bytes.Contains([]byte(err.Error()), []byte("3 frames")) {
		t.Errorf("3 frames over a 2-frame pixel limit: %v", err)
	}
}

func TestUntrustedLoadersAreBlocked(t *testing.T) {
	testEngine(t) // starts libvips the way production does
	// Bypass the engine's own sniffing: libvips itself must refuse SVG.
	img, err := vips.NewImageFromBuffer(testdata(t, "image.svg"))
	if err == nil {
		defer img.Close()
		_, _, err = img.ExportPng(vips.NewPngExportParams())
	}
	if err == nil {
		t.Fatal("libvips rendered an SVG: VIPS_BLOCK_UNTRUSTED is not in force")
	}
}

func TestAdmission(t *testing.T) {
	e, err := New(Config{Limits: DefaultLimits(), Slots: 4, VipsThreads: 1, MemoryBudget: 100 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Larger than the whole budget: refused at once, permanently.
	if _, err := e.admit(ctx, 101<<20); !errors.Is(err, ErrOverBudget) || !IsPermanent(err) {
		t.Fatalf("over-budget job: %v", err)
	}
	release, err := e.admit(ctx, 60<<20)
	if err != nil {
		t.Fatal(err)
	}
	// A second 60 MiB job must wait while the first holds the memory, even
	// though slots are free. It gives up when its context ends...
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := e.admit(short, 60<<20); !errors.Is(err, ErrCanceled) || IsPermanent(err) {
		t.Fatalf("second job did not wait for memory: %v", err)
	}
	// ...and is admitted as soon as the first releases.
	admitted := make(chan func())
	go func() {
		r, err := e.admit(ctx, 60<<20)
		if err != nil {
			t.Error(err)
		}
		admitted <- r
	}()
	select {
	case r := <-admitted:
		r()
		t.Fatal("admitted while the budget was full")
	case <-time.After(20 * time.Millisecond):
	}
	release()
	(<-admitted)()
}

func TestRenderStopsAtTheDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := testEngine(t).Render(ctx, Job{Source: testdata(t, "photo.jpg"), Variants: []Variant{{Key: "k", Width: 10}}})
	if !errors.Is(err, ErrCanceled) || IsPermanent(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled render: %v (permanent=%v)", err, IsPermanent(err))
	}
}

func TestProgressiveJPEGIsBudgetedWhole(t *testing.T) {
	_, prog := renderOne(t, "photo-progressive.jpg", Variant{Width: 100})
	_, seq := renderOne(t, "photo.jpg", Variant{Width: 100})
	if !prog.Source.Progressive || seq.Source.Progressive {
		t.Fatalf("progressive flags: %v and %v", prog.Source.Progressive, seq.Source.Progressive)
	}
	// Same pixels and shrink; the progressive one must be estimated to hold
	// its full-size coefficients (1200x800x3x2 bytes) on top.
	if d := prog.MemoryEstimate - seq.MemoryEstimate - int64(prog.Source.Bytes-seq.Source.Bytes); d != 1200*800*3*2 {
		t.Errorf("progressive estimate exceeds baseline by %d, want %d", d, 1200*800*3*2)
	}
}
