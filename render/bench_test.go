package render

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkRender times the engine on one source at a time, for profiling
// a pipeline change; tools/bench/bench.sh is the side-by-side comparison.
// Set RENDERFARM_BENCH_DIR to a folder of photos (make bench fetches some
// into .cache/bench); testdata/photo.jpg is used otherwise.
func BenchmarkRender(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join(os.Getenv("RENDERFARM_BENCH_DIR"), "*.jpg"))
	if len(files) == 0 {
		files = []string{filepath.Join("..", "testdata", "photo.jpg")}
	}
	single := []Variant{{Key: "a", Width: 512, Height: 512, Format: FormatJPEG, Quality: 80}}
	var recipe []Variant
	for _, s := range []int{1600, 800, 200, 64} {
		recipe = append(recipe, Variant{Key: fmt.Sprint(s), Width: s, Height: s, Format: FormatJPEG, Quality: 80})
	}
	e := testEngine(b)
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		for name, vs := range map[string][]Variant{"a-512": single, "b-recipe": recipe} {
			b.Run(filepath.Base(f)+"/"+name, func(b *testing.B) {
				for range b.N {
					if _, err := e.Render(context.Background(), Job{Source: src, Variants: vs}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
