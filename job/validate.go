package job

import (
	"fmt"
	"strings"

	"github.com/renderfarm/renderfarm/render"
	"github.com/renderfarm/renderfarm/storage"
)

// Validate checks a request as the worker does before any I/O: the recipe
// expansion, every location against the store's guards (schemes, file
// roots, the journal, buckets, literal addresses and ports of URLs) and
// the outputs' object headers. The web tier calls
// it before publishing, so what it accepts can fail at the worker only for
// what takes I/O to know: a missing source, a host name that resolves to a
// private address, a corrupt image. Errors are *render.Error or
// *FieldError, each naming the field.
func Validate(req *Request, store *storage.Store, recipes render.Recipes) error {
	variants, err := recipes.Variants(&req.Request)
	if err != nil {
		return err
	}
	_, _, _, err = Locations(store, req, variants)
	return err
}

// Locations parses and checks every location before any I/O, so a hostile
// key fails the job before its source is even fetched.
func Locations(store *storage.Store, req *Request, variants []render.Variant) (storage.Location, []storage.Location, map[string]storage.Location, error) {
	check := func(raw, field string) (storage.Location, error) {
		loc, err := storage.ParseLocation(raw)
		if err == nil {
			if field == "source" || strings.HasSuffix(field, ".watermark.image") {
				err = store.CheckRead(loc)
			} else {
				err = store.Check(loc)
			}
		}
		if err != nil {
			return loc, &FieldError{Field: field, Err: err}
		}
		return loc, nil
	}
	src, err := check(req.Source, "source")
	if err != nil {
		return src, nil, nil, err
	}
	outs := make([]storage.Location, len(variants))
	marks := map[string]storage.Location{}
	for i, v := range variants {
		field := fmt.Sprintf("outputs[%d].key", i)
		if req.Recipe != "" {
			field = "dest" // the keys are dest plus the recipe's names
		}
		if outs[i], err = check(v.Key, field); err != nil {
			return src, nil, nil, err
		}
		if outs[i].Scheme != storage.SchemeS3 && outs[i].Scheme != storage.SchemeFile {
			return src, nil, nil, &FieldError{Field: field, Err: fmt.Errorf("outputs go to s3:// or file://, not %s://", outs[i].Scheme)}
		}
		if i == 0 {
			if err := checkHeaders(req, outs[0]); err != nil {
				return src, nil, nil, err
			}
		}
		if v.Watermark != nil {
			if marks[v.Watermark.Image], err = check(v.Watermark.Image, fmt.Sprintf("outputs[%d].watermark.image", i)); err != nil {
				return src, nil, nil, err
			}
		}
	}
	return src, outs, marks, nil
}

// checkHeaders applies the store's rules for object headers to the
// request's, one field at a time so the error names it. They are the
// same for every output (only the content type differs, and that comes
// from the format).
func checkHeaders(req *Request, out storage.Location) error {
	for _, h := range []struct {
		field string
		opts  storage.PutOptions
	}{
		{"cache_control", storage.PutOptions{CacheControl: req.CacheControl}},
		{"content_disposition", storage.PutOptions{ContentDisposition: req.ContentDisposition}},
		{"metadata", storage.PutOptions{Metadata: req.Metadata}},
	} {
		if err := storage.CheckPutOptions(out, h.opts); err != nil {
			return &FieldError{Field: h.field, Err: err}
		}
	}
	return nil
}
