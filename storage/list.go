package storage

import (
	"context"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// DefaultListLimit is the number of objects List returns when called with
// limit <= 0, so no caller lists a runaway prefix whole by accident.
const DefaultListLimit = 10000

// s3ListPage is S3's own maximum of keys per ListObjectsV2 response.
const s3ListPage = 1000

// Object is one entry of a listing. Location is what ParseLocation returns
// for the object's address, so it goes to Get or PresignGet as it is.
type Object struct {
	Location Location
	Size     int64
	Modified time.Time
}

// ParseDirLocation parses a directory location, s3://bucket/prefix/ or
// file:///abs/dir/, for List. ParseLocation refuses the trailing '/'
// (an empty segment names no object); here it is required, so that a
// directory is never mistaken for an object of the same name. The part
// before it gets every check of ParseLocation. http(s) addresses parse
// as ParseLocation parses them (List refuses them).
func ParseDirLocation(s string) (Location, error) {
	if l := strings.ToLower(s); strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") {
		return ParseLocation(s)
	}
	p, err := ParsePrefix(s)
	switch {
	case err != nil:
		return Location{}, err
	case p.Scheme == SchemeS3 && p.Key == "":
		return Location{}, errorf(CodeInvalidLocation, s, "missing key: want s3://bucket/prefix/")
	case p.Scheme == SchemeS3:
		return Location{Scheme: SchemeS3, Bucket: p.Bucket, Key: p.Key + "/", Raw: s}, nil
	}
	return Location{Scheme: SchemeFile, Path: p.Path + "/", Raw: s}, nil
}

// List returns the objects directly under dir (not below its
// subdirectories or sub-prefixes), at most limit of them (limit <= 0:
// DefaultListLimit), with truncated set when more exist. dir's Key or
// Path ends with '/' (ParseDirLocation builds such a Location); without
// it dir would name an object, and S3 would also match "dir-x/" keys.
//
// Objects come sorted by key in byte order on both backends, S3's own
// order, so a truncated listing is the first limit names, not the newest:
// callers that want recent entries sort by Modified themselves and make
// the limit cover the directory.
//
// The guards are Get's: dir without its trailing '/' must pass Check (so
// a bucket's top level and a file root itself cannot be listed), and a
// missing bucket is ErrNotFound; http(s) is ErrInvalidArgument, there
// being no listing of a web server. A missing prefix or directory is
// simply empty, as S3 cannot tell it apart from an empty one.
//
// Entries no Location can address (S3 "folder" markers ending in '/',
// keys with empty or dot segments or control characters) are left out,
// as are, on file://, anything but regular files (symlinks are not
// followed, so a listing never describes a file outside the roots) and
// the temporary files Put leaves after a crash.
func (s *Store) List(ctx context.Context, dir Location, limit int) (objs []Object, truncated bool, err error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	base, err := s.checkDir(dir)
	if err != nil {
		return nil, false, err
	}
	start := time.Now()
	c := &collector{limit: limit}
	if dir.Scheme == SchemeS3 {
		err = s.s3.list(ctx, base, c, s3ListPage)
	} else {
		err = s.listFile(ctx, base, c)
	}
	s.log.DebugContext(ctx, "storage list", "location", dir.String(), "objects", len(c.objs), "truncated", c.truncated,
		"skipped", c.skipped, "duration", time.Since(start), "err", err)
	if err != nil {
		return nil, false, err
	}
	return c.objs, c.truncated, nil
}

// checkDir returns dir without its trailing '/', once Check accepts it:
// that is the form Check knows (every segment non-empty), and the same
// bucket, key and file root rules then hold for listings as for objects.
func (s *Store) checkDir(dir Location) (Location, error) {
	base := dir
	var ok bool
	switch dir.Scheme {
	case SchemeS3:
		base.Key, ok = strings.CutSuffix(dir.Key, "/")
	case SchemeFile:
		base.Path, ok = strings.CutSuffix(dir.Path, "/")
	case SchemeHTTP, SchemeHTTPS:
		return Location{}, errorf(CodeInvalidArgument, dir.Raw, "%s locations cannot be listed", dir.Scheme)
	default:
		return Location{}, s.Check(dir) // refuses the unknown scheme
	}
	if !ok {
		return Location{}, errorf(CodeInvalidLocation, dir.Raw, "a directory location ends with '/'")
	}
	if err := s.Check(base); err != nil {
		return Location{}, err
	}
	return base, nil
}

// collector gathers a listing for both backends alike: the first limit
// addressable objects, and whether another one followed.
type collector struct {
	limit     int
	objs      []Object
	truncated bool
	skipped   int
}

// room reports whether one more object fits. It is asked only when one
// more exists, so a false answer marks the listing truncated.
func (c *collector) room() bool {
	if len(c.objs) < c.limit {
		return true
	}
	c.truncated = true
	return false
}

// add appends the object at raw, or counts it skipped when ParseLocation
// refuses the address: an Object whose Location Get would refuse is of no
// use to anyone.
func (c *collector) add(raw string, size int64, modified time.Time) {
	loc, err := ParseLocation(raw)
	if err != nil {
		c.skipped++
		return
	}
	c.objs = append(c.objs, Object{Location: loc, Size: size, Modified: modified})
}

// list pages through ListObjectsV2 with Delimiter "/", so sub-prefixes
// come back as CommonPrefixes (ignored) instead of their whole contents.
// Each page asks for what the listing still needs plus one, to tell
// whether more exist, up to page keys; but at least a tenth of page,
// since sub-prefixes count against MaxKeys too and a run of them after
// the last wanted object must not cost a request each.
func (b *s3Backend) list(ctx context.Context, base Location, c *collector, page int) error {
	prefix := base.Key + "/"
	in := &s3.ListObjectsV2Input{
		Bucket:    aws.String(base.Bucket),
		Prefix:    aws.String(prefix),
		Delimiter: aws.String("/"),
	}
	for {
		in.MaxKeys = aws.Int32(int32(min(page, max(c.limit-len(c.objs)+1, page/10))))
		out, err := b.client.ListObjectsV2(ctx, in)
		if err != nil {
			return s3Error(base.Raw, err)
		}
		for _, o := range out.Contents {
			key := aws.ToString(o.Key)
			if key == prefix {
				continue // the prefix's own "folder" marker
			}
			if !c.room() {
				return nil
			}
			c.add("s3://"+base.Bucket+"/"+key, aws.ToInt64(o.Size), aws.ToTime(o.LastModified))
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextContinuationToken) == "" {
			return nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

// listDirBatch is how many directory entries are read between checks of
// the context.
const listDirBatch = 1024

// listFile reads the directory through os.Root, like getFile, so a
// symlink swapped in after the check cannot take the listing outside the
// root. Directory order is arbitrary: every regular file's name is read
// and sorted before the first limit are kept, for the order S3 gives.
func (s *Store) listFile(ctx context.Context, base Location, c *collector) error {
	t, err := s.resolveFile(base, true)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(t.root)
	if err != nil {
		return fileError(base.Raw, err)
	}
	defer root.Close()
	// O_DIRECTORY: a file (or FIFO) where the directory should be fails
	// with ENOTDIR instead of being opened, or blocking.
	d, err := root.OpenFile(t.rel, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fileError(base.Raw, err)
	}
	defer d.Close()

	var names []string
	for {
		if err := ctx.Err(); err != nil {
			return newError(CodeUnavailable, base.Raw, "cancelled", err)
		}
		entries, err := d.ReadDir(listDirBatch)
		for _, e := range entries {
			if e.Type().IsRegular() && !isPutTemp(e.Name()) {
				names = append(names, e.Name())
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fileError(base.Raw, err)
		}
	}
	slices.Sort(names)

	for i, name := range names {
		if !c.room() {
			return nil
		}
		if i%listDirBatch == 0 {
			if err := ctx.Err(); err != nil {
				return newError(CodeUnavailable, base.Raw, "cancelled", err)
			}
		}
		fi, err := root.Lstat(filepath.Join(t.rel, name))
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since it was read
		}
		if err != nil {
			return fileError(base.Raw, err)
		}
		if !fi.Mode().IsRegular() {
			continue // replaced since it was read
		}
		p := (&url.URL{Scheme: SchemeFile, Path: filepath.Join(base.Path, name)}).String()
		c.add(p, fi.Size(), fi.ModTime())
	}
	return nil
}

// isPutTemp recognises the temporary files of putFile, named
// "." + name + ".tmp-" + 16 hex digits: a crash between create and rename
// leaves one behind, and it is no output.
func isPutTemp(name string) bool {
	const tag = ".tmp-"
	i := strings.LastIndex(name, tag)
	if !strings.HasPrefix(name, ".") || i < 2 || len(name)-i-len(tag) != 16 {
		return false
	}
	for _, r := range name[i+len(tag):] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}
