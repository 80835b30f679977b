// Command benchquality scores `make bench`'s outputs: SSIM of each output
// against a reference downscale of its source, and the bytes, summed per
// format, so a faster setting that makes worse or bigger images shows up
// beside its speed. Every contender's outputs are scored by this one
// routine.
//
//	benchquality -src DIR [-each] NAME=DIR...
//
// Each NAME=DIR is one contender's outputs; an output DIR/<stem>_<key>.<ext>
// belongs to the source SRC/<stem>.jpg. Sources are decoded, and references
// made, once for all contenders.
// The reference is libvips' own best effort, independent of either side's
// shortcuts: the full-size decode (no shrink-on-load), EXIF orientation
// applied, Lanczos3 (vips_resize, its default box pre-shrink keeps at least
// 2x for the kernel) to the output's exact size, sRGB. SSIM is Wang et
// al.'s: on luma (BT.601), 11x11 Gaussian window with sigma 1.5, K1 0.01,
// K2 0.03, averaged over the image. Prints one JSON line per contender and
// format and one per contender for all formats: outputs, bytes, mean and
// minimum SSIM.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/davidbyttow/govips/v2/vips"
)

type score struct {
	Name    string  `json:"contender"`
	Format  string  `json:"format"`
	Outputs int     `json:"outputs"`
	Bytes   int64   `json:"bytes"`
	Mean    float64 `json:"ssim_mean"`
	Min     float64 `json:"ssim_min"`
	sum     float64
}

func (s *score) add(bytes int64, v float64) {
	if s.Outputs == 0 || v < s.Min {
		s.Min = v
	}
	s.Outputs++
	s.Bytes += bytes
	s.sum += v
	s.Mean = s.sum / float64(s.Outputs)
}

func main() {
	srcDir := flag.String("src", "", "directory of the sources")
	each := flag.Bool("each", false, "also print one line per output (to see which outputs a change moved)")
	flag.Parse()
	vips.LoggingSettings(nil, vips.LogLevelError)
	vips.Startup(&vips.Config{ConcurrencyLevel: 1, MaxCacheFiles: 0, MaxCacheMem: 0, MaxCacheSize: 0})
	defer vips.Shutdown()
	if err := run(*srcDir, flag.Args(), *each); err != nil {
		fmt.Fprintln(os.Stderr, "benchquality:", err)
		os.Exit(1)
	}
}

func run(srcDir string, contenders []string, each bool) error {
	type output struct{ name, path string }
	bySource := map[string][]output{}
	var names []string
	for _, c := range contenders {
		name, dir, ok := strings.Cut(c, "=")
		if !ok {
			return fmt.Errorf("want NAME=DIR, got %q", c)
		}
		outs, err := filepath.Glob(filepath.Join(dir, "*_*.*"))
		if err != nil || len(outs) == 0 {
			return fmt.Errorf("no outputs in %s (%v)", dir, err)
		}
		names = append(names, name)
		for _, o := range outs {
			base := filepath.Base(o)
			src := filepath.Join(srcDir, base[:strings.LastIndexByte(base, '_')]+".jpg")
			bySource[src] = append(bySource[src], output{name, o})
		}
	}
	scores := map[string]*score{}
	tally := func(name, format string, n int64, v float64) {
		k := name + "/" + format
		if scores[k] == nil {
			scores[k] = &score{Name: name, Format: format}
		}
		scores[k].add(n, v)
	}
	for src, outs := range bySource {
		r, err := newReferences(src)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		for _, o := range outs {
			v, n, format, err := scoreOne(r, o.path)
			if err != nil {
				r.close()
				return fmt.Errorf("%s: %w", o.path, err)
			}
			tally(o.name, format, n, v)
			tally(o.name, "all", n, v)
			if each {
				line := struct {
					Name   string  `json:"contender"`
					Output string  `json:"output"`
					Bytes  int64   `json:"bytes"`
					SSIM   float64 `json:"ssim"`
				}{o.name, filepath.Base(o.path), n, v}
				if err := json.NewEncoder(os.Stdout).Encode(line); err != nil {
					r.close()
					return err
				}
			}
		}
		r.close()
	}
	keys := make([]string, 0, len(scores))
	for k := range scores {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	enc := json.NewEncoder(os.Stdout)
	for _, k := range keys {
		if err := enc.Encode(scores[k]); err != nil {
			return err
		}
	}
	return nil
}

// references are one source's full decode and its reference downscales,
// made once per size.
type references struct {
	full   *vips.ImageRef
	bySize map[[2]int][]float64
}

func newReferences(src string) (*references, error) {
	full, err := loadRGB(src)
	if err != nil {
		return nil, err
	}
	return &references{full: full, bySize: map[[2]int][]float64{}}, nil
}

func (r *references) close() { r.full.Close() }

// luma is the reference at w x h.
func (r *references) luma(w, h int) ([]float64, error) {
	if y, ok := r.bySize[[2]int{w, h}]; ok {
		return y, nil
	}
	ref, err := r.full.Copy()
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	if err := ref.ResizeWithVScale(float64(w)/float64(ref.Width()), float64(h)/float64(ref.Height()), vips.KernelLanczos3); err != nil {
		return nil, err
	}
	if ref.Width() != w || ref.Height() != h {
		if ref.Width() < w || ref.Height() < h {
			err = ref.Embed(0, 0, w, h, vips.ExtendCopy)
		}
		if err == nil {
			err = ref.ExtractArea(0, 0, w, h)
		}
		if err != nil {
			return nil, err
		}
	}
	y, err := luma(ref)
	if err == nil {
		r.bySize[[2]int{w, h}] = y
	}
	return y, err
}

// loadRGB decodes a file whole, turned upright, as 8-bit sRGB.
func loadRGB(path string) (*vips.ImageRef, error) {
	img, err := vips.NewImageFromFile(path)
	if err != nil {
		return nil, err
	}
	if err := img.AutoRotate(); err == nil {
		if err = img.ToColorSpace(vips.InterpretationSRGB); err == nil {
			err = img.Cast(vips.BandFormatUchar)
		}
	}
	if err != nil {
		img.Close()
		return nil, err
	}
	return img, nil
}

func scoreOne(r *references, path string) (ssim float64, bytes int64, format string, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, "", err
	}
	out, err := loadRGB(path)
	if err != nil {
		return 0, 0, "", err
	}
	defer out.Close()
	format = vips.ImageTypes[out.Format()]
	w, h := out.Width(), out.Height()
	a, err := luma(out)
	if err != nil {
		return 0, 0, "", err
	}
	b, err := r.luma(w, h)
	if err != nil {
		return 0, 0, "", err
	}
	return SSIM(a, b, w, h), fi.Size(), format, nil
}

// luma is the image's BT.601 luma, one float per pixel, row by row.
func luma(img *vips.ImageRef) ([]float64, error) {
	px, err := img.ToBytes()
	if err != nil {
		return nil, err
	}
	bands := img.Bands()
	n := img.Width() * img.Height()
	if len(px) < n*bands || bands < 3 {
		return nil, fmt.Errorf("unexpected pixel layout: %d bytes, %d bands", len(px), bands)
	}
	y := make([]float64, n)
	for i := range y {
		p := px[i*bands:]
		y[i] = 0.299*float64(p[0]) + 0.587*float64(p[1]) + 0.114*float64(p[2])
	}
	return y, nil
}

// SSIM is the mean structural similarity of two w x h luma planes. The
// Gaussian window is cut off at the edges and renormalised there, so small
// images (64 px) are scored over every pixel.
func SSIM(a, b []float64, w, h int) float64 {
	const (
		c1 = (0.01 * 255) * (0.01 * 255)
		c2 = (0.03 * 255) * (0.03 * 255)
	)
	ab := make([]float64, len(a))
	aa := make([]float64, len(a))
	bb := make([]float64, len(a))
	for i := range a {
		ab[i], aa[i], bb[i] = a[i]*b[i], a[i]*a[i], b[i]*b[i]
	}
	ma, mb := blur(a, w, h), blur(b, w, h)
	saa, sbb, sab := blur(aa, w, h), blur(bb, w, h), blur(ab, w, h)
	var sum float64
	for i := range a {
		va, vb, cov := saa[i]-ma[i]*ma[i], sbb[i]-mb[i]*mb[i], sab[i]-ma[i]*mb[i]
		sum += (2*ma[i]*mb[i] + c1) * (2*cov + c2) / ((ma[i]*ma[i] + mb[i]*mb[i] + c1) * (va + vb + c2))
	}
	return sum / float64(len(a))
}

// gauss is the 11-tap Gaussian, sigma 1.5.
var gauss = func() [11]float64 {
	var k [11]float64
	for i := range k {
		x := float64(i - 5)
		k[i] = math.Exp(-x * x / (2 * 1.5 * 1.5))
	}
	return k
}()

// blur is a separable Gaussian, renormalised where the window leaves the
// image.
func blur(in []float64, w, h int) []float64 {
	tmp := make([]float64, len(in))
	out := make([]float64, len(in))
	pass := func(src, dst []float64, n, stride, count, step int) {
		for c := 0; c < count; c++ {
			base := c * step
			for i := 0; i < n; i++ {
				var s, ws float64
				for k := -5; k <= 5; k++ {
					j := i + k
					if j < 0 || j >= n {
						continue
					}
					s += gauss[k+5] * src[base+j*stride]
					ws += gauss[k+5]
				}
				dst[base+i*stride] = s / ws
			}
		}
	}
	pass(in, tmp, w, 1, h, w)  // rows
	pass(tmp, out, h, w, w, 1) // columns
	return out
}
