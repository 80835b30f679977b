// Command gendata regenerates the fixture images in testdata/ that the render
// engine's tests decode. See testdata/README.md for what each file is for.
//
//	go run ./tools/gendata -out testdata   (or: make testdata)
//
// It lives outside testdata/ because Go leaves directories named testdata
// out of ./..., and go vet should see it.
//
// Pixels are computed in Go from integer coordinates and a hand-written hash,
// never from a random source or the clock, so two runs with the same Go,
// libvips and codec libraries write identical bytes. Encoding goes through
// libvips (via govips) because that is the library the render engine uses,
// so the fixtures look like what real libvips-written files look like.
//
// Needs libvips with JPEG, PNG, WebP, TIFF, GIF (cgif) and HEIF/AV1 savers,
// and the Debian package icc-profiles-free for the Adobe RGB profile.
package main

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
	"path/filepath"

	"github.com/davidbyttow/govips/v2/vips"
)

// defaultAdobeRGBProfile is a Zlib-licensed Adobe RGB (1998) compatible
// profile from icc-profiles-free. Adobe's own profile comes under Adobe's
// licence terms rather than an open-source licence, and this 580-byte one
// has the same primaries, white point and gamma, which is all the test
// needs.
const defaultAdobeRGBProfile = "/usr/share/color/icc/compatibleWithAdobeRGB1998.icc"

var (
	outDir    = flag.String("out", "testdata", "directory to write the fixtures into")
	adobeICC  = flag.String("adobergb-icc", defaultAdobeRGBProfile, "Adobe RGB (1998) compatible ICC profile (apt-get install icc-profiles-free)")
	skipCheck = flag.Bool("skip-verify", false, "do not re-read the orientation fixtures after writing them")
)

// The four quadrant colours of the orientation fixtures. They are fully
// saturated primaries plus white so that any mistake in rotation or
// mirroring moves a colour to a quadrant where it is unmistakably wrong.
var (
	red   = color.RGBA{255, 0, 0, 255}
	green = color.RGBA{0, 255, 0, 255}
	blue  = color.RGBA{0, 0, 255, 255}
	white = color.RGBA{255, 255, 255, 255}
)

func main() {
	log.SetFlags(0)
	flag.Parse()

	// govips logs at info level to stderr by default; the generator's output
	// should only show problems.
	vips.LoggingSettings(nil, vips.LogLevelWarning)
	// One worker thread: codecs that split work across threads (AV1 in
	// particular) are only byte-reproducible when the split is fixed.
	vips.Startup(&vips.Config{ConcurrencyLevel: 1})
	defer vips.Shutdown()

	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	steps := []struct {
		name string
		fn   func() error
	}{
		{"orientation", genOrientation},
		{"cmyk", genCMYK},
		{"adobergb", genAdobeRGB},
		{"alpha", genAlpha},
		{"rgb16", genRGB16},
		{"gray", genGray},
		{"animated", genAnimated},
		{"photo", genPhoto},
		{"watermark", genWatermark},
		{"invalid", genInvalid},
		{"bomb", genBomb},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if !*skipCheck {
		if err := verifyOrientation(); err != nil {
			return fmt.Errorf("verify orientation: %w", err)
		}
	}
	return nil
}

func write(name string, data []byte) error {
	return os.WriteFile(filepath.Join(*outDir, name), data, 0o644)
}

// toVips hands Go-computed pixels to libvips. An uncompressed PNG is the
// simplest lossless container that govips can load from memory.
func toVips(img image.Image) (*vips.ImageRef, error) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.NoCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, err
	}
	return vips.NewImageFromBuffer(buf.Bytes())
}

func jpegParams(q int, progressive bool) *vips.JpegExportParams {
	p := vips.NewJpegExportParams()
	p.Quality = q
	// govips defaults to progressive; baseline is the common case, so it
	// must be asked for.
	p.Interlace = progressive
	p.StripMetadata = false
	return p
}

// ---------------------------------------------------------------------------
// Orientation

func quadrants(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := white
			switch {
			case x < w/2 && y < h/2:
				c = red
			case y < h/2:
				c = green
			case x < w/2:
				c = blue
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

// displayPos maps a stored pixel (x, y) of a w x h stored image to where a
// viewer that honours EXIF orientation o draws it. Building the stored image
// by pulling each pixel from its display position means every orientation
// is derived from the same table rather than from eight hand-written
// inverse transforms.
func displayPos(o, x, y, w, h int) (int, int) {
	switch o {
	case 2: // mirror horizontal
		return w - 1 - x, y
	case 3: // rotate 180
		return w - 1 - x, h - 1 - y
	case 4: // mirror vertical
		return x, h - 1 - y
	case 5: // transpose (mirror along the top-left to bottom-right diagonal)
		return y, x
	case 6: // rotate 90 clockwise
		return h - 1 - y, x
	case 7: // transverse (mirror along the top-right to bottom-left diagonal)
		return h - 1 - y, w - 1 - x
	case 8: // rotate 90 counter-clockwise
		return y, w - 1 - x
	}
	return x, y
}

func genOrientation() error {
	const dw, dh = 60, 40
	display := quadrants(dw, dh)
	for o := 1; o <= 8; o++ {
		sw, sh := dw, dh
		if o >= 5 {
			sw, sh = dh, dw
		}
		stored := image.NewRGBA(image.Rect(0, 0, sw, sh))
		for y := 0; y < sh; y++ {
			for x := 0; x < sw; x++ {
				dx, dy := displayPos(o, x, y, sw, sh)
				stored.SetRGBA(x, y, display.RGBAAt(dx, dy))
			}
		}
		img, err := toVips(stored)
		if err != nil {
			return err
		}
		// libvips writes the orientation field into the EXIF block it
		// creates on save.
		if err := img.SetOrientation(o); err != nil {
			return err
		}
		// Q95 makes libvips switch chroma subsampling off, so quadrant
		// centres keep their colour to within a few levels.
		buf, _, err := img.ExportJpeg(jpegParams(95, false))
		img.Close()
		if err != nil {
			return err
		}
		if err := write(fmt.Sprintf("orient-%d.jpg", o), buf); err != nil {
			return err
		}
	}
	return nil
}

// verifyOrientation reloads the orientation fixtures and checks that libvips'
// own autorotate shows the intended picture, so a wrong table above can never
// be committed silently.
func verifyOrientation() error {
	want := []struct {
		x, y int
		c    color.RGBA
	}{{15, 10, red}, {45, 10, green}, {15, 30, blue}, {45, 30, white}}
	for o := 1; o <= 8; o++ {
		name := fmt.Sprintf("orient-%d.jpg", o)
		img, err := vips.NewImageFromFile(filepath.Join(*outDir, name))
		if err != nil {
			return err
		}
		if got := img.Orientation(); got != o {
			return fmt.Errorf("%s: EXIF orientation %d, want %d", name, got, o)
		}
		if err := img.AutoRotate(); err != nil {
			return err
		}
		if img.Width() != 60 || img.Height() != 40 {
			return fmt.Errorf("%s: displays %dx%d, want 60x40", name, img.Width(), img.Height())
		}
		for _, w := range want {
			p, err := img.GetPoint(w.x, w.y)
			if err != nil {
				return err
			}
			exp := []float64{float64(w.c.R), float64(w.c.G), float64(w.c.B)}
			for i := range exp {
				if math.Abs(p[i]-exp[i]) > 8 {
					return fmt.Errorf("%s: pixel (%d,%d) = %v, want %v", name, w.x, w.y, p, exp)
				}
			}
		}
		img.Close()
	}
	return nil
}

// ---------------------------------------------------------------------------
// Colour management

// colourPatches is an 80x60 image of four quadrants of sRGB colours chosen
// to sit well inside both the CMYK and Adobe RGB gamuts, so converting into
// the profile and back lands close to where it started.
func colourPatches() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, 80, 60))
	tl := color.RGBA{200, 40, 40, 255}
	tr := color.RGBA{40, 170, 60, 255}
	bl := color.RGBA{40, 80, 180, 255}
	br := color.RGBA{230, 200, 60, 255}
	for y := 0; y < 60; y++ {
		for x := 0; x < 80; x++ {
			c := br
			switch {
			case x < 40 && y < 30:
				c = tl
			case y < 30:
				c = tr
			case x < 40:
				c = bl
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

func genCMYK() error {
	img, err := toVips(colourPatches())
	if err != nil {
		return err
	}
	defer img.Close()
	// "cmyk" is libvips' built-in CMYK profile; using it avoids depending on
	// a CMYK profile file (none free enough and small enough ships in
	// Debian). The transform embeds the profile, which is what makes this a
	// realistic print-workflow JPEG.
	if err := img.TransformICCProfile("cmyk"); err != nil {
		return err
	}
	if img.Bands() != 4 {
		return fmt.Errorf("transform gave %d bands, want 4", img.Bands())
	}
	buf, _, err := img.ExportJpeg(jpegParams(90, false))
	if err != nil {
		return err
	}
	return write("cmyk.jpg", buf)
}

func genAdobeRGB() error {
	if _, err := os.Stat(*adobeICC); err != nil {
		return fmt.Errorf("%w (install the Debian package icc-profiles-free or pass -adobergb-icc)", err)
	}
	img, err := toVips(colourPatches())
	if err != nil {
		return err
	}
	defer img.Close()
	// Converting sRGB colours into Adobe RGB numbers (rather than tagging
	// sRGB numbers as Adobe RGB) gives the test a known answer: a correct
	// engine converts back and gets the original sRGB values, while one that
	// ignores the profile shows the stored numbers, which are visibly off.
	// govips' SetBlob cannot be used to attach the profile: it copies the
	// slice header instead of the bytes.
	if err := img.TransformICCProfile(*adobeICC); err != nil {
		return err
	}
	buf, _, err := img.ExportJpeg(jpegParams(95, false))
	if err != nil {
		return err
	}
	return write("adobergb.jpg", buf)
}

// ---------------------------------------------------------------------------
// Pixel formats

// The small PNGs are written by Go's encoder: the exact colour type and bit
// depth matter here, and image/png picks them from the Go image type alone.

func genAlpha() error {
	img := image.NewNRGBA(image.Rect(0, 0, 64, 48))
	for y := 0; y < 48; y++ {
		for x := 0; x < 32; x++ {
			img.SetNRGBA(x, y, color.NRGBA{255, 0, 0, 255})
		}
	}
	return writePNG("alpha.png", img)
}

func genRGB16() error {
	// An opaque RGBA64 is written as 16-bit RGB without alpha. The channel
	// values are deliberately not multiples of 257 so that a loader which
	// silently drops to 8 bits is detectable.
	img := image.NewRGBA64(image.Rect(0, 0, 64, 48))
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			img.SetRGBA64(x, y, color.RGBA64{
				R: uint16(x * 65535 / 63),
				G: uint16(y * 65535 / 47),
				B: uint16(0x8000 + x*97 + y*13),
				A: 0xffff,
			})
		}
	}
	return writePNG("rgb16.png", img)
}

func writePNG(name string, img image.Image) error {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return err
	}
	return write(name, buf.Bytes())
}

func genGray() error {
	// Mostly a horizontal ramp, with a small vertical component so a
	// transposed result is detectable; the maximum, 63*3+47, fits a byte.
	img := image.NewGray(image.Rect(0, 0, 64, 48))
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			img.SetGray(x, y, color.Gray{uint8(x*3 + y)})
		}
	}
	v, err := toVips(img)
	if err != nil {
		return err
	}
	defer v.Close()
	if v.Bands() != 1 {
		return fmt.Errorf("grey source has %d bands", v.Bands())
	}
	buf, _, err := v.ExportJpeg(jpegParams(90, false))
	if err != nil {
		return err
	}
	return write("gray.jpg", buf)
}

// ---------------------------------------------------------------------------
// Animation

func genAnimated() error {
	const w, h = 48, 32
	frames := []color.RGBA{red, green, blue}
	// libvips represents an animation as one tall image of frames stacked
	// top to bottom plus a page-height field.
	strip := image.NewRGBA(image.Rect(0, 0, w, h*len(frames)))
	for i, c := range frames {
		for y := i * h; y < (i+1)*h; y++ {
			for x := 0; x < w; x++ {
				strip.SetRGBA(x, y, c)
			}
		}
	}

	load := func() (*vips.ImageRef, error) {
		img, err := toVips(strip)
		if err != nil {
			return nil, err
		}
		if err := img.SetPageHeight(h); err != nil {
			return nil, err
		}
		if err := img.SetPageDelay([]int{200, 200, 200}); err != nil {
			return nil, err
		}
		img.SetInt("loop", 0)
		return img, nil
	}

	img, err := load()
	if err != nil {
		return err
	}
	gp := vips.NewGifExportParams()
	// No dithering: the frames are flat primaries that fit any palette, and
	// dither noise would make "frame 2 is green" a fuzzy assertion.
	gp.Dither = 0
	buf, _, err := img.ExportGIF(gp)
	img.Close()
	if err != nil {
		return err
	}
	if err := write("animated.gif", buf); err != nil {
		return err
	}

	img, err = load()
	if err != nil {
		return err
	}
	defer img.Close()
	wp := vips.NewWebpExportParams()
	// Lossless keeps the frame colours exact, and flat frames compress to a
	// few bytes either way.
	wp.Lossless = true
	wp.StripMetadata = false
	buf, _, err = img.ExportWebp(wp)
	if err != nil {
		return err
	}
	return write("animated.webp", buf)
}

// ---------------------------------------------------------------------------
// Photo-like image

// hash32 is a small integer hash (a variant of the "lowbias32" finaliser).
// It stands in for a seeded RNG so that every pixel value is a pure function
// of its coordinates, independent of the order in which pixels are computed.
func hash32(x, y, seed int) uint32 {
	h := uint32(x)*0x27d4eb2d ^ uint32(y)*0x165667b1 ^ uint32(seed)*0x9e3779b9
	h ^= h >> 16
	h *= 0x7feb352d
	h ^= h >> 15
	h *= 0x846ca68b
	h ^= h >> 16
	return h
}

func rand01(x, y, seed int) float64 { return float64(hash32(x, y, seed)) / 4294967295.0 }

// valueNoise is bilinearly interpolated lattice noise with cell size `cell`
// pixels; summing a few octaves gives cloud, rock and grass textures.
func valueNoise(x, y, cell, seed int) float64 {
	cx, cy := x/cell, y/cell
	fx := float64(x%cell) / float64(cell)
	fy := float64(y%cell) / float64(cell)
	fx = fx * fx * (3 - 2*fx)
	fy = fy * fy * (3 - 2*fy)
	a := rand01(cx, cy, seed)
	b := rand01(cx+1, cy, seed)
	c := rand01(cx, cy+1, seed)
	d := rand01(cx+1, cy+1, seed)
	top := a + (b-a)*fx
	bot := c + (d-c)*fx
	return top + (bot-top)*fy
}

func fbm(x, y, cell, octaves, seed int) float64 {
	sum, amp, norm := 0.0, 1.0, 0.0
	for i := 0; i < octaves && cell >= 1; i++ {
		sum += amp * valueNoise(x, y, cell, seed+i)
		norm += amp
		amp *= 0.5
		cell /= 2
	}
	return sum / norm
}

func mix(a, b [3]float64, t float64) [3]float64 {
	if t < 0 {
		t = 0
	} else if t > 1 {
		t = 1
	}
	return [3]float64{a[0] + (b[0]-a[0])*t, a[1] + (b[1]-a[1])*t, a[2] + (b[2]-a[2])*t}
}

func smoothstep(e0, e1, v float64) float64 {
	t := (v - e0) / (e1 - e0)
	if t < 0 {
		return 0
	}
	if t > 1 {
		return 1
	}
	return t * t * (3 - 2*t)
}

func clamp8(v float64) uint8 {
	if v <= 0 {
		return 0
	}
	if v >= 255 {
		return 255
	}
	return uint8(v + 0.5)
}

type tree struct{ x, base, h int }

// photoPixels paints a landscape: sky with clouds and a sun, two mountain
// ridges, a meadow, trees and a red barn. It only has to be busy enough
// that resizing, sharpening and smart-crop have real content to work on;
// the barn is the one strongly saturated object, which attention-based
// smart crop should gravitate to.
func photoPixels(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	trees := []tree{{90, 640, 150}, {170, 660, 190}, {620, 600, 110}, {700, 615, 130}, {1050, 700, 230}, {1130, 690, 200}, {860, 590, 90}}
	skyTop := [3]float64{52, 104, 178}
	skyLow := [3]float64{196, 214, 228}
	cloud := [3]float64{246, 246, 250}
	rock := [3]float64{104, 116, 146}
	grassFar := [3]float64{78, 118, 52}
	grassNear := [3]float64{104, 140, 58}
	leaf := [3]float64{34, 70, 36}
	bark := [3]float64{72, 52, 36}
	barn := [3]float64{168, 30, 26}
	roof := [3]float64{60, 56, 58}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := float64(x), float64(y)
			// Sky, clouds and sun.
			c := mix(skyTop, skyLow, fy/440)
			cl := smoothstep(0.52, 0.78, fbm(x, y*3, 256, 5, 11)) * (1 - fy/520)
			c = mix(c, cloud, cl)
			dx, dy := fx-930, fy-150
			d := math.Sqrt(dx*dx + dy*dy)
			glow := math.Exp(-d * d / (2 * 110 * 110))
			c = [3]float64{c[0] + 70*glow, c[1] + 60*glow, c[2] + 30*glow}
			if d < 46 {
				c = mix(c, [3]float64{255, 248, 226}, smoothstep(46, 42, d))
			}
			// Far ridge.
			r1 := 330 + 55*math.Sin(fx/170+0.5) + 30*math.Sin(fx/63+1.7) + 40*fbm(x, 0, 64, 4, 23)
			if fy > r1 {
				t := fbm(x, y, 32, 4, 31)
				haze := smoothstep(r1+120, r1, fy) * 0.35
				c = mix([3]float64{rock[0] + 40*(t-0.5), rock[1] + 40*(t-0.5), rock[2] + 40*(t-0.5)}, skyLow, haze)
			}
			// Meadow.
			r2 := 480 + 38*math.Sin(fx/240+2.1) + 16*math.Sin(fx/90+0.3)
			if fy > r2 {
				t := fbm(x, y, 64, 5, 41)
				g := mix(grassFar, grassNear, (fy-r2)/(float64(h)-r2))
				grain := 10 * (rand01(x, y, 51) - 0.5)
				c = [3]float64{g[0] + 50*(t-0.5) + grain, g[1] + 50*(t-0.5) + grain, g[2] + 30*(t-0.5) + grain}
			}
			// Barn: walls, then a pitched roof above them.
			if x >= 300 && x < 430 && y >= 560 && y < 640 {
				t := fbm(x, y, 8, 2, 61)
				c = [3]float64{barn[0] + 20*(t-0.5), barn[1] + 8*(t-0.5), barn[2] + 8*(t-0.5)}
				if x >= 350 && x < 380 && y >= 595 {
					c = [3]float64{40, 26, 20}
				}
			}
			if y >= 510 && y < 560 && math.Abs(fx-365) < 75*(fy-510)/50+1 {
				c = roof
			}
			// Trees: trunk plus an elliptical canopy.
			for _, tr := range trees {
				tw := float64(tr.h) / 12
				if math.Abs(fx-float64(tr.x)) < tw && y <= tr.base && y > tr.base-tr.h/3 {
					c = bark
				}
				ex := (fx - float64(tr.x)) / (float64(tr.h) * 0.32)
				ey := (fy - float64(tr.base-tr.h*6/10)) / (float64(tr.h) * 0.45)
				if ex*ex+ey*ey < 1 {
					t := fbm(x, y, 16, 3, 71+tr.x)
					shade := 1.25 - 0.5*(ex+1)/2
					c = [3]float64{(leaf[0] + 40*(t-0.5)) * shade, (leaf[1] + 60*(t-0.5)) * shade, (leaf[2] + 30*(t-0.5)) * shade}
				}
			}
			img.SetRGBA(x, y, color.RGBA{clamp8(c[0]), clamp8(c[1]), clamp8(c[2]), 255})
		}
	}
	return img
}

func genPhoto() error {
	const w, h = 1200, 800
	pixels := photoPixels(w, h)

	// load returns a fresh copy each time: govips operations mutate the
	// ImageRef in place, and each output format wants the unmodified photo.
	load := func(scale float64) (*vips.ImageRef, error) {
		img, err := toVips(pixels)
		if err != nil {
			return nil, err
		}
		// A light blur stands in for lens softness and hides the hard
		// edges of the painted shapes.
		if err := img.GaussianBlur(0.8); err != nil {
			return nil, err
		}
		if scale != 1 {
			if err := img.Resize(scale, vips.KernelLanczos3); err != nil {
				return nil, err
			}
		}
		return img, nil
	}

	type output struct {
		name   string
		scale  float64
		export func(*vips.ImageRef) ([]byte, error)
	}
	outputs := []output{
		{"photo.jpg", 1, func(img *vips.ImageRef) ([]byte, error) {
			b, _, err := img.ExportJpeg(jpegParams(85, false))
			return b, err
		}},
		{"photo-progressive.jpg", 1, func(img *vips.ImageRef) ([]byte, error) {
			b, _, err := img.ExportJpeg(jpegParams(85, true))
			return b, err
		}},
		{"photo.webp", 1, func(img *vips.ImageRef) ([]byte, error) {
			p := vips.NewWebpExportParams()
			p.Quality = 80
			b, _, err := img.ExportWebp(p)
			return b, err
		}},
		// PNG and TIFF are lossless; at full size this noisy picture would
		// be megabytes each, so they are half size.
		{"photo.png", 0.5, func(img *vips.ImageRef) ([]byte, error) {
			p := vips.NewPngExportParams()
			p.Compression = 9
			p.Filter = vips.PngFilterAll
			b, _, err := img.ExportPng(p)
			return b, err
		}},
		{"photo.tif", 0.5, func(img *vips.ImageRef) ([]byte, error) {
			p := vips.NewTiffExportParams()
			p.Compression = vips.TiffCompressionDeflate
			p.Predictor = vips.TiffPredictorHorizontal
			b, _, err := img.ExportTiff(p)
			return b, err
		}},
		{"photo.avif", 1, func(img *vips.ImageRef) ([]byte, error) {
			p := vips.NewAvifExportParams()
			p.Quality = 60
			p.Effort = 4
			b, _, err := img.ExportAvif(p)
			return b, err
		}},
	}
	for _, o := range outputs {
		img, err := load(o.scale)
		if err != nil {
			return err
		}
		buf, err := o.export(img)
		img.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
		if err := write(o.name, buf); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Watermark

// glyphs is a 5x7 bitmap font for the two letters of the watermark; a
// bitmap avoids depending on installed fonts, which would make the output
// differ between machines.
var glyphs = map[rune][7]string{
	'R': {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'F': {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
}

func genWatermark() error {
	const w, h = 100, 40
	ink := color.NRGBA{255, 255, 255, 160}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	// Frame, 3 px wide, with the corners cut so the shape is not a plain
	// rectangle and a misplaced overlay is easy to see.
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			edge := x < 3 || y < 3 || x >= w-3 || y >= h-3
			corner := (x < 4 || x >= w-4) && (y < 4 || y >= h-4)
			if edge && !corner {
				img.SetNRGBA(x, y, ink)
			}
		}
	}
	const scale = 4
	x0 := (w - (5*2+2)*scale) / 2
	y0 := (h - 7*scale) / 2
	for i, r := range "RF" {
		for gy, row := range glyphs[r] {
			for gx, ch := range row {
				if ch != '#' {
					continue
				}
				for sy := 0; sy < scale; sy++ {
					for sx := 0; sx < scale; sx++ {
						img.SetNRGBA(x0+(i*7+gx)*scale+sx, y0+gy*scale+sy, ink)
					}
				}
			}
		}
	}
	return writePNG("watermark.png", img)
}

// ---------------------------------------------------------------------------
// Invalid input

func genInvalid() error {
	photo, err := os.ReadFile(filepath.Join(*outDir, "photo.jpg"))
	if err != nil {
		return err
	}
	if err := write("truncated.jpg", photo[:len(photo)*40/100]); err != nil {
		return err
	}
	if err := write("empty.jpg", nil); err != nil {
		return err
	}
	if err := write("text.jpg", []byte("this is not an image\n")); err != nil {
		return err
	}
	svg := `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48" viewBox="0 0 64 48">` +
		`<rect width="64" height="48" fill="#ff0000"/></svg>` + "\n"
	if err := write("image.svg", []byte(svg)); err != nil {
		return err
	}

	pngData, err := os.ReadFile(filepath.Join(*outDir, "photo.png"))
	if err != nil {
		return err
	}
	corrupt, err := corruptIDAT(pngData)
	if err != nil {
		return err
	}
	return write("corrupt.png", corrupt)
}

// corruptIDAT overwrites 256 bytes in the middle of the compressed image
// data and then fixes that chunk's CRC. With the CRC left broken libpng
// would reject the chunk before inflating it; fixing it makes the decoder
// actually run into bad deflate data, which is the harder case for the
// engine to report cleanly.
func corruptIDAT(data []byte) ([]byte, error) {
	out := append([]byte(nil), data...)
	type chunk struct{ start, length int } // start of the data, after type
	var idats []chunk
	total := 0
	for off := 8; off+12 <= len(out); {
		n := int(binary.BigEndian.Uint32(out[off:]))
		if string(out[off+4:off+8]) == "IDAT" {
			idats = append(idats, chunk{off + 8, n})
			total += n
		}
		off += 12 + n
	}
	if len(idats) == 0 {
		return nil, errors.New("no IDAT chunk")
	}
	mid := total / 2
	for _, c := range idats {
		if mid >= c.length {
			mid -= c.length
			continue
		}
		span := 256
		start := mid - span/2
		if start < 0 {
			start = 0
		}
		if start+span > c.length {
			span = c.length - start
		}
		for i := 0; i < span; i++ {
			out[c.start+start+i] = byte(hash32(i, 0, 97))
		}
		crc := crc32.ChecksumIEEE(out[c.start-4 : c.start+c.length])
		binary.BigEndian.PutUint32(out[c.start+c.length:], crc)
		return out, nil
	}
	return nil, errors.New("IDAT middle not found")
}

// genBomb writes a PNG whose header claims 60000x60000 RGB (about 10 GB
// decoded) while the file is a few hundred bytes. Only the first row is
// present; a loader that trusts the header and allocates first is what
// the fixture is meant to catch, so the pixel data does not need to be
// complete.
func genBomb() error {
	const w, h = 60000, 60000
	var buf bytes.Buffer
	buf.WriteString("\x89PNG\r\n\x1a\n")

	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8] = 8  // bit depth
	ihdr[9] = 2  // colour type: truecolour (RGB)
	ihdr[10] = 0 // compression: deflate
	ihdr[11] = 0 // filter method 0
	ihdr[12] = 0 // no interlace
	writeChunk(&buf, "IHDR", ihdr)

	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, zlib.BestCompression)
	if err != nil {
		return err
	}
	row := make([]byte, 1+w*3) // filter byte 0, then black pixels
	if _, err := zw.Write(row); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	writeChunk(&buf, "IDAT", z.Bytes())
	writeChunk(&buf, "IEND", nil)
	return write("bomb.png", buf.Bytes())
}

func writeChunk(buf *bytes.Buffer, typ string, data []byte) {
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[0:], uint32(len(data)))
	copy(hdr[4:], typ)
	buf.Write(hdr[:])
	buf.Write(data)
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc.Sum32())
	buf.Write(sum[:])
}
