package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/render"
	"github.com/renderfarm/renderfarm/storage"
	"github.com/urfave/cli/v2"
)

func renderCommand() *cli.Command {
	return &cli.Command{
		Name:      "render",
		Usage:     "render local images, with no broker and no S3",
		ArgsUsage: "SRC...",
		Description: `Renders each SRC with a recipe or with variants given as JSON, into --out:
   renderfarm render --recipe default --out out photo.jpg
   renderfarm render --variant '{"width":512,"height":512,"format":"webp"}' --out out *.jpg
Output files are named SRCNAME_VARIANT.EXT. With --request, one whole request
in the task's JSON model is rendered instead; its source and keys are local
paths or file:// locations:
   renderfarm render --request job.json`,
		Flags: append(engineFlags(),
			&cli.StringFlag{Name: "recipe", Usage: "render each SRC with this recipe"},
			&cli.StringSliceFlag{Name: "variant", Usage: "one variant as JSON; repeat for more"},
			&cli.StringFlag{Name: "request", Usage: "render one request read from FILE, or - for stdin"},
			&cli.StringFlag{Name: "out", Value: "out", Usage: "directory for outputs of SRC renders"},
			&cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "deadline for each source"},
			&cli.BoolFlag{Name: "json", Usage: "print results as JSON"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		),
		Action: runRender,
	}
}

// renderItem is one source to render and where its outputs go.
type renderItem struct {
	source   string
	variants []render.Variant
	// path gives an output's file path once its format is known.
	path func(key string, f render.Format) string
}

// fileResult is one source's outcome, as the summary and --json report it.
type fileResult struct {
	Source  string         `json:"source"`
	Error   string         `json:"error,omitempty"`
	Code    string         `json:"code,omitempty"`
	Result  *render.Result `json:"result,omitempty"`
	Outputs []fileOutput   `json:"outputs,omitempty"`
}

type fileOutput struct {
	Path   string  `json:"path"`
	Format string  `json:"format"`
	Width  int     `json:"width"`
	Height int     `json:"height"`
	Bytes  int     `json:"bytes"`
	Millis float64 `json:"ms"`
}

func runRender(c *cli.Context) error {
	t, err := tuning(c)
	if err != nil {
		return err
	}
	recipes, err := render.LoadRecipes(c.String("recipes"))
	if err != nil {
		return err
	}
	items, err := renderItems(c, recipes)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	engine, err := render.New(t.Config)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(c.Context)
	defer stop()

	results := make([]fileResult, len(items))
	progress := newProgress(len(items), !c.Bool("quiet") && !c.Bool("json"), c.App.ErrWriter)
	// One goroutine per slot: the engine would queue extra renders anyway,
	// but each would hold its source in memory while it waited.
	next := make(chan int)
	var wg sync.WaitGroup
	for range t.Slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = renderOne(ctx, engine, items[i], c.Duration("timeout"))
				progress.done()
			}
		}()
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
	progress.finish()

	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"files": results}); err != nil {
			return err
		}
	} else {
		printSummary(c.App.Writer, results)
	}
	var failed []fileResult
	for _, r := range results {
		if r.Error != "" {
			failed = append(failed, r)
		}
	}
	if len(failed) > 0 {
		return cli.Exit(fmt.Sprintf("%d of %d sources failed; first: %s: %s", len(failed), len(results), failed[0].Source, failed[0].Error), 1)
	}
	return nil
}

func renderItems(c *cli.Context, recipes render.Recipes) ([]renderItem, error) {
	modes := 0
	for _, set := range []bool{c.String("recipe") != "", len(c.StringSlice("variant")) > 0, c.String("request") != ""} {
		if set {
			modes++
		}
	}
	if modes != 1 {
		return nil, errors.New("give exactly one of --recipe, --variant or --request")
	}
	if c.String("request") != "" {
		if c.Args().Len() > 0 {
			return nil, errors.New("--request takes its source from the request, not from arguments")
		}
		return requestItem(c.String("request"), recipes)
	}
	if c.Args().Len() == 0 {
		return nil, errors.New("name at least one source image")
	}
	var variants []render.Variant
	if name := c.String("recipe"); name != "" {
		vs, err := recipes.Expand(name, func(rv render.RecipeVariant) string { return rv.Name })
		if err != nil {
			return nil, err
		}
		variants = vs
	}
	for i, s := range c.StringSlice("variant") {
		v, err := render.ParseVariant([]byte(s), fmt.Sprintf("--variant[%d]", i))
		if err == nil {
			err = v.Validate(fmt.Sprintf("--variant[%d]", i))
		}
		if err != nil {
			return nil, err
		}
		if v.Key == "" {
			v.Key = v.Name()
		}
		variants = append(variants, *v)
	}
	outDir := c.String("out")
	items := make([]renderItem, c.Args().Len())
	names := outputBases(c.Args().Slice())
	for i, src := range c.Args().Slice() {
		base := names[i]
		items[i] = renderItem{source: src, variants: variants, path: func(key string, f render.Format) string {
			name := base + "_" + key
			if filepath.Ext(key) == "" {
				name += "." + f.Ext()
			}
			return filepath.Join(outDir, name)
		}}
	}
	return items, nil
}

// outputBases names each source's outputs after its file name without the
// extension, keeping the extension where two sources would collide
// (photo.jpg and photo.png become photo-jpg and photo-png).
func outputBases(srcs []string) []string {
	stem := func(p string) string { return strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)) }
	files := map[string]map[string]bool{}
	for _, s := range srcs {
		if files[stem(s)] == nil {
			files[stem(s)] = map[string]bool{}
		}
		files[stem(s)][filepath.Base(s)] = true
	}
	bases := make([]string, len(srcs))
	for i, s := range srcs {
		bases[i] = stem(s)
		if len(files[stem(s)]) > 1 {
			bases[i] += "-" + strings.TrimPrefix(filepath.Ext(s), ".")
		}
	}
	return bases
}

func requestItem(name string, recipes render.Recipes) ([]renderItem, error) {
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, err
	}
	req, err := render.ParseRequest(data)
	if err != nil {
		return nil, err
	}
	variants, err := recipes.Variants(req)
	if err != nil {
		return nil, err
	}
	src, err := localPath(req.Source, "source")
	if err != nil {
		return nil, err
	}
	for i := range variants {
		if _, err := localPath(variants[i].Key, fmt.Sprintf("outputs[%d].key", i)); err != nil {
			return nil, err
		}
	}
	return []renderItem{{source: src, variants: variants, path: func(key string, _ render.Format) string {
		p, _ := localPath(key, "key")
		return p
	}}}, nil
}

// localPath accepts a plain path or a file:// URL; the CLI has no remote
// storage.
func localPath(loc, field string) (string, error) {
	if !strings.Contains(loc, "://") {
		return loc, nil
	}
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "file" || (u.Host != "" && u.Host != "localhost") {
		return "", fmt.Errorf("%s: %q: the render command only reads and writes local files (a path or file:///...)", field, loc)
	}
	return u.Path, nil
}

func renderOne(ctx context.Context, e *render.Engine, it renderItem, timeout time.Duration) fileResult {
	fr := fileResult{Source: it.source}
	fail := func(err error) fileResult {
		fr.Error = err.Error()
		var re *render.Error
		if errors.As(err, &re) {
			fr.Code = string(re.Code)
		}
		return fr
	}
	src, err := os.ReadFile(it.source)
	if err != nil {
		return fail(err)
	}
	marks, err := readWatermarks(it.variants)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := e.Render(ctx, render.Job{Source: src, Variants: it.variants, Watermarks: marks})
	fr.Result = res
	if err != nil {
		return fail(err)
	}
	for _, o := range res.Outputs {
		p := it.path(o.Key, o.Format)
		if err := storage.WriteFile(p, o.Data); err != nil {
			return fail(err)
		}
		fr.Outputs = append(fr.Outputs, fileOutput{Path: p, Format: string(o.Format), Width: o.Width, Height: o.Height, Bytes: len(o.Data), Millis: o.Millis})
	}
	return fr
}

func readWatermarks(vs []render.Variant) (map[string][]byte, error) {
	marks := map[string][]byte{}
	for _, v := range vs {
		if v.Watermark == nil || marks[v.Watermark.Image] != nil {
			continue
		}
		p, err := localPath(v.Watermark.Image, "watermark.image")
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("watermark: %w", err)
		}
		marks[v.Watermark.Image] = b
	}
	return marks, nil
}

func printSummary(w io.Writer, results []fileResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tVARIANT\tSIZE\tBYTES\tMS")
	var outputs, bytes int
	var failed []fileResult
	for _, r := range results {
		if r.Error != "" {
			failed = append(failed, r)
			continue
		}
		for _, o := range r.Outputs {
			outputs++
			bytes += o.Bytes
			fmt.Fprintf(tw, "%s\t%s\t%dx%d\t%d\t%.1f\n", r.Source, o.Path, o.Width, o.Height, o.Bytes, o.Millis)
		}
	}
	tw.Flush()
	for _, r := range failed {
		fmt.Fprintf(w, "FAILED %s: %s (%s)\n", r.Source, r.Error, r.Code)
	}
	fmt.Fprintf(w, "%d sources, %d outputs (%d bytes), %d failed\n", len(results), outputs, bytes, len(failed))
}
