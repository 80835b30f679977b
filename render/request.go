package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Fit says how a source is fitted into a variant's width x height box.
type Fit string

const (
	FitInside  Fit = "inside"  // fit within the box, keep aspect (the default)
	FitCover   Fit = "cover"   // fill the box, crop what overflows
	FitContain Fit = "contain" // fit within the box, pad the rest with background
	FitFill    Fit = "fill"    // stretch to the box, ignore aspect
	FitOutside Fit = "outside" // cover the box, keep aspect, no crop
)

// Gravity picks the part of the image that cover keeps.
type Gravity string

const (
	GravityCentre    Gravity = "centre"
	GravityAttention Gravity = "attention" // libvips smart crop: skin, saturation, edges
	GravityEntropy   Gravity = "entropy"   // libvips smart crop: most detail
)

// Format is an output encoding. FormatAuto becomes jpeg for opaque results
// and png for results with transparency.
type Format string

const (
	FormatAuto Format = "auto"
	FormatJPEG Format = "jpeg"
	FormatWebP Format = "webp"
	FormatAVIF Format = "avif"
	FormatPNG  Format = "png"
)

// Ext is the usual file extension for the format, without the dot.
func (f Format) Ext() string {
	if f == FormatJPEG {
		return "jpg"
	}
	return string(f)
}

// ContentType is the MIME type of the encoded output.
func (f Format) ContentType() string {
	switch f {
	case FormatJPEG:
		return "image/jpeg"
	case FormatWebP:
		return "image/webp"
	case FormatAVIF:
		return "image/avif"
	case FormatPNG:
		return "image/png"
	}
	return "application/octet-stream"
}

// Position places a watermark on the output.
type Position string

var positions = []Position{"centre", "north", "south", "east", "west",
	"north-east", "north-west", "south-east", "south-west"}

// Request is one render job as tasks carry it: a source and either explicit
// outputs or a recipe name expanded under a dest prefix.
type Request struct {
	Source  string    `json:"source"`
	Outputs []Variant `json:"outputs,omitempty"`
	Recipe  string    `json:"recipe,omitempty"`
	Dest    string    `json:"dest,omitempty"`
}

// Variant is one output of a render.
type Variant struct {
	Key         string     `json:"key,omitempty" yaml:"-"`
	Width       int        `json:"width,omitempty" yaml:"width"`
	Height      int        `json:"height,omitempty" yaml:"height"`
	Fit         Fit        `json:"fit,omitempty" yaml:"fit"`
	Gravity     Gravity    `json:"gravity,omitempty" yaml:"gravity"`
	Enlarge     bool       `json:"enlarge,omitempty" yaml:"enlarge"`
	Format      Format     `json:"format,omitempty" yaml:"format"`
	Quality     int        `json:"quality,omitempty" yaml:"quality"`
	Progressive bool       `json:"progressive,omitempty" yaml:"progressive"`
	Effort      *int       `json:"effort,omitempty" yaml:"effort"`
	Strip       *bool      `json:"strip,omitempty" yaml:"strip"`
	Sharpen     float64    `json:"sharpen,omitempty" yaml:"sharpen"`
	Background  string     `json:"background,omitempty" yaml:"background"`
	Watermark   *Watermark `json:"watermark,omitempty" yaml:"watermark"`
}

// Watermark overlays an image on a variant. Image is a location that the
// caller resolves to bytes (see Job.Watermarks); the engine never fetches.
type Watermark struct {
	Image    string   `json:"image" yaml:"image"`
	Position Position `json:"position,omitempty" yaml:"position"`
	Opacity  *float64 `json:"opacity,omitempty" yaml:"opacity"`
	Scale    float64  `json:"scale,omitempty" yaml:"scale"`
	Margin   *int     `json:"margin,omitempty" yaml:"margin"`
}

// Limits on what a request may ask for. Output dimensions are capped so a
// tiny source cannot be blown up into a memory bomb by enlarge or fill.
const (
	MaxDimension = 16384
	MaxVariants  = 32
	maxSharpen   = 10
)

// ParseRequest decodes a request strictly: unknown fields, wrong types and
// out-of-range values are errors naming the field, and so is trailing data.
// Recipe names are checked later, by Recipes.Expand.
func ParseRequest(data []byte) (*Request, error) {
	fields, err := objectFields(data, "")
	if err != nil {
		return nil, err
	}
	var r Request
	for _, name := range sortedKeys(fields) {
		raw := fields[name]
		switch name {
		case "source":
			err = decodeField(raw, name, &r.Source)
		case "recipe":
			err = decodeField(raw, name, &r.Recipe)
		case "dest":
			err = decodeField(raw, name, &r.Dest)
		case "outputs":
			r.Outputs, err = parseVariants(raw, name)
		default:
			err = fieldError(name, "unknown field")
		}
		if err != nil {
			return nil, err
		}
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks the request's shape and every explicit output. It does not
// resolve the recipe: that needs the recipe set.
func (r *Request) Validate() error {
	if strings.TrimSpace(r.Source) == "" {
		return fieldError("source", "is required")
	}
	switch {
	case len(r.Outputs) > 0 && r.Recipe != "":
		return fieldError("recipe", "give either outputs or recipe, not both")
	case len(r.Outputs) == 0 && r.Recipe == "":
		return fieldError("outputs", "give outputs, or a recipe with dest")
	case r.Recipe != "" && r.Dest == "":
		return fieldError("dest", "is required with recipe")
	case r.Recipe == "" && r.Dest != "":
		return fieldError("dest", "only applies with recipe")
	}
	if len(r.Outputs) > MaxVariants {
		return fieldError("outputs", "has %d variants, at most %d are allowed", len(r.Outputs), MaxVariants)
	}
	seen := map[string]bool{}
	for i := range r.Outputs {
		path := fmt.Sprintf("outputs[%d]", i)
		v := &r.Outputs[i]
		if v.Key == "" {
			return fieldError(path+".key", "is required")
		}
		if seen[v.Key] {
			return fieldError(path+".key", "%q is used by an earlier output", v.Key)
		}
		seen[v.Key] = true
		if err := v.Validate(path); err != nil {
			return err
		}
	}
	return nil
}

func parseVariants(raw json.RawMessage, path string) ([]Variant, error) {
	var items []json.RawMessage
	if err := decodeField(raw, path, &items); err != nil {
		return nil, err
	}
	out := make([]Variant, len(items))
	for i, item := range items {
		v, err := ParseVariant(item, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out[i] = *v
	}
	return out, nil
}

// ParseVariant decodes one variant strictly; path prefixes field names in
// errors ("" for a variant on its own, as the CLI's --variant takes it).
// It does not validate: the caller decides whether a key is required.
func ParseVariant(data []byte, path string) (*Variant, error) {
	fields, err := objectFields(data, path)
	if err != nil {
		return nil, err
	}
	var v Variant
	for _, name := range sortedKeys(fields) {
		raw, field := fields[name], join(path, name)
		switch name {
		case "key":
			err = decodeField(raw, field, &v.Key)
		case "width":
			err = decodePositive(raw, field, &v.Width, MaxDimension)
		case "height":
			err = decodePositive(raw, field, &v.Height, MaxDimension)
		case "fit":
			err = decodeField(raw, field, &v.Fit)
		case "gravity":
			err = decodeField(raw, field, &v.Gravity)
		case "enlarge":
			err = decodeField(raw, field, &v.Enlarge)
		case "format":
			err = decodeField(raw, field, &v.Format)
		case "quality":
			err = decodePositive(raw, field, &v.Quality, 100)
		case "progressive":
			err = decodeField(raw, field, &v.Progressive)
		case "effort":
			err = decodeField(raw, field, &v.Effort)
		case "strip":
			err = decodeField(raw, field, &v.Strip)
		case "sharpen":
			err = decodeField(raw, field, &v.Sharpen)
		case "background":
			err = decodeField(raw, field, &v.Background)
		case "watermark":
			v.Watermark, err = parseWatermark(raw, field)
		default:
			err = fieldError(field, "unknown field")
		}
		if err != nil {
			return nil, err
		}
	}
	return &v, nil
}

// decodePositive decodes a field whose zero value means "not given": an
// explicit 0 would otherwise be taken silently as absent.
func decodePositive(raw []byte, field string, dst *int, max int) error {
	if err := decodeField(raw, field, dst); err != nil {
		return err
	}
	if *dst == 0 {
		return fieldError(field, "must be between 1 and %d, got 0", max)
	}
	return nil
}

func parseWatermark(data []byte, path string) (*Watermark, error) {
	fields, err := objectFields(data, path)
	if err != nil {
		return nil, err
	}
	var w Watermark
	for _, name := range sortedKeys(fields) {
		raw, field := fields[name], join(path, name)
		switch name {
		case "image":
			err = decodeField(raw, field, &w.Image)
		case "position":
			err = decodeField(raw, field, &w.Position)
		case "opacity":
			err = decodeField(raw, field, &w.Opacity)
		case "scale":
			err = decodeField(raw, field, &w.Scale)
		case "margin":
			err = decodeField(raw, field, &w.Margin)
		default:
			err = fieldError(field, "unknown field")
		}
		if err != nil {
			return nil, err
		}
	}
	return &w, nil
}

// Validate checks one variant; path names it in errors. Defaults are not
// filled in here so that a request round-trips as it was sent.
func (v *Variant) Validate(path string) error {
	f := func(name string) string { return join(path, name) }
	if v.Width < 0 || v.Width > MaxDimension {
		return fieldError(f("width"), "must be between 1 and %d, got %d", MaxDimension, v.Width)
	}
	if v.Height < 0 || v.Height > MaxDimension {
		return fieldError(f("height"), "must be between 1 and %d, got %d", MaxDimension, v.Height)
	}
	if v.Width == 0 && v.Height == 0 {
		return fieldError(f("width"), "give width, height or both")
	}
	switch v.fit() {
	case FitInside, FitOutside:
	case FitCover, FitContain, FitFill:
		if v.Width == 0 || v.Height == 0 {
			return fieldError(f("fit"), "%s needs both width and height", v.Fit)
		}
	default:
		return fieldError(f("fit"), "must be one of inside, cover, contain, fill, outside; got %q", v.Fit)
	}
	switch v.gravity() {
	case GravityCentre, GravityAttention, GravityEntropy:
	default:
		return fieldError(f("gravity"), "must be one of centre, attention, entropy; got %q", v.Gravity)
	}
	if v.Gravity != "" && v.fit() != FitCover {
		return fieldError(f("gravity"), "only applies with fit cover")
	}
	format := v.format()
	switch format {
	case FormatAuto, FormatJPEG, FormatWebP, FormatAVIF, FormatPNG:
	default:
		return fieldError(f("format"), "must be one of jpeg, webp, avif, png, auto; got %q", v.Format)
	}
	if v.Quality < 0 || v.Quality > 100 {
		return fieldError(f("quality"), "must be between 1 and 100, got %d", v.Quality)
	}
	if v.Effort != nil {
		maxEffort := map[Format]int{FormatWebP: 6, FormatAVIF: 9, FormatPNG: 9, FormatAuto: 9}[format]
		if format == FormatJPEG {
			return fieldError(f("effort"), "does not apply to jpeg")
		}
		if *v.Effort < 0 || *v.Effort > maxEffort {
			return fieldError(f("effort"), "must be between 0 and %d for %s, got %d", maxEffort, format, *v.Effort)
		}
	}
	if v.Progressive && format != FormatJPEG && format != FormatPNG && format != FormatAuto {
		return fieldError(f("progressive"), "only applies to jpeg and png")
	}
	if math.IsNaN(v.Sharpen) || v.Sharpen < 0 || v.Sharpen > maxSharpen {
		return fieldError(f("sharpen"), "must be a sigma between 0 and %d, got %v", maxSharpen, v.Sharpen)
	}
	if v.Background != "" {
		if _, err := parseColour(v.Background); err != nil {
			return fieldError(f("background"), "%v", err)
		}
	}
	if v.Watermark != nil {
		return v.Watermark.validate(f("watermark"))
	}
	return nil
}

func (w *Watermark) validate(path string) error {
	f := func(name string) string { return join(path, name) }
	if strings.TrimSpace(w.Image) == "" {
		return fieldError(f("image"), "is required")
	}
	if w.Position != "" && !containsPosition(w.Position) {
		return fieldError(f("position"), "must be one of %s; got %q", positionList(), w.Position)
	}
	if w.Opacity != nil && (math.IsNaN(*w.Opacity) || *w.Opacity <= 0 || *w.Opacity > 1) {
		return fieldError(f("opacity"), "must be above 0 and at most 1, got %v", *w.Opacity)
	}
	if math.IsNaN(w.Scale) || w.Scale < 0 || w.Scale > 1 {
		return fieldError(f("scale"), "must be a fraction of the output width, above 0 and at most 1, got %v", w.Scale)
	}
	if w.Margin != nil && (*w.Margin < 0 || *w.Margin > MaxDimension) {
		return fieldError(f("margin"), "must be between 0 and %d pixels, got %d", MaxDimension, *w.Margin)
	}
	return nil
}

// Defaults, applied when a variant is rendered.
const (
	defaultJPEGQuality = 80
	defaultWebPQuality = 80
	defaultAVIFQuality = 55
	defaultWebPEffort  = 4
	defaultAVIFEffort  = 4 // libvips' 5 is slow for little gain at web sizes
	defaultPNGEffort   = 6
	defaultWMScale     = 0.25
	defaultWMMargin    = 8
	defaultBackground  = "#ffffff"
)

func (v *Variant) fit() Fit {
	if v.Fit == "" {
		return FitInside
	}
	return v.Fit
}

func (v *Variant) gravity() Gravity {
	switch v.Gravity {
	case "", "center":
		return GravityCentre
	}
	return v.Gravity
}

func (v *Variant) format() Format {
	if v.Format == "" {
		return FormatAuto
	}
	return v.Format
}

func (v *Variant) strip() bool { return v.Strip == nil || *v.Strip }

// Name is a short human label for the variant, used in file names and
// tables when it has no key: "512x512", "800w", "cover-200x200".
func (v *Variant) Name() string {
	var size string
	switch {
	case v.Width > 0 && v.Height > 0:
		size = fmt.Sprintf("%dx%d", v.Width, v.Height)
	case v.Width > 0:
		size = strconv.Itoa(v.Width) + "w"
	default:
		size = strconv.Itoa(v.Height) + "h"
	}
	if fit := v.fit(); fit != FitInside {
		size = string(fit) + "-" + size
	}
	return size
}

func containsPosition(p Position) bool {
	if p == "center" {
		return true
	}
	for _, q := range positions {
		if p == q {
			return true
		}
	}
	return false
}

func positionList() string {
	names := make([]string, len(positions))
	for i, p := range positions {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}

// objectFields splits a JSON object into its members so each can be decoded
// with its own path in errors; encoding/json's DisallowUnknownFields names
// the field but not where it is.
func objectFields(data []byte, path string) (map[string]json.RawMessage, error) {
	data = bytes.TrimSpace(data)
	what := path
	if what == "" {
		what = "request"
	}
	if len(data) == 0 || data[0] != '{' {
		return nil, fieldError(path, "%s must be a JSON object", what)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		return nil, &Error{Code: ErrInvalidRequest, Field: path, Msg: "is not valid JSON", Err: err}
	}
	if dec.More() {
		return nil, fieldError(path, "has data after the JSON object")
	}
	return fields, nil
}

func decodeField(raw json.RawMessage, field string, dst any) error {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return fieldError(field, "must not be null")
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		var te *json.UnmarshalTypeError
		if ok := asTypeError(err, &te); ok {
			return fieldError(field, "must be %s, got %s", jsonKind(te.Type.Kind().String()), te.Value)
		}
		return &Error{Code: ErrInvalidRequest, Field: field, Msg: "is not valid", Err: err}
	}
	return nil
}

func asTypeError(err error, te **json.UnmarshalTypeError) bool {
	t, ok := err.(*json.UnmarshalTypeError)
	if ok {
		*te = t
	}
	return ok
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64":
		return "a whole number"
	case "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "ptr":
		return "a number"
	}
	return "a " + goKind
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
