package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/renderfarm/renderfarm/job"
	"github.com/renderfarm/renderfarm/render"
	"github.com/renderfarm/renderfarm/storage"
	"github.com/urfave/cli/v2"
)

func enqueueCommand() *cli.Command {
	return &cli.Command{
		Name:      "enqueue",
		Usage:     "send render requests to the workers: one from flags or JSON, or a batch of sources",
		ArgsUsage: "[SOURCE|DIR|-]...",
		UsageText: `renderfarm enqueue --source s3://uploads/u/1234.jpg --recipe gallery --dest s3://renders/1234/
renderfarm enqueue --source photo.jpg --variant '{"key":"out/thumb.webp","width":200,"format":"webp"}' --wait
renderfarm enqueue --file req.json            # one request, or several one after another
echo '{"source":"s3://up/a.jpg","recipe":"default","dest":"s3://r/a/"}' | renderfarm enqueue -
renderfarm enqueue --recipe gallery --dest s3://renders/ --wait s3://uploads/2026/12/ extra.jpg`,
		Description: `Every request is checked as the workers check it (the recipe, every location
against the storage flags' guards) before anything is published; a refused one
publishes nothing and exits 2 with the field and the reason.

A batch is sources or directories (a local directory, s3://bucket/prefix/ or
file:///dir/; the image files directly in it) rendered with --recipe, each
under --dest plus its file name without the extension: photo.jpg's outputs go
to DEST/photo/. A batch draws a progress bar on a terminal and prints a line
per task otherwise.

Local paths become file:// locations: the workers must be on this host, with
--file-root covering them. --wait follows each task's manifest in the journal
until it succeeded or failed for good, and exits 4 if some failed, 1 if all did.`,
		Flags: append(append(append(append(storageFlags(), queueFlags()...),
			&cli.StringFlag{Name: "source", EnvVars: []string{"RENDERFARM_SOURCE"}, Usage: "the image to render: s3://, file://, https:// or a local path"},
			&cli.StringFlag{Name: "recipe", EnvVars: []string{"RENDERFARM_RECIPE"}, Usage: "render with this recipe, under --dest"},
			&cli.StringFlag{Name: "dest", EnvVars: []string{"RENDERFARM_DEST"}, Usage: "the key prefix for a recipe's outputs (a batch's: plus each source's name)"},
			&cli.StringSliceFlag{Name: "variant", EnvVars: []string{"RENDERFARM_VARIANTS"}, Usage: "one output as JSON, with its key (the task contract's outputs[]); repeat for more"},
			&cli.StringFlag{Name: "cache-control", EnvVars: []string{"RENDERFARM_CACHE_CONTROL"}, Usage: "Cache-Control of every output"},
			&cli.StringFlag{Name: "content-disposition", EnvVars: []string{"RENDERFARM_CONTENT_DISPOSITION"}, Usage: "Content-Disposition of every output"},
			&cli.StringSliceFlag{Name: "metadata", EnvVars: []string{"RENDERFARM_METADATA"}, Usage: "KEY=VALUE user metadata of every output; repeat for more"},
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, EnvVars: []string{"RENDERFARM_REQUEST_FILE"}, Usage: "read requests as JSON from FILE (- for stdin): one object, or several in a row"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, EnvVars: []string{"RENDERFARM_QUIET"}, Usage: "no progress bar or progress lines"},
			recipesFlag(),
			brokerFlag(),
			queueFlag(),
			logLevelFlag(),
			outputFlag(),
		), waitFlags()...), journalDaysFlag()),
		Action: runEnqueue,
	}
}

// journalDaysFlag is how far a lookup by task id searches the journal.
func journalDaysFlag() cli.Flag {
	return &cli.IntFlag{Name: "days", EnvVars: []string{"RENDERFARM_JOURNAL_DAYS"}, Value: 7,
		Usage: "days of manifests a lookup by task id searches: from a UUIDv7's send time on, else back from today"}
}

// enqueueItem is one request and what came of it, as the table and
// --output json report it.
type enqueueItem struct {
	Item   string       `json:"item"` // the source, or FILE#N for requests read as JSON
	ID     string       `json:"id,omitempty"`
	Status string       `json:"status"` // enqueued, not_sent, succeeded, failed, unfinished
	Error  string       `json:"error,omitempty"`
	Result *job.Result  `json:"result,omitempty"`
	req    *job.Request `json:"-"`
}

func runEnqueue(c *cli.Context) error {
	asJSON, err := outputJSON(c)
	if err != nil {
		return err
	}
	if err := checkBroker(c); err != nil {
		return err
	}
	store, journal, err := openJournal(c, c.Int("days"))
	if err != nil {
		return err
	}
	recipes, err := render.LoadRecipes(c.String("recipes"))
	if err != nil {
		return usageError("--recipes: %v", err)
	}
	items, err := enqueueItems(c, store)
	if err != nil {
		return err
	}
	// Every request is checked before the first is sent, so a batch with a
	// bad one sends nothing and can simply be run again once fixed.
	for _, it := range items {
		if err := job.Validate(it.req, store, recipes); err != nil {
			return usageError("%s: %v", it.Item, err)
		}
	}
	ctx, stop := signalContext(c.Context)
	defer stop()
	p, err := dialPublisher(c, "renderfarm enqueue")
	if err != nil {
		return err
	}
	defer p.Close()

	batch := len(items) > 1
	progress := newProgress(len(items), batch && !c.Bool("quiet") && !asJSON, c.App.ErrWriter)
	var ids []string
	byID := map[string]*enqueueItem{}
	for i := range items {
		it := &items[i]
		if it.ID, err = p.enqueue(ctx, "", it.req); err != nil {
			// Interrupted, the rest fail at once the same way and are
			// reported as not sent.
			it.Status, it.Error = "not_sent", err.Error()
		} else {
			it.Status = "enqueued"
			ids = append(ids, it.ID)
			byID[it.ID] = it
		}
		progress.step(fmt.Sprintf("%s\t%s\t%s", it.Status, it.Item, it.ID))
	}
	progress.finish()

	if c.Bool("wait") && len(ids) > 0 {
		progress = newProgress(len(ids), batch && !c.Bool("quiet") && !asJSON, c.App.ErrWriter)
		_, err := waitResults(ctx, journal, ids, nil, c.Duration("wait-timeout"), func(m *job.Manifest) {
			it := byID[m.TaskID]
			it.Status, it.Result = "succeeded", m.Result
			if m.Status != job.StatusSuccess {
				it.Status = "failed"
				it.Error = manifestError(m)
			}
			progress.step(fmt.Sprintf("%s\t%s\t%s", it.Status, it.Item, it.ID))
		})
		progress.finish()
		if err != nil {
			return err
		}
		for _, id := range ids {
			if it := byID[id]; it.Status == "enqueued" {
				it.Status, it.Error = "unfinished", fmt.Sprintf("no final manifest within %v", c.Duration("wait-timeout"))
			}
		}
	}

	failed := 0
	for _, it := range items {
		if it.Status != "enqueued" && it.Status != "succeeded" {
			failed++
		}
	}
	err = printOutput(c, map[string]any{"items": items}, func(w io.Writer) {
		fmt.Fprintln(w, "ITEM\tID\tSTATUS\tERROR")
		for _, it := range items {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", it.Item, it.ID, it.Status, it.Error)
		}
	})
	if err != nil {
		return err
	}
	return itemsExit(len(items), failed, 0)
}

// enqueueItems builds the requests from JSON (--file, or - for stdin),
// from the request flags (--source), or as a batch of sources; exactly one
// of the three. Errors are usage errors.
func enqueueItems(c *cli.Context, store *storage.Store) ([]enqueueItem, error) {
	args := c.Args().Slice()
	file := c.String("file")
	if len(args) == 1 && args[0] == "-" && file == "" {
		file, args = "-", nil
	}
	flagged := c.String("source") != "" || c.String("recipe") != "" || c.String("dest") != "" || len(c.StringSlice("variant")) > 0 ||
		c.String("cache-control") != "" || c.String("content-disposition") != "" || len(c.StringSlice("metadata")) > 0
	switch {
	case file != "":
		if flagged || len(args) > 0 {
			return nil, usageError("requests come as JSON (--file, -) or from flags and sources, not both")
		}
		return jsonItems(c, file)
	case c.String("source") != "":
		if len(args) > 0 {
			return nil, usageError("--source names the one source; a batch names its sources as arguments, without --source")
		}
		req, err := flagRequest(c, c.String("source"), asDirLocation(c.String("dest")))
		if err != nil {
			return nil, err
		}
		return []enqueueItem{{Item: req.Source, req: req}}, nil
	case len(args) > 0:
		return batchItems(c, store, args)
	}
	return nil, usageError("give a request: --source with --recipe and --dest or with --variant, --file FILE, - for stdin, or sources for a batch")
}

// jsonItems reads one or more requests in the task contract's JSON.
func jsonItems(c *cli.Context, file string) ([]enqueueItem, error) {
	var data []byte
	var err error
	name := file
	if file == "-" {
		name = "stdin"
		in := c.App.Reader
		if in == nil {
			in = os.Stdin
		}
		data, err = io.ReadAll(in)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, usageError("%v", err)
	}
	var items []enqueueItem
	dec := json.NewDecoder(bytes.NewReader(data))
	for n := 1; ; n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, usageError("%s#%d: not JSON: %v", name, n, err)
		}
		req, err := job.ParseRequest(raw)
		if err != nil {
			return nil, usageError("%s#%d: %v", name, n, err)
		}
		items = append(items, enqueueItem{Item: fmt.Sprintf("%s#%d", name, n), req: req})
	}
	if len(items) == 0 {
		return nil, usageError("%s: no request", name)
	}
	return items, nil
}

// flagRequest is the request the flags describe, for one source.
func flagRequest(c *cli.Context, source, dest string) (*job.Request, error) {
	req := &job.Request{CacheControl: c.String("cache-control"), ContentDisposition: c.String("content-disposition")}
	req.Source, req.Recipe, req.Dest = asLocation(source), c.String("recipe"), dest
	for i, s := range c.StringSlice("variant") {
		field := fmt.Sprintf("--variant[%d]", i)
		v, err := render.ParseVariant([]byte(s), field)
		if err == nil {
			err = v.Validate(field)
		}
		if err != nil {
			return nil, usageError("%v", err)
		}
		v.Key = asLocation(v.Key)
		if v.Watermark != nil {
			v.Watermark.Image = asLocation(v.Watermark.Image)
		}
		req.Outputs = append(req.Outputs, *v)
	}
	for _, kv := range c.StringSlice("metadata") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError("--metadata: want KEY=VALUE, not %q", kv)
		}
		if req.Metadata == nil {
			req.Metadata = map[string]string{}
		}
		req.Metadata[k] = v
	}
	if err := req.Request.Validate(); err != nil {
		return nil, usageError("%v", err)
	}
	return req, nil
}

// imageExts are the files a batch takes from a directory: what the workers
// decode, by name, so a README or a .DS_Store beside the photos is left out.
var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".webp": true, ".gif": true,
	".tif": true, ".tiff": true, ".heic": true, ".heif": true, ".avif": true}

// batchItems is one request per source, each with the recipe under its
// own folder of --dest.
func batchItems(c *cli.Context, store *storage.Store, args []string) ([]enqueueItem, error) {
	if c.String("recipe") == "" || c.String("dest") == "" || len(c.StringSlice("variant")) > 0 {
		return nil, usageError("a batch takes --recipe and --dest (each source's outputs go to DEST/NAME/), not --variant")
	}
	var sources []string
	for _, arg := range args {
		loc := asLocation(arg)
		if fi, err := os.Stat(arg); !hasScheme(arg) && err == nil && fi.IsDir() || strings.HasSuffix(arg, "/") {
			found, err := listImages(c, store, asDirLocation(arg))
			if err != nil {
				return nil, err
			}
			sources = append(sources, found...)
			continue
		}
		sources = append(sources, loc)
	}
	if len(sources) == 0 {
		return nil, usageError("no images in %s", strings.Join(args, ", "))
	}
	dest := asDirLocation(c.String("dest"))
	items := make([]enqueueItem, len(sources))
	for i, base := range outputBases(sources) {
		req, err := flagRequest(c, sources[i], dest+base+"/")
		if err != nil {
			return nil, err
		}
		items[i] = enqueueItem{Item: sources[i], req: req}
	}
	return items, nil
}

func listImages(c *cli.Context, store *storage.Store, dir string) ([]string, error) {
	loc, err := storage.ParseDirLocation(dir)
	if err != nil {
		return nil, usageError("%s: %v", dir, err)
	}
	objs, truncated, err := store.List(c.Context, loc, 0)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	if truncated {
		return nil, usageError("%s: more than %d objects; enqueue it in parts", dir, len(objs))
	}
	var out []string
	for _, o := range objs {
		if s := o.Location.String(); imageExts[strings.ToLower(path.Ext(s))] {
			out = append(out, s)
		}
	}
	return out, nil
}

// asLocation turns a local path into a file:// location; locations pass
// as they are.
func asLocation(s string) string {
	if s == "" || hasScheme(s) {
		return s
	}
	return (&url.URL{Scheme: "file", Path: absPath(s)}).String()
}

// asDirLocation is asLocation for a prefix, which ends with '/'.
func asDirLocation(s string) string {
	l := asLocation(s)
	if l != "" && !strings.HasSuffix(l, "/") {
		l += "/"
	}
	return l
}
