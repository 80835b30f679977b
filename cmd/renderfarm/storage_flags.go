package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/renderfarm/renderfarm/storage"
	"github.com/urfave/cli/v2"
)

// storageFlags are where jobs may read and write and where manifests go.
// The worker and the web tier take the same ones: the web tier validates
// requests against the same guards the workers apply.
func storageFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "file-root", EnvVars: []string{"RENDERFARM_FILE_ROOT"}, Usage: "colon-separated directories file:// sources and outputs must be in (default: none, file:// refused)"},
		&cli.StringFlag{Name: "journal", EnvVars: []string{"RENDERFARM_JOURNAL"}, Value: "file:///var/lib/renderfarm/jobs/", Usage: "location prefix for job manifests, e.g. s3://bucket/_renderfarm/jobs/"},
		&cli.StringFlag{Name: "buckets", EnvVars: []string{"RENDERFARM_BUCKETS"}, Usage: "comma-separated S3 buckets jobs may use (default: any)"},
		&cli.BoolFlag{Name: "s3-path-style", EnvVars: []string{"RENDERFARM_S3_PATH_STYLE"}, Usage: "path-style S3 URLs, for S3-compatible servers"},
		&cli.StringFlag{Name: "http-allow", EnvVars: []string{"RENDERFARM_HTTP_ALLOW"}, Usage: "comma-separated hosts or CIDRs exempt from the SSRF guard for https:// sources"},
	}
}

// openStores builds the jobs' store and the journal's. The journal gets a
// store of its own, rooted at the journal when it is local, so requests
// cannot write into it through --file-root. Both count their failures in m.
func openStores(c *cli.Context, log *slog.Logger, m *storage.Metrics) (store, journal *storage.Store, err error) {
	scfg := storage.Config{S3PathStyle: c.Bool("s3-path-style"), Logger: log, Metrics: m}
	scfg.FileRoots = splitPaths(c.String("file-root"))
	scfg.AllowedBuckets = splitList(c.String("buckets"))
	scfg.HTTPAllow = splitList(c.String("http-allow"))
	if store, err = storage.New(c.Context, scfg); err != nil {
		return nil, nil, err
	}
	// --buckets limits what requests name; the journal is the operator's
	// own setting and may live in a bucket no request should touch.
	jcfg := scfg
	jcfg.FileRoots, jcfg.AllowedBuckets = nil, nil
	if loc, err := storage.ParseLocation(c.String("journal") + "x"); err == nil && loc.Scheme == storage.SchemeFile {
		dir := filepath.Dir(loc.Path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, fmt.Errorf("--journal: %w", err)
		}
		jcfg.FileRoots = []string{dir}
	}
	if journal, err = storage.New(c.Context, jcfg); err != nil {
		return nil, nil, err
	}
	return store, journal, nil
}
