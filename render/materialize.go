package render

/*
#cgo pkg-config: vips
#include <vips/vips.h>

static int rf_copy_memory(VipsImage *in, VipsImage **out) {
	*out = vips_image_copy_memory(in);
	return *out == NULL ? -1 : 0;
}

static int rf_resize(VipsImage *in, VipsImage **out, double hscale, double vscale, double gap) {
	return vips_resize(in, out, hscale, "vscale", vscale, "kernel", VIPS_KERNEL_LANCZOS3, "gap", gap, NULL);
}
*/
import "C"

import (
	"errors"
	"reflect"
	"runtime"
	"unsafe"

	"github.com/davidbyttow/govips/v2/vips"
)

// errNoMaterialize means this govips build hides its image differently;
// callers fall back to recomputing instead of reusing.
var errNoMaterialize = errors.New("render: cannot reach govips' image to materialise it")

// apply replaces img's libvips image with op's result. govips 2.16 lacks
// a few operations the engine needs (vips_image_copy_memory, and
// vips_resize's gap option) and keeps its *VipsImage in an unexported
// field, so apply reaches the field by reflection. The module is pinned to
// v2.16.0; TestMaterialize fails if an upgrade moves the field.
func apply(img *vips.ImageRef, op func(in *C.VipsImage, out **C.VipsImage) C.int) error {
	f := reflect.ValueOf(img).Elem().FieldByName("image")
	if !f.IsValid() || f.Kind() != reflect.Pointer || f.Type().Elem().Name() != "_Ctype_struct__VipsImage" {
		return errNoMaterialize
	}
	slot := (**C.VipsImage)(unsafe.Pointer(f.UnsafeAddr()))
	in := *slot
	if in == nil {
		return errNoMaterialize
	}
	var out *C.VipsImage
	if op(in, &out) != 0 || out == nil {
		msg := C.GoString(C.vips_error_buffer())
		C.vips_error_clear()
		return errors.New(msg)
	}
	// The ImageRef owned one reference to in; it now owns out, which holds
	// its own reference to in where it still needs it.
	*slot = out
	C.g_object_unref(C.gpointer(in))
	runtime.KeepAlive(img)
	return nil
}

// materialize computes img's pipeline into a memory buffer and points img at
// it, so that several variants can be cut from one intermediate without
// recomputing it for each (libvips pipelines are lazy and, with the
// operation cache off, recompute everything for every consumer).
func materialize(img *vips.ImageRef) error {
	return apply(img, func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rf_copy_memory(in, out) })
}

// resizeGap is vips_resize with its gap option: gap 0 resamples with the
// Lanczos kernel alone, larger gaps box-shrink first by an integer factor.
func resizeGap(img *vips.ImageRef, hscale, vscale, gap float64) error {
	return apply(img, func(in *C.VipsImage, out **C.VipsImage) C.int {
		return C.rf_resize(in, out, C.double(hscale), C.double(vscale), C.double(gap))
	})
}
