package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fileFixture: a root with a file, an outside directory with a secret,
// and symlinks of every kind inside the root.
func fileFixture(t *testing.T) (s *Store, root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "in"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, content string) {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "in", "photo.jpg"), "photo")
	write(filepath.Join(outside, "secret"), "secret")
	links := map[string]string{
		"escape-file":     filepath.Join(outside, "secret"),
		"escape-dir":      outside,
		"escape-relative": "../outside/secret",
		"etc":             "/etc",
		"inside-relative": "in/photo.jpg",
		"inside-absolute": filepath.Join(root, "in", "photo.jpg"),
		"dangling-out":    filepath.Join(base, "nonexistent"),
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return newStore(t, Config{FileRoots: []string{root}}), root, outside
}

func fileLoc(p string) Location { return MustParseLocation("file://" + p) }

func TestFileGet(t *testing.T) {
	s, root, outside := fileFixture(t)
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		max  int64
		want string // content, or "" with err
		err  error
	}{
		{"plain", "in/photo.jpg", 100, "photo", nil},
		{"exact cap", "in/photo.jpg", 5, "photo", nil},
		{"over cap", "in/photo.jpg", 4, "", ErrTooLarge},
		{"missing", "in/nope.jpg", 100, "", ErrNotFound},
		{"missing dir", "nope/x.jpg", 100, "", ErrNotFound},
		{"directory", "in", 100, "", ErrNotFound},
		{"fifo does not block", "fifo", 100, "", ErrNotFound},
		{"file as dir", "in/photo.jpg/x", 100, "", ErrNotFound},
		{"symlink inside, relative", "inside-relative", 100, "photo", nil},
		{"symlink inside, absolute", "inside-absolute", 100, "photo", nil},
		{"symlink escaping to a file", "escape-file", 100, "", ErrForbidden},
		{"symlink escaping, relative", "escape-relative", 100, "", ErrForbidden},
		{"symlink escaping to a dir", "escape-dir/secret", 100, "", ErrForbidden},
		{"symlink to /etc", "etc/passwd", 1 << 20, "", ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			var got []byte
			var err error
			go func() {
				defer close(done)
				got, err = s.Get(context.Background(), fileLoc(filepath.Join(root, tt.path)), tt.max)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Get hangs")
			}
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Get = %q, %v; want %v", got, err, tt.err)
				}
				if got != nil {
					t.Fatal("the secret leaked")
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("Get = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	// Outside the roots entirely, and the lexical traversal forms.
	if _, err := s.Get(context.Background(), fileLoc(filepath.Join(outside, "secret")), 100); !errors.Is(err, ErrForbidden) {
		t.Errorf("Get outside the roots = %v, want ErrForbidden", err)
	}
	for _, raw := range []string{"file://" + root + "/../outside/secret", "file://" + root + "/in/%2e%2e/%2e%2e/outside/secret", "file://host" + root + "/in/photo.jpg", "file:in/photo.jpg"} {
		if _, err := ParseLocation(raw); !errors.Is(err, ErrInvalidLocation) {
			t.Errorf("ParseLocation(%q) = %v, want ErrInvalidLocation", raw, err)
		}
	}
}

// A symlink leading out of the root answers the same whether its target
// exists or not: the answers must not tell a requester which files the
// host has. Put replaces a link named as the output itself (TestFilePut),
// so writes are probed through directory links.
func TestFileNoExistenceOracle(t *testing.T) {
	s, root, outside := fileFixture(t)
	for name, target := range map[string]string{"to-missing": "/etc/no-such-file", "to-existing": "/etc/passwd",
		"dir-out": "/etc", "rel-missing": "../outside/no-such-file"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	ops := map[string]func(Location) error{
		"get":   func(l Location) error { _, err := s.Get(ctx, l, 100); return err },
		"check": func(l Location) error { return s.Check(l) },
		"put":   func(l Location) error { _, err := s.Put(ctx, l, []byte("x"), PutOptions{}); return err },
	}
	pairs := map[string][2]string{
		"get":   {"to-missing", "to-existing"},
		"check": {"dir-out/no-such-file", "dir-out/passwd"},
		"put":   {"dir-out/no-such-dir/x", "dir-out/apt/x"},
	}
	pairs2 := [][2]string{{"rel-missing", "escape-file"}, {"dangling-out", "escape-file"}, {"dir-out/no-such-file", "dir-out/passwd"}}
	for op, f := range ops {
		for _, pair := range append([][2]string{pairs[op]}, pairs2...) {
			if op == "put" && !strings.Contains(pair[0], "/") {
				continue
			}
			var msgs [2]string
			for i, p := range pair {
				loc := fileLoc(filepath.Join(root, p))
				err := f(loc)
				if op != "check" || strings.Contains(p, "/") {
					if !errors.Is(err, ErrForbidden) {
						t.Errorf("%s %s = %v, want ErrForbidden", op, p, err)
					}
				}
				if err != nil {
					msgs[i] = strings.Replace(err.Error(), loc.Raw, "LOC", 1)
					if strings.Contains(err.Error(), "/etc") || strings.Contains(err.Error(), outside) {
						t.Errorf("%s %s names the target: %v", op, p, err)
					}
				}
			}
			if msgs[0] != msgs[1] {
				t.Errorf("%s: %s answers %q, %s answers %q", op, pair[0], msgs[0], pair[1], msgs[1])
			}
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "no-such-file")); err == nil {
		t.Error("a write went through a symlink out of the root")
	}
}

// The journal, or any reserved prefix, is out of reach of requests even
// inside a file root, in every spelling: as written, through a symlink to
// it or to its parent, and its ancestors (a file there would stand where
// its folders must go).
func TestFileReservedPrefix(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	journal := filepath.Join(root, "_jobs")
	for _, d := range []string{filepath.Join(root, "in"), filepath.Join(journal, "2026", "12", "02")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(journal, "2026", "12", "02", "t1.json"), []byte(`{"task_id":"t1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"in/j": journal, "in/jrel": "../_jobs", "in/up": root, "in/nested": filepath.Join(journal, "2026")} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, spelling := range []string{journal + "/", journal + "//"} {
		t.Run(spelling, func(t *testing.T) {
			s, err := New(context.Background(), Config{FileRoots: []string{root}, Reserved: []string{"file://" + spelling}})
			if spelling == journal+"//" {
				if err == nil {
					t.Fatal("a reserved prefix with an empty segment was accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			refused := []string{
				"file://" + journal + "/2026/12/02/t1.json",
				"file://" + journal + "/2027",
				"file://" + journal,
				"file://" + root + "/_jobs/2026/12/02/t2.json",
				"file://localhost" + journal + "/2026/12/02/t1.json",
				"file://" + root + "/%5fjobs/2027",
				"file://" + root + "/in/j/2026/12/02/t1.json",
				"file://" + root + "/in/j/2027",
				"file://" + root + "/in/jrel/2027",
				"file://" + root + "/in/up/_jobs/2027",
				"file://" + root + "/in/nested/12/03/x.json",
			}
			for _, raw := range refused {
				loc, err := ParseLocation(raw)
				if err != nil {
					t.Fatalf("ParseLocation(%q): %v", raw, err)
				}
				if err := s.Check(loc); !errors.Is(err, ErrForbidden) {
					t.Errorf("Check(%s) = %v, want ErrForbidden", raw, err)
				}
				if _, err := s.Put(context.Background(), loc, []byte("x"), PutOptions{}); !errors.Is(err, ErrForbidden) {
					t.Errorf("Put(%s) = %v, want ErrForbidden", raw, err)
				}
				if _, err := s.Get(context.Background(), loc, 100); !errors.Is(err, ErrForbidden) {
					t.Errorf("Get(%s) = %v, want ErrForbidden", raw, err)
				}
			}
			for _, bad := range []string{"file://" + journal + "/../_jobs/x", "file://" + journal + "//2027"} {
				if _, err := ParseLocation(bad); err == nil {
					t.Errorf("ParseLocation(%q) accepted", bad)
				}
			}
			// The rest of the root still works, a sibling named like the
			// journal included.
			for _, raw := range []string{"file://" + root + "/in/out.jpg", "file://" + root + "/_jobs2/x.jpg", "file://" + root + "/in/up/in/y.jpg"} {
				if _, err := s.Put(context.Background(), MustParseLocation(raw), []byte("x"), PutOptions{}); err != nil {
					t.Errorf("Put(%s) = %v", raw, err)
				}
			}
			if _, err := os.Stat(filepath.Join(journal, "2027")); err == nil {
				t.Error("a request left a file where next year's folder goes")
			}
			if b, _ := os.ReadFile(filepath.Join(journal, "2026", "12", "02", "t1.json")); string(b) != `{"task_id":"t1"}` {
				t.Errorf("the manifest was overwritten: %q", b)
			}
			if s.Reaches(MustParsePrefix("file://"+journal+"/")) || s.Reaches(MustParsePrefix("file://"+root+"/in/j/")) {
				t.Error("Reaches says requests reach the journal")
			}
			if !s.Reaches(MustParsePrefix("file://" + root + "/in/")) {
				t.Error("Reaches misses an ordinary directory")
			}
			if s.Reaches(MustParsePrefix("file://" + base + "/elsewhere/")) {
				t.Error("Reaches claims a directory outside the roots")
			}
		})
	}
}

func TestFilePut(t *testing.T) {
	s, root, outside := fileFixture(t)
	ctx := context.Background()
	tests := []struct {
		name string
		path string
		err  error
	}{
		{"new file", "out/a/b/c.webp", nil},
		{"overwrite", "in/photo.jpg", nil},
		{"replace an inside symlink, not its target", "inside-absolute", nil},
		{"through a dir symlink escaping", "escape-dir/new.jpg", ErrForbidden},
		{"over a symlink escaping", "escape-file", nil}, // replaces the link itself; the target is untouched
		{"through /etc", "etc/renderfarm-test", ErrForbidden},
		{"through a dangling symlink", "dangling-out/x.jpg", ErrForbidden},
		{"onto a directory", "in", ErrInvalidArgument},
		{"below a file", "in/photo.jpg/x.jpg", ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte("new content for " + tt.name)
			res, err := s.Put(ctx, fileLoc(filepath.Join(root, tt.path)), data, PutOptions{ContentType: "image/webp"})
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Put = %+v, %v; want %v", res, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if res.Size != int64(len(data)) || res.SHA256 != sha256Hex(data) || res.ETag == "" {
				t.Errorf("PutResult = %+v", res)
			}
			p := filepath.Join(root, tt.path)
			fi, err := os.Lstat(p)
			if err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("%s is not a regular file after Put: %v %v", tt.path, fi, err)
			}
			if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
				t.Errorf("content = %q", got)
			}
		})
	}
	if got, _ := os.ReadFile(filepath.Join(outside, "secret")); string(got) != "secret" {
		t.Errorf("a file outside the root was changed: %q", got)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("files appeared outside the root: %v", entries)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "in", "photo.jpg")); !strings.HasPrefix(string(got), "new content for overwrite") {
		t.Errorf("the target of a replaced symlink changed: %q", got)
	}
	if _, err := os.Stat("/etc/renderfarm-test"); err == nil {
		t.Error("wrote into /etc")
	}
	assertNoTempFiles(t, root)
}

func assertNoTempFiles(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

// A reader racing the writer sees one whole version or the other, never a
// prefix or a mix: the rename is what makes a new version visible.
func TestFilePutAtomic(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, Config{FileRoots: []string{root}})
	loc := fileLoc(filepath.Join(root, "out", "race.jpg"))
	versions := [][]byte{bytes.Repeat([]byte{'a'}, 1<<20), bytes.Repeat([]byte{'b'}, 1<<20+7)}
	ctx := context.Background()
	if _, err := s.Put(ctx, loc, versions[0], PutOptions{}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, bad int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := os.ReadFile(loc.Path)
			reads++
			if err != nil || !(bytes.Equal(got, versions[0]) || bytes.Equal(got, versions[1])) {
				bad++
			}
		}
	}()
	for i := 0; i < 40; i++ {
		if _, err := s.Put(ctx, loc, versions[i%2], PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if bad > 0 {
		t.Fatalf("%d of %d concurrent reads saw a partial or missing file", bad, reads)
	}
	t.Logf("%d concurrent reads, all whole", reads)
	assertNoTempFiles(t, root)
}

// A failed write leaves the previous version in place and no temporary
// file: here the rename fails because the target became a directory.
func TestFilePutFailureCleansUp(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, Config{FileRoots: []string{root}})
	if err := os.MkdirAll(filepath.Join(root, "busy", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := s.Put(context.Background(), fileLoc(filepath.Join(root, "busy")), []byte("x"), PutOptions{})
	if err == nil {
		t.Fatal("Put over a non-empty directory succeeded")
	}
	assertNoTempFiles(t, root)
}

func TestFileRootThroughSymlink(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	os.Mkdir(real, 0o755)
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, Config{FileRoots: []string{link}})
	ctx := context.Background()
	// Both spellings of the root work.
	for _, p := range []string{filepath.Join(link, "a.jpg"), filepath.Join(real, "b.jpg")} {
		if _, err := s.Put(ctx, fileLoc(p), []byte("x"), PutOptions{}); err != nil {
			t.Errorf("Put %s: %v", p, err)
		}
		if got, err := s.Get(ctx, fileLoc(p), 10); err != nil || string(got) != "x" {
			t.Errorf("Get %s = %q, %v", p, got, err)
		}
	}
}

func TestFileDisabled(t *testing.T) {
	s := newStore(t, Config{})
	_, err := s.Get(context.Background(), fileLoc("/etc/hostname"), 100)
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "no file roots") {
		t.Fatalf("Get without roots = %v, want ErrForbidden", err)
	}
}
