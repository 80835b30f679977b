package render

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRequestErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, body, field, msg string
	}{
		{"not an object", `[1]`, "", "must be a JSON object"},
		{"bad JSON", `{"source": }`, "", "not valid JSON"},
		{"trailing data", `{"source":"a","recipe":"x","dest":"d"} {}`, "", "data after"},
		{"unknown top field", `{"source":"a","recipe":"x","dest":"d","colour":1}`, "colour", "unknown field"},
		{"unknown variant field", `{"source":"a","outputs":[{"key":"k","width":10},{"key":"j","widht":10}]}`, "outputs[1].widht", "unknown field"},
		{"unknown watermark field", `{"source":"a","outputs":[{"key":"k","width":10,"watermark":{"image":"w","size":2}}]}`, "outputs[0].watermark.size", "unknown field"},
		{"missing source", `{"recipe":"x","dest":"d"}`, "source", "required"},
		{"null source", `{"source":null,"recipe":"x","dest":"d"}`, "source", "null"},
		{"wrong type", `{"source":"a","outputs":[{"key":"k","width":"10"}]}`, "outputs[0].width", "whole number"},
		{"fraction width", `{"source":"a","outputs":[{"key":"k","width":10.5}]}`, "outputs[0].width", "whole number"},
		{"both outputs and recipe", `{"source":"a","recipe":"x","dest":"d","outputs":[{"key":"k","width":1}]}`, "recipe", "not both"},
		{"neither", `{"source":"a"}`, "outputs", "give outputs"},
		{"recipe without dest", `{"source":"a","recipe":"x"}`, "dest", "required"},
		{"dest without recipe", `{"source":"a","dest":"d","outputs":[{"key":"k","width":1}]}`, "dest", "only applies"},
		{"missing key", `{"source":"a","outputs":[{"width":10}]}`, "outputs[0].key", "required"},
		{"duplicate key", `{"source":"a","outputs":[{"key":"k","width":10},{"key":"k","width":20}]}`, "outputs[1].key", "earlier"},
		{"no size", `{"source":"a","outputs":[{"key":"k"}]}`, "outputs[0].width", "width, height"},
		{"negative width", `{"source":"a","outputs":[{"key":"k","width":-1}]}`, "outputs[0].width", "between"},
		{"explicit zero height", `{"source":"a","outputs":[{"key":"k","width":10,"height":0}]}`, "outputs[0].height", "between 1 and"},
		{"explicit zero quality", `{"source":"a","outputs":[{"key":"k","width":10,"quality":0}]}`, "outputs[0].quality", "between 1 and 100"},
		{"huge height", `{"source":"a","outputs":[{"key":"k","height":100000}]}`, "outputs[0].height", "between"},
		{"bad fit", `{"source":"a","outputs":[{"key":"k","width":1,"fit":"squash"}]}`, "outputs[0].fit", "one of"},
		{"cover needs both", `{"source":"a","outputs":[{"key":"k","width":1,"fit":"cover"}]}`, "outputs[0].fit", "both"},
		{"gravity without cover", `{"source":"a","outputs":[{"key":"k","width":1,"gravity":"attention"}]}`, "outputs[0].gravity", "cover"},
		{"bad gravity", `{"source":"a","outputs":[{"key":"k","width":1,"height":1,"fit":"cover","gravity":"up"}]}`, "outputs[0].gravity", "one of"},
		{"bad format", `{"source":"a","outputs":[{"key":"k","width":1,"format":"bmp"}]}`, "outputs[0].format", "one of"},
		{"quality too high", `{"source":"a","outputs":[{"key":"k","width":1,"quality":101}]}`, "outputs[0].quality", "between 1 and 100"},
		{"effort on jpeg", `{"source":"a","outputs":[{"key":"k","width":1,"format":"jpeg","effort":3}]}`, "outputs[0].effort", "jpeg"},
		{"webp effort range", `{"source":"a","outputs":[{"key":"k","width":1,"format":"webp","effort":7}]}`, "outputs[0].effort", "between 0 and 6"},
		{"progressive webp", `{"source":"a","outputs":[{"key":"k","width":1,"format":"webp","progressive":true}]}`, "outputs[0].progressive", "jpeg and png"},
		{"sharpen range", `{"source":"a","outputs":[{"key":"k","width":1,"sharpen":11}]}`, "outputs[0].sharpen", "sigma"},
		{"bad background", `{"source":"a","outputs":[{"key":"k","width":1,"background":"red"}]}`, "outputs[0].background", "colour"},
		{"watermark image", `{"source":"a","outputs":[{"key":"k","width":1,"watermark":{"image":""}}]}`, "outputs[0].watermark.image", "required"},
		{"watermark opacity", `{"source":"a","outputs":[{"key":"k","width":1,"watermark":{"image":"w","opacity":0}}]}`, "outputs[0].watermark.opacity", "above 0"},
		{"watermark position", `{"source":"a","outputs":[{"key":"k","width":1,"watermark":{"image":"w","position":"top"}}]}`, "outputs[0].watermark.position", "one of"},
		{"watermark scale", `{"source":"a","outputs":[{"key":"k","width":1,"watermark":{"image":"w","scale":2}}]}`, "outputs[0].watermark.scale", "fraction"},
		{"too many outputs", `{"source":"a","outputs":[` + strings.Repeat(`{"key":"k","width":1},`, 32) + `{"key":"z","width":1}]}`, "outputs", "at most 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest([]byte(tt.body))
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a *render.Error", err)
			}
			if !errors.Is(err, ErrInvalidRequest) || !re.Permanent() {
				t.Errorf("code %s permanent=%v, want invalid_request and permanent", re.Code, re.Permanent())
			}
			if re.Field != tt.field {
				t.Errorf("field %q, want %q (error: %v)", re.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
		})
	}
}

func TestParseRequestAcceptsTheDocumentedModel(t *testing.T) {
	body := `{
	  "source": "s3://uploads/a.jpg",
	  "outputs": [
	    {"key": "s3://b/a/thumb.jpg", "width": 200, "height": 200, "fit": "cover", "gravity": "attention",
	     "format": "jpeg", "quality": 82, "progressive": true, "strip": false, "sharpen": 0.5,
	     "background": "#102030"},
	    {"key": "s3://b/a/800.webp", "width": 800, "format": "webp", "effort": 2,
	     "watermark": {"image": "s3://b/logo.png", "position": "south-east", "opacity": 0.5, "scale": 0.2, "margin": 4}},
	    {"key": "s3://b/a/pad.png", "width": 300, "height": 100, "fit": "contain", "background": "#0000"},
	    {"key": "s3://b/a/h.avif", "height": 300, "format": "avif", "effort": 9, "enlarge": true}
	  ]
	}`
	r, err := ParseRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	v := r.Outputs[0]
	if v.Fit != FitCover || v.Gravity != GravityAttention || v.Quality != 82 || !v.Progressive || v.strip() || v.Sharpen != 0.5 {
		t.Errorf("variant 0 decoded as %+v", v)
	}
	if w := r.Outputs[1].Watermark; w == nil || w.Image != "s3://b/logo.png" || *w.Opacity != 0.5 || *w.Margin != 4 {
		t.Errorf("watermark decoded as %+v", w)
	}
	if !r.Outputs[3].Enlarge || *r.Outputs[3].Effort != 9 {
		t.Errorf("variant 3 decoded as %+v", r.Outputs[3])
	}
}

func TestRecipes(t *testing.T) {
	r := BuiltinRecipes()
	vs, err := r.Variants(&Request{Source: "a.jpg", Recipe: "gallery", Dest: "s3://b/renders/a/"})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, v := range vs {
		keys = append(keys, v.Key)
	}
	want := "s3://b/renders/a/64.webp s3://b/renders/a/200.webp s3://b/renders/a/800.webp s3://b/renders/a/1600.webp " +
		"s3://b/renders/a/64.jpg s3://b/renders/a/200.jpg s3://b/renders/a/800.jpg s3://b/renders/a/1600.jpg"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("gallery keys:\n got %s\nwant %s", got, want)
	}
	if _, err := r.Variants(&Request{Source: "a", Recipe: "nope", Dest: "d"}); !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "recipe") {
		t.Errorf("unknown recipe: %v", err)
	}

	for _, bad := range []struct{ yaml, want string }{
		{"recipes:\n  x:\n    - {name: a, width: 10, colour: red}\n", "colour"},
		{"recipes:\n  x:\n    - {width: 10}\n", "name: is required"},
		{"recipes:\n  x:\n    - {name: a, width: 10, format: jpeg}\n    - {name: a, width: 20, format: jpeg}\n", "used twice"},
		{"recipes:\n  x:\n    - {name: a, width: 10, quality: 0}\n    - {name: b, width: -5}\n", "recipes.x[1].width"},
	} {
		if _, err := ParseRecipes(strings.NewReader(bad.yaml)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseRecipes(%q) = %v, want an error mentioning %q", bad.yaml, err, bad.want)
		}
	}
}

// FuzzParseRequest: any bytes give a request that validates or an
// invalid_request error, never a panic or another kind of error.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"source":"a","outputs":[{"key":"k","width":10,"watermark":{"image":"w","opacity":0.5}}]}`))
	f.Add([]byte(`{"source":"a","recipe":"gallery","dest":"s3://b/"}`))
	f.Add([]byte(`{"source":"a","outputs":[{"key":"k","width":1e400}]}`))
	f.Add([]byte(`{"outputs":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRequest(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error of the wrong class: %v", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("parsed request does not validate: %v", err)
		}
	})
}
