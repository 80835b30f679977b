package render

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"gopkg.in/yaml.v3"
)

// Recipes are named variant sets, so a caller can ask for "gallery" under a
// dest prefix instead of spelling out every size.
type Recipes map[string][]RecipeVariant

// RecipeVariant is a variant with a name; its output key is dest + name +
// "." + the format's extension (no extension for format auto).
type RecipeVariant struct {
	Name    string `yaml:"name"`
	Variant `yaml:",inline"`
}

//go:embed recipes.yaml
var builtinRecipes []byte

// BuiltinRecipes returns the recipes compiled into the binary; they need no
// configuration, which is what lets `make demo` run on a fresh machine.
func BuiltinRecipes() Recipes {
	r, err := ParseRecipes(bytes.NewReader(builtinRecipes))
	if err != nil {
		panic("render: built-in recipes.yaml is invalid: " + err.Error())
	}
	return r
}

// LoadRecipes reads a recipe file and lays it over the built-in recipes: a
// recipe of the same name replaces the built-in one whole.
func LoadRecipes(path string) (Recipes, error) {
	r := BuiltinRecipes()
	if path == "" {
		return r, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("recipes: %w", err)
	}
	defer f.Close()
	extra, err := ParseRecipes(f)
	if err != nil {
		return nil, fmt.Errorf("recipes %s: %w", path, err)
	}
	for name, vs := range extra {
		r[name] = vs
	}
	return r, nil
}

// ParseRecipes reads the YAML form:
//
//	recipes:
//	  gallery:
//	    - {name: "800", width: 800, format: webp, quality: 80}
//
// Unknown keys are errors, as in requests.
func ParseRecipes(rd io.Reader) (Recipes, error) {
	var doc struct {
		Recipes Recipes `yaml:"recipes"`
	}
	dec := yaml.NewDecoder(rd)
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	for name, vs := range doc.Recipes {
		if len(vs) == 0 || len(vs) > MaxVariants {
			return nil, fmt.Errorf("recipe %q must have between 1 and %d variants", name, MaxVariants)
		}
		seen := map[string]bool{}
		for i := range vs {
			path := fmt.Sprintf("recipes.%s[%d]", name, i)
			if vs[i].Name == "" {
				return nil, fmt.Errorf("%s.name: is required", path)
			}
			// Two variants may share a name when their formats differ: the
			// extension keeps their keys apart ("800.webp", "800.jpg").
			if file := vs[i].FileName(); seen[file] {
				return nil, fmt.Errorf("%s.name: %q with format %s is used twice", path, vs[i].Name, vs[i].format())
			} else {
				seen[file] = true
			}
			if err := vs[i].Validate(path); err != nil {
				return nil, err
			}
		}
	}
	return doc.Recipes, nil
}

// Names lists the recipes in order.
func (r Recipes) Names() []string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Variants returns the request's outputs: its own, or its recipe's with keys
// made from dest. An unknown recipe is an error naming the field.
func (r Recipes) Variants(req *Request) ([]Variant, error) {
	if req.Recipe == "" {
		return req.Outputs, nil
	}
	return r.Expand(req.Recipe, func(rv RecipeVariant) string { return req.Dest + rv.FileName() })
}

// Expand returns a recipe's variants with keys made by key.
func (r Recipes) Expand(name string, key func(RecipeVariant) string) ([]Variant, error) {
	rvs, ok := r[name]
	if !ok {
		return nil, fieldError("recipe", "unknown recipe %q (known: %v)", name, r.Names())
	}
	out := make([]Variant, len(rvs))
	for i, rv := range rvs {
		out[i] = rv.Variant
		out[i].Key = key(rv)
	}
	return out, nil
}

// FileName is the variant's name with its format's extension.
func (rv RecipeVariant) FileName() string {
	if f := rv.format(); f != FormatAuto {
		return rv.Name + "." + f.Ext()
	}
	return rv.Name
}
