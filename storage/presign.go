package storage

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Bounds of a presigned URL's life. SigV4 query signatures cannot be valid
// for more than 7 days (S3 refuses longer ones); under a second a link is
// dead before a browser can follow it.
const (
	minPresignTTL = time.Second
	maxPresignTTL = 7 * 24 * time.Hour
)

// PresignGet returns a URL that lets whoever holds it GET the object at
// loc, without credentials, until ttl has passed: the web tier hands it to
// browsers so images come straight from S3 instead of through the web
// tier, and the bucket stays private. ttl is clamped to [1s, 7 days].
//
// loc passes Check first (the bucket allow-list holds for links as for
// reads); any scheme but s3:// is ErrInvalidArgument, since only S3 has
// signed URLs. The URL is signed locally: nothing is sent to S3, so a
// missing object shows only when the URL is fetched (404). Resolving the
// credentials may make requests (IMDS, STS), hence ctx; a URL signed with
// temporary credentials stops working when they expire, whatever ttl says.
func (s *Store) PresignGet(ctx context.Context, loc Location, ttl time.Duration) (string, error) {
	if err := s.Check(loc); err != nil {
		return "", err
	}
	if loc.Scheme != SchemeS3 {
		return "", errorf(CodeInvalidArgument, loc.Raw, "presigning is for s3:// locations only, not %s://", loc.Scheme)
	}
	ttl = min(max(ttl, minPresignTTL), maxPresignTTL)
	// A presign client is a thin wrapper over the shared client; making one
	// per call keeps Store and s3Backend as they are.
	req, err := s3.NewPresignClient(s.s3.client).PresignGetObject(ctx,
		&s3.GetObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Key)},
		s3.WithPresignExpires(ttl))
	if err != nil {
		return "", s3Error(loc.Raw, err)
	}
	s.log.DebugContext(ctx, "storage presign", "location", loc.String(), "ttl", ttl)
	return req.URL, nil
}
