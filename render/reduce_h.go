package render

/*
#cgo pkg-config: vips
#cgo CFLAGS: -O3
#include "reduce_h.h"
*/
import "C"

import (
	"math"
	"sync"
	"unsafe"

	"github.com/davidbyttow/govips/v2/vips"
)

// lanczos3Support is the Lanczos3 kernel's half-width in its own units.
const lanczos3Support = 3.0

// hKernel is a horizontal Lanczos3 reduce from inW to outW pixels as fixed
// point weights: output pixel x is the sum over t < taps of
// weights[x*taps+t] * in[start[x]+t], shifted right by C.RF_HSHIFT. The
// geometry is libvips 8.14's: pixel centres line up ((x+0.5)*s - 0.5), the
// kernel is stretched by the shrink s, and taps past an edge read the edge
// pixel. Each pixel's weights sum to exactly one, so flat areas stay flat.
type hKernel struct {
	taps    int
	start   []int32
	weights []int16
}

func newHKernel(inW, outW int) hKernel {
	s := float64(inW) / float64(outW)
	support := lanczos3Support * s
	// Taps within the kernel's reach, rounded up to even for the vector
	// loop's pairs (the extra tap weighs nothing), before folding edges.
	span := int(math.Ceil(2*support)) + 1
	span += span % 2
	taps := min(span, inW)
	k := hKernel{taps: taps, start: make([]int32, outW), weights: make([]int16, outW*taps)}
	one := 1 << C.RF_HSHIFT
	f := make([]float64, taps)
	for x := range outW {
		centre := (float64(x)+0.5)*s - 0.5
		lo := int(math.Floor(centre-support)) + 1
		start := min(max(lo, 0), inW-taps)
		clear(f)
		sum := 0.0
		for i := lo; i < lo+span; i++ {
			v := lanczos3((float64(i) - centre) / s)
			f[min(max(i, 0), inW-1)-start] += v
			sum += v
		}
		w := k.weights[x*taps : (x+1)*taps]
		total, peak := 0, 0
		for t := range f {
			w[t] = int16(math.Round(f[t] / sum * float64(one)))
			total += int(w[t])
			if w[t] > w[peak] {
				peak = t
			}
		}
		// Rounding leaves the sum a few units off one; the largest tap
		// takes the difference, where it changes the shape least.
		w[peak] += int16(one - total)
		k.start[x] = int32(start)
	}
	return k
}

func lanczos3(x float64) float64 {
	switch {
	case x == 0:
		return 1
	case x <= -lanczos3Support || x >= lanczos3Support:
		return 0
	}
	px := math.Pi * x
	return lanczos3Support * math.Sin(px) * math.Sin(px/lanczos3Support) / (px * px)
}

// reducibleH reports whether reduceH can take img: 8-bit pixels, not coded.
// Premultiplied alpha is float and stays with libvips.
func reducibleH(img *vips.ImageRef) bool {
	return img.BandFormat() == vips.BandFormatUchar && img.Coding() == vips.CodingNone
}

// reduceH resamples img's width to outW with Lanczos3, on threads
// goroutines, leaving its height alone. It stands in for libvips 8.14's
// reduceh, which is scalar C and several times slower than its vertical
// twin (docs/performance.md); the result is in memory, as wide as the
// output and as tall as the input.
func reduceH(img *vips.ImageRef, outW, threads int) error {
	return reduceHWith(img, outW, threads, true)
}

// reduceHWith is reduceH, with the SSSE3 loop allowed or not.
func reduceHWith(img *vips.ImageRef, outW, threads int, vector bool) error {
	k := newHKernel(img.Width(), outW)
	v := C.int(0)
	if vector {
		v = 1
	}
	return apply(img, func(in *C.VipsImage, out **C.VipsImage) C.int {
		var reg *C.VipsRegion
		if C.rf_hreduce_begin(in, C.int(outW), &reg, out) != 0 {
			return -1
		}
		defer C.g_object_unref(C.gpointer(reg))
		h := int(in.Ysize)
		threads = min(max(threads, 1), h)
		var wg sync.WaitGroup
		for i := range threads {
			wg.Go(func() {
				C.rf_hreduce_rows(reg, *out, C.int(h*i/threads), C.int(h*(i+1)/threads),
					(*C.int32_t)(unsafe.Pointer(&k.start[0])), (*C.int16_t)(unsafe.Pointer(&k.weights[0])), C.int(k.taps), v)
			})
		}
		wg.Wait()
		return 0
	})
}
