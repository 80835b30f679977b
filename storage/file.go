package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The file backend confines every access three times: a lexical check
// (checkFile, no I/O); then the path with symlinks resolved must still be
// inside a root and clear of the reserved prefixes (confine); and the
// actual open/mkdir/rename go through os.Root, which refuses any symlink
// leaving the root at the moment of use. The resolution gives a clear
// error and allows absolute symlinks that stay inside; os.Root closes the
// race between resolving and using.
//
// Every way out of the roots gets the same answer, msgOutside, with no
// cause attached, whether or not the target exists: otherwise a symlink
// left under a root would let requests probe the host's file system
// ("no such file" for one path, "forbidden" for another).

const msgOutside = "outside the file roots"

func (s *Store) checkFile(loc Location) error {
	if len(s.roots) == 0 {
		return errorf(CodeForbidden, loc.Raw, "file locations are disabled: no file roots configured")
	}
	for _, r := range s.roots {
		if rel, ok := within(r.given, loc.Path); ok && rel != "." {
			return s.checkReserved(loc, "")
		}
		if rel, ok := within(r.resolved, loc.Path); ok && rel != "." {
			return s.checkReserved(loc, "")
		}
	}
	return errorf(CodeForbidden, loc.Raw, msgOutside)
}

// within returns p relative to base if p is base or below it. Both are
// clean absolute paths, so a ".." first element is the only way out.
func within(base, p string) (string, bool) {
	rel, err := filepath.Rel(base, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return rel, true
}

// confine checks where loc really leads (resolved, from resolvePath): it
// must be below a resolved root and clear of the reserved prefixes. It
// returns that root and the path relative to it, for os.Root.
func (s *Store) confine(loc Location, resolved string) (root, rel string, err error) {
	if err := s.checkReserved(loc, resolved); err != nil {
		return "", "", err
	}
	for _, r := range s.roots {
		if rel, ok := within(r.resolved, resolved); ok && rel != "." {
			return r.resolved, rel, nil
		}
	}
	return "", "", errorf(CodeForbidden, loc.Raw, msgOutside)
}

// fileTarget is where a file:// location leads: the resolved root it
// lies under and its path relative to that root, for os.Root.
type fileTarget struct{ root, rel string }

// resolveFile applies every file guard to loc, walking its path once, and
// returns where a write (read false) or a read reaches it. A write
// resolves only the parent directory: the final rename replaces whatever
// is at the name (a symlink included) instead of writing through it. A
// read follows the name too, and must stay inside the roots both ways.
// Either way the name as resolved must be clear of the journal, so a link
// to a manifest cannot be named at all.
func (s *Store) resolveFile(loc Location, read bool) (fileTarget, error) {
	if !filepath.IsAbs(loc.Path) || filepath.Clean(loc.Path) != loc.Path || checkChars(loc.Path) != "" {
		return fileTarget{}, errorf(CodeInvalidLocation, loc.Raw, "file path must be absolute and clean")
	}
	if err := s.checkFile(loc); err != nil {
		return fileTarget{}, err
	}
	dir, err := resolvePath(filepath.Dir(loc.Path))
	if err != nil {
		return fileTarget{}, fileError(loc.Raw, err)
	}
	named := filepath.Join(dir, filepath.Base(loc.Path))
	full := named
	// Only a symlink at the name needs more than the parent's walk.
	if fi, err := os.Lstat(named); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if full, err = resolvePath(named); err != nil {
			if read {
				return fileTarget{}, fileError(loc.Raw, err)
			}
			full = named // a write replaces the broken link
		}
	}
	if err := s.checkReserved(loc, full); err != nil {
		return fileTarget{}, err
	}
	root, rel, err := s.confine(loc, named)
	if err == nil && read {
		root, rel, err = s.confine(loc, full)
	}
	return fileTarget{root, rel}, err
}

// maxSymlinks is Linux's own limit on links followed in one lookup.
const maxSymlinks = 40

// resolvePath returns where the clean absolute path p leads: symlinks
// followed as the kernel follows them, dangling ones included, and the
// part from the first missing component on taken as written. Unlike
// filepath.EvalSymlinks it answers for paths that do not exist, so a
// missing target and an existing one are judged alike. Errors are ELOOP
// and what lstat says other than "not there".
func resolvePath(p string) (string, error) {
	done := string(filepath.Separator)
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	links := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			done = filepath.Dir(done)
			continue
		}
		next := filepath.Join(done, name)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return filepath.Join(append([]string{next}, rest...)...), nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = next
			continue
		}
		if links++; links > maxSymlinks {
			return "", syscall.ELOOP
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			done = string(filepath.Separator)
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return done, nil
}

func (s *Store) getFile(loc Location, t fileTarget, maxBytes int64) ([]byte, error) {
	root, err := os.OpenRoot(t.root)
	if err != nil {
		return nil, fileError(loc.Raw, err)
	}
	defer root.Close()
	// O_NONBLOCK: opening a FIFO someone left under a root must not hang
	// the worker; regular files ignore the flag.
	f, err := root.OpenFile(t.rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fileError(loc.Raw, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileError(loc.Raw, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, errorf(CodeNotFound, loc.Raw, "not a regular file")
	}
	if fi.Size() > maxBytes {
		return nil, errorf(CodeTooLarge, loc.Raw, "%d bytes, over the cap of %d", fi.Size(), maxBytes)
	}
	data, err := readCapped(f, fi.Size(), maxBytes)
	switch {
	case errors.Is(err, errOverCap):
		return nil, errorf(CodeTooLarge, loc.Raw, "over the cap of %d bytes (the file grew while read)", maxBytes)
	case err != nil:
		return nil, fileError(loc.Raw, err)
	}
	return data, nil
}

// putFile writes atomically: a temporary file in the target directory,
// fsync, rename over the target, fsync of the directory. Readers see the
// old content or the new one, never a prefix; after a crash the target is
// whole or absent, and at worst a dot-prefixed temporary file remains.
func (s *Store) putFile(ctx context.Context, loc Location, t fileTarget, data []byte) (PutResult, error) {
	if err := ctx.Err(); err != nil {
		return PutResult{}, newError(CodeUnavailable, loc.Raw, "cancelled", err)
	}
	root, err := os.OpenRoot(t.root)
	if err != nil {
		return PutResult{}, fileError(loc.Raw, err)
	}
	defer root.Close()
	if err := writeAtomic(root, t.rel, data); err != nil {
		var dirErr *dirInTheWay
		if errors.As(err, &dirErr) {
			return PutResult{}, newError(CodeInvalidArgument, loc.Raw, "a file is in the way of the directory", dirErr.err)
		}
		return PutResult{}, fileError(loc.Raw, err)
	}
	sum := sha256Hex(data)
	return PutResult{ETag: `"` + sum + `"`, Size: int64(len(data)), SHA256: sum}, nil
}

// WriteFile writes data to path atomically and durably, as Put does for
// file:// outputs, for commands that write local files outside any store
// (renderfarm render --out).
func WriteFile(path string, data []byte) error {
	dir, name := filepath.Split(filepath.Clean(path))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return writeAtomic(root, name, data)
}

// dirInTheWay is MkdirAll failing because a file stands where a directory
// must go.
type dirInTheWay struct{ err error }

func (e *dirInTheWay) Error() string {
	return "a file is in the way of the directory: " + e.err.Error()
}
func (e *dirInTheWay) Unwrap() error { return e.err }

// writeAtomic writes rel under root: a temporary file in the target
// directory, fsync, rename over the target, fsync of the directory.
// Readers see the old content or the new one, never a prefix; after a
// crash the target is whole or absent, and at worst a dot-prefixed
// temporary file remains.
func writeAtomic(root *os.Root, rel string, data []byte) error {
	dir := filepath.Dir(rel)
	if dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST) {
				return &dirInTheWay{err}
			}
			return err
		}
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, "."+filepath.Base(rel)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			_ = root.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := root.Rename(tmp, rel); err != nil {
		return err
	}
	committed = true
	return syncDir(root, dir)
}

// syncDir makes the rename itself durable. Filesystems that cannot fsync
// a directory say EINVAL; there is nothing more to do on those.
func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}

func fileError(loc string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return newError(CodeNotFound, loc, "no such file", err)
	case errors.Is(err, fs.ErrPermission):
		return newError(CodeForbidden, loc, "permission denied", err)
	case errors.Is(err, syscall.ELOOP), isRootEscape(err):
		// No cause attached: it would name the symlink's target.
		return errorf(CodeForbidden, loc, msgOutside)
	case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.EEXIST), errors.Is(err, syscall.ENOTEMPTY):
		return newError(CodeInvalidArgument, loc, "a directory is in the way", err)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return newError(CodeInvalidLocation, loc, "name too long", err)
	}
	// ENOSPC, EIO, EMFILE...: the disk or the process, not the request.
	return newError(CodeUnavailable, loc, "file system error", err)
}

// isRootEscape recognises os.Root's refusal, which has no exported
// sentinel (os.errPathEscapes) as of Go 1.26.
func isRootEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}
