package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/renderfarm/renderfarm/internal/testenv"
)

func TestParseDirLocation(t *testing.T) {
	tests := []struct {
		in         string
		bucket     string
		key, path  string
		wantScheme string
		err        error
	}{
		{in: "s3://renders/_renderfarm/jobs/2026/11/22/", wantScheme: SchemeS3, bucket: "renders", key: "_renderfarm/jobs/2026/11/22/"},
		{in: "file:///var/lib/renderfarm/jobs/", wantScheme: SchemeFile, path: "/var/lib/renderfarm/jobs/"},
		{in: "file:///var/lib/a%20b/", wantScheme: SchemeFile, path: "/var/lib/a b/"},
		{in: "https://img.example.com/dir/", wantScheme: SchemeHTTPS},
		{in: "s3://renders/jobs", err: ErrInvalidLocation},    // no '/': an object
		{in: "s3://renders/", err: ErrInvalidLocation},        // the bucket's top level
		{in: "s3://renders/jobs//", err: ErrInvalidLocation},  // empty segment
		{in: "s3://renders/../x/", err: ErrInvalidLocation},   // dot segment
		{in: "file:///", err: ErrInvalidLocation},             // no path
		{in: "file:///a/%2e%2e/b/", err: ErrInvalidLocation},  // encoded ".."
		{in: "ftp://host/dir/", err: ErrInvalidLocation},      // scheme
		{in: "s3://Bad_Bucket/dir/", err: ErrInvalidLocation}, // bucket name
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			loc, err := ParseDirLocation(tt.in)
			if tt.err != nil {
				var se *Error
				if !errors.Is(err, tt.err) || !errors.As(err, &se) || se.Location != tt.in {
					t.Fatalf("ParseDirLocation = %+v, %v; want %v naming the input", loc, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDirLocation: %v", err)
			}
			if loc.Scheme != tt.wantScheme || loc.Bucket != tt.bucket || loc.Key != tt.key || loc.Path != tt.path || loc.Raw != tt.in {
				t.Errorf("ParseDirLocation = %+v", loc)
			}
		})
	}
}

// listCase is one List call and what it must return: the names under the
// directory in order, or an error.
type listCase struct {
	name      string
	dir       string
	limit     int
	want      []string
	truncated bool
	err       error
}

// checkList runs tc against s and checks the objects against what was
// put (sizes, a recent Modified, a Location Get reads the bytes back from).
func checkList(t *testing.T, s *Store, tc listCase, put map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	dir, err := ParseDirLocation(tc.dir)
	if err != nil {
		t.Fatalf("ParseDirLocation: %v", err)
	}
	objs, truncated, err := s.List(ctx, dir, tc.limit)
	if tc.err != nil {
		if !errors.Is(err, tc.err) || objs != nil {
			t.Fatalf("List = %d objects, %v; want %v", len(objs), err, tc.err)
		}
		return
	}
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, strings.TrimPrefix(o.Location.String(), tc.dir))
	}
	if !slices.Equal(names, tc.want) || truncated != tc.truncated {
		t.Fatalf("List = %q truncated=%v; want %q truncated=%v", names, truncated, tc.want, tc.truncated)
	}
	for _, o := range objs {
		if reparsed := MustParseLocation(o.Location.String()); !reflect.DeepEqual(reparsed, o.Location) {
			t.Errorf("Location %+v is not what ParseLocation returns: %+v", o.Location, reparsed)
		}
		data, ok := put[o.Location.String()]
		if !ok {
			t.Errorf("listed %s, which was not put", o.Location)
			continue
		}
		if o.Size != int64(len(data)) {
			t.Errorf("%s: Size %d, want %d", o.Location, o.Size, len(data))
		}
		if age := time.Since(o.Modified); age < -time.Minute || age > time.Minute {
			t.Errorf("%s: Modified %v is not about now", o.Location, o.Modified)
		}
		if got, err := s.Get(ctx, o.Location, 1<<20); err != nil || !bytes.Equal(got, data) {
			t.Errorf("Get %s: %d bytes, %v", o.Location, len(got), err)
		}
	}
}

// putAll puts each location's bytes, each a different size so sizes are
// checked for real; it returns them by canonical location.
func putAll(t *testing.T, s *Store, raws ...string) map[string][]byte {
	t.Helper()
	put := map[string][]byte{}
	for i, raw := range raws {
		loc := MustParseLocation(raw)
		data := bytes.Repeat([]byte{'x'}, 10+i)
		if _, err := s.Put(context.Background(), loc, data, PutOptions{}); err != nil {
			t.Fatalf("Put %s: %v", raw, err)
		}
		put[loc.String()] = data
	}
	return put
}

// eachS3 runs f against a fresh versitygw over plain HTTP and over HTTPS,
// in parallel, each with the test bucket made and a Store for it.
func eachS3(t *testing.T, f func(t *testing.T, srv testenv.S3Server, s *Store)) {
	for _, useTLS := range []bool{false, true} {
		t.Run("tls="+strconv.FormatBool(useTLS), func(t *testing.T) {
			t.Parallel()
			srv := testenv.S3(t, useTLS)
			srv.CreateBucket(t, testBucket)
			f(t, srv, s3Store(t, srv, nil))
		})
	}
}

func TestListS3(t *testing.T) {
	eachS3(t, func(t *testing.T, srv testenv.S3Server, s *Store) {
		const day = "s3://renders/_renderfarm/jobs/2026/11/22/"
		// Put out of order; the neighbours share the prefix as a string
		// but not as a directory, or sit below it.
		put := putAll(t, s,
			day+"c.webp", day+"a.json", day+"b b.json",
			day+"sub/d.json", day+"zz/e.json",
			"s3://renders/_renderfarm/jobs/2026/11/22x.json",
			"s3://renders/_renderfarm/jobs/2026/11/23/f.json",
		)
		// An S3 console "folder": a key ending in '/', which no
		// Location addresses.
		if _, err := srv.Client(t).PutObject(context.Background(), &s3.PutObjectInput{
			Bucket: aws.String(testBucket), Key: aws.String("_renderfarm/jobs/2026/11/22/marker/"), Body: bytes.NewReader(nil),
		}); err != nil {
			t.Logf("no folder marker (the server refused it): %v", err)
		}
		all := []string{"a.json", "b b.json", "c.webp"}
		for _, lc := range []listCase{
			{name: "all", dir: day, want: all},
			{name: "limit exact, sub-prefixes after", dir: day, limit: 3, want: all},
			{name: "truncated", dir: day, limit: 2, want: all[:2], truncated: true},
			{name: "limit 1", dir: day, limit: 1, want: all[:1], truncated: true},
			{name: "sub-prefix", dir: day + "sub/", want: []string{"d.json"}},
			{name: "missing prefix", dir: "s3://renders/_renderfarm/jobs/1999/", want: nil},
			{name: "prefix of an object", dir: day + "a.json/", want: nil},
			{name: "missing bucket", dir: "s3://no-such-bucket/jobs/", err: ErrNotFound},
			{name: "bucket not allowed", dir: "s3://other-bucket/jobs/", err: ErrForbidden},
		} {
			t.Run(lc.name, func(t *testing.T) { checkList(t, s, lc, put) })
		}

		// Pages of 2 keys (sub-prefixes count): the listing goes on
		// across pages and still stops at the limit.
		t.Run("pages", func(t *testing.T) {
			for _, p := range []struct {
				limit     int
				want      []string
				truncated bool
			}{{10, all, false}, {3, all, false}, {2, all[:2], true}} {
				base := MustParseLocation(strings.TrimSuffix(day, "/"))
				c := &collector{limit: p.limit}
				if err := s.s3.list(context.Background(), base, c, 2); err != nil {
					t.Fatalf("list: %v", err)
				}
				var names []string
				for _, o := range c.objs {
					names = append(names, strings.TrimPrefix(o.Location.String(), day))
				}
				if !slices.Equal(names, p.want) || c.truncated != p.truncated {
					t.Errorf("limit %d: %q truncated=%v; want %q truncated=%v", p.limit, names, c.truncated, p.want, p.truncated)
				}
			}
		})
	})
}

func TestListFile(t *testing.T) {
	s, root, outside := fileFixture(t)
	day := "file://" + root + "/jobs/2026/11/22/"
	put := putAll(t, s,
		day+"c.webp", day+"a.json", day+"b%20b.json", day+".keep",
		day+"sub/d.json", "file://"+root+"/jobs/2026/11/22x.json",
	)
	dayDir := filepath.Join(root, "jobs", "2026", "11", "22")
	// What a crash in Put leaves, and what Put never makes: none listed.
	for name, target := range map[string]string{
		"link-inside":  filepath.Join(dayDir, "a.json"),
		"link-outside": filepath.Join(outside, "secret"),
	} {
		if err := os.Symlink(target, filepath.Join(dayDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dayDir, ".a.json.tmp-0123456789abcdef"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dayDir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	all := []string{".keep", "a.json", "b%20b.json", "c.webp"}
	for _, lc := range []listCase{
		{name: "all", dir: day, want: all},
		{name: "limit exact", dir: day, limit: 4, want: all},
		{name: "truncated", dir: day, limit: 3, want: all[:3], truncated: true},
		{name: "subdirectory", dir: day + "sub/", want: []string{"d.json"}},
		{name: "missing directory", dir: "file://" + root + "/jobs/1999/", want: nil},
		{name: "a file, not a directory", dir: day + "a.json/", want: nil},
		{name: "a fifo, not a directory", dir: day + "fifo/", want: nil},
		{name: "outside the roots", dir: "file://" + outside + "/", err: ErrForbidden},
		{name: "the root itself", dir: "file://" + root + "/", err: ErrForbidden},
		{name: "through a symlink leaving the root", dir: "file://" + root + "/escape-dir/", err: ErrForbidden},
		{name: "through a symlink to /etc", dir: "file://" + root + "/etc/", err: ErrForbidden},
	} {
		t.Run(lc.name, func(t *testing.T) { checkList(t, s, lc, put) })
	}
}

// Locations whose form List refuses, before any I/O.
func TestListRefuses(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, Config{FileRoots: []string{root}, AllowedBuckets: []string{"renders"}, AllowHTTP: true})
	none := newStore(t, Config{})
	tests := []struct {
		name  string
		store *Store
		dir   Location
		want  error
	}{
		{"https", s, MustParseLocation("https://img.example.com/dir/"), ErrInvalidArgument},
		{"http", s, MustParseLocation("http://img.example.com/dir/"), ErrInvalidArgument},
		{"an object, not a directory", s, MustParseLocation("s3://renders/jobs/a.json"), ErrInvalidLocation},
		{"a file, not a directory", s, MustParseLocation("file://" + root + "/a.json"), ErrInvalidLocation},
		{"hand-built traversal", s, Location{Scheme: SchemeFile, Path: root + "/../etc/"}, ErrInvalidLocation},
		{"hand-built empty segment", s, Location{Scheme: SchemeS3, Bucket: "renders", Key: "a//"}, ErrInvalidLocation},
		{"hand-built bucket top level", s, Location{Scheme: SchemeS3, Bucket: "renders", Key: "/"}, ErrInvalidLocation},
		{"unknown scheme", s, Location{Scheme: "ftp", Raw: "ftp://host/dir/"}, ErrInvalidLocation},
		{"bucket not allowed", s, Location{Scheme: SchemeS3, Bucket: "secrets", Key: "jobs/"}, ErrForbidden},
		{"file roots disabled", none, Location{Scheme: SchemeFile, Path: "/var/lib/"}, ErrForbidden},
		{"outside the roots", s, Location{Scheme: SchemeFile, Path: "/etc/"}, ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, truncated, err := tt.store.List(context.Background(), tt.dir, 0)
			if !errors.Is(err, tt.want) || objs != nil || truncated {
				t.Fatalf("List = %v, %v, %v; want %v", objs, truncated, err, tt.want)
			}
		})
	}
}

func TestListFileCancelled(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, Config{FileRoots: []string{root}})
	putAll(t, s, "file://"+root+"/jobs/a.json")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := MustParseLocation("file://" + root + "/jobs")
	dir.Path += "/"
	if _, _, err := s.List(ctx, dir, 0); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("List with a cancelled context = %v, want ErrUnavailable wrapping context.Canceled", err)
	}
}

func TestIsPutTemp(t *testing.T) {
	for name, want := range map[string]bool{
		".a.json.tmp-0123456789abcdef":   true,
		".x.tmp-ffffffffffffffff":        true,
		"a.json.tmp-0123456789abcdef":    false, // not hidden: not Put's
		".a.json.tmp-0123456789abcde":    false, // 15 digits
		".a.json.tmp-0123456789ABCDEF":   false, // Put writes lower case
		".tmp-0123456789abcdef":          false, // no name before
		".keep":                          false,
		".a.json.tmp-0123456789abcdefgh": false,
	} {
		if got := isPutTemp(name); got != want {
			t.Errorf("isPutTemp(%q) = %v, want %v", name, got, want)
		}
	}
}
