package storage

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Compare-and-swap for small records (job manifests) that several attempts
// of one task may write: read the record and its version, decide, then
// write only if the version is still the one read.
//
//   - s3:// versions are ETags; the write is a PutObject with If-Match (or
//     If-None-Match: * for "still absent"), which S3 and versitygw check
//     atomically on the server.
//   - file:// versions are the SHA-256 of the content; the write holds an
//     exclusive flock on the target's directory while it compares and
//     renames, and every conditional writer takes the same lock. flock is
//     per host (on NFS it becomes a byte-range lock, if the mount has them);
//     file:// journals shared between hosts are outside this guarantee.

// GetVersioned is Get that also returns the version of what it read, for
// PutIfVersion.
func (s *Store) GetVersioned(ctx context.Context, loc Location, maxBytes int64) (data []byte, version string, err error) {
	data, version, err = s.getVersioned(ctx, loc, maxBytes)
	return data, version, s.cfg.Metrics.failed("get", loc, err)
}

func (s *Store) getVersioned(ctx context.Context, loc Location, maxBytes int64) (data []byte, version string, err error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	t, err := s.check(loc, true)
	if err != nil {
		return nil, "", err
	}
	switch loc.Scheme {
	case SchemeS3:
		return s.s3.getVersioned(ctx, loc, maxBytes)
	case SchemeFile:
		data, err := s.getFile(loc, t, maxBytes)
		if err != nil {
			return nil, "", err
		}
		return data, sha256Hex(data), nil
	}
	return nil, "", errorf(CodeInvalidArgument, loc.Raw, "%s locations have no versions", loc.Scheme)
}

// PutIfVersion stores data at loc only if the object there is still at
// version (as GetVersioned returned it), or still absent when version is
// "". Otherwise it returns ErrConflict and writes nothing.
func (s *Store) PutIfVersion(ctx context.Context, loc Location, data []byte, opts PutOptions, version string) (PutResult, error) {
	res, err := s.putIfVersion(ctx, loc, data, opts, version)
	if !errors.Is(err, ErrConflict) { // a lost race is an answer, not a failure
		s.cfg.Metrics.failed("put", loc, err)
	}
	return res, err
}

func (s *Store) putIfVersion(ctx context.Context, loc Location, data []byte, opts PutOptions, version string) (PutResult, error) {
	t, err := s.check(loc, false)
	if err != nil {
		return PutResult{}, err
	}
	if err := CheckPutOptions(loc, opts); err != nil {
		return PutResult{}, err
	}
	switch loc.Scheme {
	case SchemeS3:
		return s.s3.putIfVersion(ctx, loc, data, opts, version)
	case SchemeFile:
		return s.putFileIfVersion(ctx, loc, t, data, version)
	}
	return PutResult{}, errorf(CodeInvalidArgument, loc.Raw, "%s locations are read-only", loc.Scheme)
}

func (b *s3Backend) getVersioned(ctx context.Context, loc Location, maxBytes int64) ([]byte, string, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Key)})
	if err != nil {
		return nil, "", s3Error(loc.Raw, err)
	}
	defer out.Body.Close()
	data, err := readCapped(out.Body, -1, maxBytes)
	switch {
	case errors.Is(err, errOverCap):
		return nil, "", errorf(CodeTooLarge, loc.Raw, "over the cap of %d bytes", maxBytes)
	case err != nil:
		return nil, "", s3Error(loc.Raw, err)
	}
	return data, aws.ToString(out.ETag), nil
}

// putIfVersion is a single PutObject, not the transfer manager: a
// multipart upload has no If-Match, and records are small.
func (b *s3Backend) putIfVersion(ctx context.Context, loc Location, data []byte, opts PutOptions, version string) (PutResult, error) {
	ct := opts.ContentType
	if ct == "" {
		ct = contentTypeFor(loc.Key)
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Key),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ContentType: aws.String(ct), CacheControl: nonEmpty(opts.CacheControl),
		ContentDisposition: nonEmpty(opts.ContentDisposition), Metadata: encodeMetadata(opts.Metadata),
	}
	if version == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(version)
	}
	out, err := b.client.PutObject(ctx, in)
	if err != nil {
		if isPreconditionFailed(err) {
			return PutResult{}, newError(CodeConflict, loc.Raw, "changed since it was read", err)
		}
		return PutResult{}, s3Error(loc.Raw, err)
	}
	return PutResult{ETag: aws.ToString(out.ETag), Size: int64(len(data)), SHA256: sha256Hex(data)}, nil
}

// isPreconditionFailed: 412 when the condition fails, 409
// ConditionalRequestConflict when AWS saw a concurrent write to the key.
func isPreconditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict") {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusPreconditionFailed || re.HTTPStatusCode() == http.StatusConflict)
}

// putFileIfVersion compares and writes under the directory's flock (see
// the top of this file); the write itself is putFile's atomic rename.
func (s *Store) putFileIfVersion(ctx context.Context, loc Location, t fileTarget, data []byte, version string) (PutResult, error) {
	rel := t.rel
	root, err := os.OpenRoot(t.root)
	if err != nil {
		return PutResult{}, fileError(loc.Raw, err)
	}
	defer root.Close()
	dir := filepath.Dir(rel)
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return PutResult{}, fileError(loc.Raw, err)
	}
	d, err := root.Open(dir)
	if err != nil {
		return PutResult{}, fileError(loc.Raw, err)
	}
	defer d.Close() // closing the descriptor releases the lock
	if err := flockCtx(ctx, d); err != nil {
		return PutResult{}, newError(CodeUnavailable, loc.Raw, "cannot lock the directory", err)
	}
	current := ""
	switch old, err := s.getFile(loc, t, DefaultMaxBytes); {
	case err == nil:
		current = sha256Hex(old)
	case !errors.Is(err, ErrNotFound):
		return PutResult{}, err
	}
	if current != version {
		return PutResult{}, errorf(CodeConflict, loc.Raw, "changed since it was read")
	}
	return s.putFile(ctx, loc, t, data)
}

// flockCtx takes an exclusive flock on f, giving up when ctx ends. The
// lock is held for a read and a rename, so polling a non-blocking attempt
// costs little and keeps cancellation simple.
func flockCtx(ctx context.Context, f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
