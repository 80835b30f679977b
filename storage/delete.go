package storage

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Delete removes the object at loc (s3:// or file://). An object that is
// already gone is not an error: a delete retried after a lost answer, or
// two workers tidying the same record, both succeed.
func (s *Store) Delete(ctx context.Context, loc Location) error {
	// Resolved as a write: the name itself goes, never what a symlink
	// there points to.
	t, err := s.check(loc, false)
	if err != nil {
		return s.cfg.Metrics.failed("delete", loc, err)
	}
	start := time.Now()
	switch loc.Scheme {
	case SchemeS3:
		_, err = s.s3.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Key)})
		if err != nil {
			err = s3Error(loc.Raw, err)
		}
	case SchemeFile:
		err = s.deleteFile(loc, t)
	default:
		err = errorf(CodeInvalidArgument, loc.Raw, "%s locations are read-only", loc.Scheme)
	}
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	s.log.DebugContext(ctx, "storage delete", "location", loc.String(), "duration", time.Since(start), "err", err)
	return s.cfg.Metrics.failed("delete", loc, err)
}

func (s *Store) deleteFile(loc Location, t fileTarget) error {
	root, err := os.OpenRoot(t.root)
	if err != nil {
		return fileError(loc.Raw, err)
	}
	defer root.Close()
	if err := root.Remove(t.rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fileError(loc.Raw, err)
	}
	return nil
}
