package render

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/davidbyttow/govips/v2/vips"
)

// variantState carries one variant through the pipeline. img is owned by
// the state: every step replaces it in place, and the runner closes it.
type variantState struct {
	v          *Variant
	plan       plan
	header     Header
	img        *vips.ImageRef
	format     Format
	background colour
	opaque     bool // the result had no alpha before watermarking
	watermark  []byte
	limits     Limits
	cascade    *cascade // set when smaller variants can be cut from this one
	threads    int      // libvips threads per render, for the engine's own passes
	out        Output
}

// step is one named stage. Steps run in order, and the deadline is checked
// between them: libvips cannot be interrupted inside an operation, so a
// step is the unit of cancellation.
type step struct {
	name string
	run  func(*variantState) error
}

// variantSteps renders one variant from the decoded source. Geometry comes
// first, on the fewest pixels; colour work follows on the resized image;
// export is last.
var variantSteps = []step{
	{"resize", resize},
	{"keep_for_smaller", keepForSmaller},
	{"colour", toSRGB},
	{"orient", orient},
	{"crop", crop},
	{"pad", pad},
	{"sharpen", sharpen},
	{"watermark", watermark},
	{"flatten", flatten},
	{"strip_metadata", stripMetadata},
	{"export", export},
}

func runSteps(ctx context.Context, steps []step, st *variantState) error {
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return canceled(s.name, err)
		}
		if err := s.run(st); err != nil {
			var re *Error
			if errors.As(err, &re) {
				return err
			}
			return &Error{Code: ErrInternal, Msg: "render step " + s.name + " failed", Err: vipsError(err)}
		}
	}
	return nil
}

func canceled(stage string, err error) *Error {
	return &Error{Code: ErrCanceled, Msg: "stopped before " + stage, Err: err}
}

// vipsError trims govips' errors to libvips' last message. govips appends
// a Go stack trace, which says nothing to a person reading a task failure,
// and libvips' error buffer is process-wide, so earlier lines may belong to
// another job.
func vipsError(err error) error {
	msg, _, _ := strings.Cut(err.Error(), "\nStack:")
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	return errors.New(strings.TrimSpace(lines[len(lines)-1]))
}

func since(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// colour is an sRGB colour with alpha, as requests write it: #rgb, #rgba,
// #rrggbb or #rrggbbaa.
type colour struct{ R, G, B, A uint8 }

func parseColour(s string) (colour, error) {
	h := strings.TrimPrefix(s, "#")
	if len(h) == 3 || len(h) == 4 {
		long := make([]byte, 0, 8)
		for i := range len(h) {
			long = append(long, h[i], h[i])
		}
		h = string(long)
	}
	if len(h) == 6 {
		h += "ff"
	}
	var c colour
	if len(h) != 8 || !strings.HasPrefix(s, "#") {
		return c, fmt.Errorf("must be a colour like #ffffff or #ffffff80, got %q", s)
	}
	if _, err := fmt.Sscanf(h, "%02x%02x%02x%02x", &c.R, &c.G, &c.B, &c.A); err != nil {
		return c, fmt.Errorf("must be a colour like #ffffff or #ffffff80, got %q", s)
	}
	return c, nil
}
