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
