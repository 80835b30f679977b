package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"
)

// PutOptions are the object headers of an output. The file backend has
// nowhere to keep them and ignores them (after the same validation, so a
// request that works on file:// works on s3:// too).
type PutOptions struct {
	ContentType        string // "" = guessed from the key's extension
	CacheControl       string
	ContentDisposition string
	// Metadata is user metadata (x-amz-meta-*): keys are HTTP tokens,
	// values UTF-8 (non-ASCII values are stored RFC 2047-encoded, as S3
	// itself returns them); at most 2 KiB in all, S3's limit.
	Metadata map[string]string
}

// PutResult describes what was stored.
type PutResult struct {
	ETag   string // as the backend reports it, quotes included
	Size   int64
	SHA256 string // hex of the bytes written
	Parts  int    // S3 multipart uploads: the number of parts; 0 otherwise
}

// Store reads sources and writes outputs by location scheme. It is safe
// for concurrent use; build one per process.
type Store struct {
	cfg      Config
	roots    []fileRoot
	reserved []reservedPrefix
	allow    allowList
	log      *slog.Logger
	s3       *s3Backend
	http     *http.Client
}

// New validates cfg and builds the backends. It reads local configuration
// (file roots, AWS shared config files) but contacts nothing: credentials
// are resolved on the first S3 request.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg, roots, reserved, allow, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, roots: roots, reserved: reserved, allow: allow, log: cfg.Logger}
	if s.s3, err = newS3Backend(ctx, cfg); err != nil {
		return nil, err
	}
	s.http = s.newHTTPClient()
	return s, nil
}

// Check applies every guard that needs no network: a known scheme with
// valid fields (Locations built by hand are re-validated), the reserved
// prefixes, file roots (as written, then with the parent's symlinks
// resolved: a few lstat calls; Get resolves the name too), the
// bucket allow-list, and for URLs the scheme, port and literal addresses
// (host names are resolved and checked when fetched). The web tier
// validates requests with it; Get and Put call it first.
func (s *Store) Check(loc Location) error {
	switch loc.Scheme {
	case SchemeS3:
		if msg := checkBucket(loc.Bucket); msg != "" {
			return errorf(CodeInvalidLocation, loc.Raw, "bucket: %s", msg)
		}
		if msg := checkKey(loc.Key); msg != "" {
			return errorf(CodeInvalidLocation, loc.Raw, "key: %s", msg)
		}
		if msg := checkChars(loc.Key); msg != "" {
			return errorf(CodeInvalidLocation, loc.Raw, "key %s", msg)
		}
		if err := s.checkReserved(loc, ""); err != nil {
			return err
		}
		return s.checkBucketAllowed(loc)
	case SchemeFile:
		_, err := s.resolveFile(loc, false)
		return err
	case SchemeHTTP, SchemeHTTPS:
		if loc.URL == nil || loc.URL.Scheme != loc.Scheme {
			return errorf(CodeInvalidLocation, loc.Raw, "missing or inconsistent URL")
		}
		return s.checkHTTP(loc.Raw, loc.URL)
	}
	return errorf(CodeInvalidLocation, loc.Raw, "unsupported scheme %q", truncate(loc.Scheme, 32))
}

// CheckRead is Check for a location about to be read: a file's name is
// resolved too, since a read follows a symlink where a write replaces it.
// The web tier checks sources and watermarks with it, so it refuses what
// the worker's Get would.
func (s *Store) CheckRead(loc Location) error {
	_, err := s.check(loc, true)
	return err
}

// check is Check, or for a file the guards of a read or a write, returning
// where the file leads so that Get and Put walk its path only once.
func (s *Store) check(loc Location, read bool) (fileTarget, error) {
	if loc.Scheme == SchemeFile {
		return s.resolveFile(loc, read)
	}
	return fileTarget{}, s.Check(loc)
}

// checkReserved refuses loc if it overlaps a reserved prefix, as written
// or (for files) as resolved. The message names the rule, not the path:
// the operator knows where the journal is, a requester needs only "no".
func (s *Store) checkReserved(loc Location, resolved string) error {
	for _, r := range s.reserved {
		hit := r.Overlaps(loc)
		if !hit && r.Scheme == SchemeFile {
			hit = overlapsPath(r.resolved, loc.Path) || (resolved != "" && overlapsPath(r.resolved, resolved))
		}
		if hit {
			return errorf(CodeForbidden, loc.Raw, "reserved for the job journal")
		}
	}
	return nil
}

// Reaches says whether some location under p could be read or written
// through this store: p is not reserved, and lies in an allowed bucket or
// overlaps a file root. A job runner checks that requests cannot reach
// its journal.
func (s *Store) Reaches(p Prefix) bool {
	var resolved string
	if p.Scheme == SchemeFile {
		var err error
		if resolved, err = resolvePath(p.Path); err != nil {
			resolved = p.Path
		}
	}
	for _, r := range s.reserved {
		if r.Scheme != p.Scheme {
			continue
		}
		switch p.Scheme {
		case SchemeS3:
			if r.Bucket == p.Bucket && (r.Key == "" || p.Key == r.Key || strings.HasPrefix(p.Key, r.Key+"/")) {
				return false
			}
		case SchemeFile:
			if _, ok := within(r.resolved, resolved); ok {
				return false
			}
		}
	}
	switch p.Scheme {
	case SchemeS3:
		return s.checkBucketAllowed(Location{Scheme: SchemeS3, Bucket: p.Bucket}) == nil
	case SchemeFile:
		for _, r := range s.roots {
			if overlapsPath(r.resolved, resolved) || overlapsPath(r.given, p.Path) {
				return true
			}
		}
	}
	return false
}

func (s *Store) checkBucketAllowed(loc Location) error {
	if len(s.cfg.AllowedBuckets) == 0 {
		return nil
	}
	for _, b := range s.cfg.AllowedBuckets {
		if b == loc.Bucket {
			return nil
		}
	}
	return errorf(CodeForbidden, loc.Raw, "bucket %q is not in the allowed buckets", loc.Bucket)
}

// Get reads the whole object at loc, refusing with ErrTooLarge as soon as
// it is known to exceed maxBytes (from its declared size, or after
// maxBytes+1 bytes) without reading the rest. maxBytes <= 0 means
// DefaultMaxBytes.
func (s *Store) Get(ctx context.Context, loc Location, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	t, err := s.check(loc, true)
	if err != nil {
		return nil, s.cfg.Metrics.failed("get", loc, err)
	}
	start := time.Now()
	var data []byte
	switch loc.Scheme {
	case SchemeS3:
		data, err = s.s3.get(ctx, loc, maxBytes)
	case SchemeFile:
		data, err = s.getFile(loc, t, maxBytes)
	default:
		data, err = s.getHTTP(ctx, loc, maxBytes)
	}
	s.log.DebugContext(ctx, "storage get", "location", loc.String(), "bytes", len(data), "duration", time.Since(start), "err", err)
	return data, s.cfg.Metrics.failed("get", loc, err)
}

// Put stores data at loc (s3:// or file://; http(s) is read-only).
// Writing the same bytes to the same location again is harmless, which is
// what makes task retries idempotent.
func (s *Store) Put(ctx context.Context, loc Location, data []byte, opts PutOptions) (PutResult, error) {
	t, err := s.check(loc, false)
	if err != nil {
		return PutResult{}, s.cfg.Metrics.failed("put", loc, err)
	}
	if err := CheckPutOptions(loc, opts); err != nil {
		return PutResult{}, s.cfg.Metrics.failed("put", loc, err)
	}
	start := time.Now()
	var res PutResult
	switch loc.Scheme {
	case SchemeS3:
		res, err = s.s3.put(ctx, loc, data, opts)
	case SchemeFile:
		res, err = s.putFile(ctx, loc, t, data)
	default:
		return PutResult{}, s.cfg.Metrics.failed("put", loc, errorf(CodeInvalidArgument, loc.Raw, "%s locations are read-only", loc.Scheme))
	}
	s.log.DebugContext(ctx, "storage put", "location", loc.String(), "bytes", len(data), "parts", res.Parts, "duration", time.Since(start), "err", err)
	return res, s.cfg.Metrics.failed("put", loc, err)
}

var errOverCap = errors.New("over the byte cap")

// readCapped reads r to the end unless it holds more than maxBytes, in
// which case it stops after maxBytes+1 and returns errOverCap. sizeHint
// (the declared size, -1 if unknown) only presizes the buffer.
func readCapped(r io.Reader, sizeHint, maxBytes int64) ([]byte, error) {
	var buf bytes.Buffer
	if sizeHint > 0 && sizeHint <= maxBytes {
		// bytes.MinRead of slack: ReadFrom grows a full buffer before it
		// can see EOF, which would double an exact-size allocation.
		buf.Grow(int(sizeHint) + bytes.MinRead)
	}
	limit := maxBytes
	if limit < math.MaxInt64 {
		limit++
	}
	n, err := buf.ReadFrom(io.LimitReader(r, limit))
	if err != nil {
		return nil, err
	}
	if n > maxBytes {
		return nil, errOverCap
	}
	return buf.Bytes(), nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
