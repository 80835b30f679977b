package storage

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

// maxMetadataBytes is S3's limit on user metadata (keys plus values).
const maxMetadataBytes = 2048

type s3Backend struct {
	client *s3.Client
	tm     *transfermanager.Client
}

// newS3Backend builds the client without any request: LoadDefaultConfig
// reads the environment and shared files only, and the credential chain
// (IMDS included) runs on the first signed request.
func newS3Backend(ctx context.Context, cfg Config) (*s3Backend, error) {
	httpClient := awshttp.NewBuildableClient()
	if len(cfg.S3CACertPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(cfg.S3CACertPEM) {
			return nil, errors.New("storage: S3CACertPEM holds no PEM certificate")
		}
		httpClient = httpClient.WithTransportOptions(func(tr *http.Transport) {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			tr.TLSClientConfig.RootCAs = pool
		})
	}
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		// The SDK's own warnings (IMDSv1 fallback, clock skew...) go to our
		// logger instead of straight to stderr.
		config.WithLogger(logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
			level := slog.LevelDebug
			if c == logging.Warn {
				level = slog.LevelWarn
			}
			cfg.Logger.Log(context.Background(), level, "aws-sdk: "+fmt.Sprintf(format, v...))
		})),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.Retries
				// Since aws-sdk-go-v2 1.48 the standard retryer backs off from
				// 50 ms and charges 14 tokens of a shared 500 per retry, so
				// during an S3 outage every operation fails within a second
				// and a busy worker soon retries nothing at all; tasks then
				// spend their own attempts in seconds and fail (make chaos's
				// S3 scenario lost 30 of 200). Back off from 1 s up to 20 s
				// as before, and leave the rate of retries to the task's own
				// backoff.
				o.Backoff = retry.NewExponentialJitterBackoff(20 * time.Second)
				o.RateLimiter = ratelimit.None
			})
		}),
		// Since service/s3 v1.73 the SDK adds CRC32 checksums to every
		// upload (as an aws-chunked trailer over TLS, a header over plain
		// HTTP) and validates them on download. S3-compatible servers
		// differ in what they accept; "when required" sends what every
		// S3 implementation understands. Transport integrity is TLS's.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if cfg.S3Region != "" {
		opts = append(opts, config.WithRegion(cfg.S3Region))
	}
	if cfg.S3Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(cfg.S3Credentials))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("storage: AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		// Requests cannot be signed without a region; S3-compatible servers
		// accept any, and AWS redirects a wrong one with a clear error.
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.S3Endpoint)
		}
		o.UsePathStyle = cfg.S3PathStyle
	})
	tm := transfermanager.New(client, func(o *transfermanager.Options) {
		o.MultipartUploadThreshold = cfg.MultipartThreshold
		o.PartSizeBytes = cfg.PartSize
		// The transfer manager has its own setting, which overrides the
		// client's and defaults to adding CRC32 to every part.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		// Abort a failed multipart upload even when the caller's context
		// is what failed it, so no orphaned parts keep costing storage.
		o.FailTimeout = 30 * time.Second
	})
	return &s3Backend{client: client, tm: tm}, nil
}

func (b *s3Backend) get(ctx context.Context, loc Location, maxBytes int64) ([]byte, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Key)})
	if err != nil {
		return nil, s3Error(loc.Raw, err)
	}
	defer out.Body.Close()
	size := aws.ToInt64(out.ContentLength)
	if size > maxBytes {
		return nil, errorf(CodeTooLarge, loc.Raw, "%d bytes, over the cap of %d", size, maxBytes)
	}
	if out.ContentLength == nil {
		size = -1
	}
	data, err := readCapped(out.Body, size, maxBytes)
	switch {
	case errors.Is(err, errOverCap):
		return nil, errorf(CodeTooLarge, loc.Raw, "over the cap of %d bytes", maxBytes)
	case err != nil:
		return nil, s3Error(loc.Raw, err)
	}
	return data, nil
}

// put goes through the transfer manager for every size: below the
// threshold it is a single PutObject, above it a multipart upload with
// parts in parallel, aborted on failure.
func (b *s3Backend) put(ctx context.Context, loc Location, data []byte, opts PutOptions) (PutResult, error) {
	ct := opts.ContentType
	if ct == "" {
		ct = contentTypeFor(loc.Key)
	}
	in := &transfermanager.UploadObjectInput{
		Bucket:             aws.String(loc.Bucket),
		Key:                aws.String(loc.Key),
		Body:               bytes.NewReader(data),
		ContentLength:      aws.Int64(int64(len(data))),
		ContentType:        aws.String(ct),
		CacheControl:       nonEmpty(opts.CacheControl),
		ContentDisposition: nonEmpty(opts.ContentDisposition),
		Metadata:           encodeMetadata(opts.Metadata),
	}
	out, err := b.tm.UploadObject(ctx, in)
	if err != nil {
		return PutResult{}, s3Error(loc.Raw, err)
	}
	return PutResult{
		ETag:   aws.ToString(out.ETag),
		Size:   int64(len(data)),
		SHA256: sha256Hex(data),
		Parts:  len(out.CompletedParts),
	}, nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// contentTypeFor covers the formats the render engine writes, so an
// output gets the right type even when the caller passes none.
func contentTypeFor(key string) string {
	switch strings.ToLower(path.Ext(key)) {
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".png":
		return "image/png"
	case ".webp":
		return "image/webp"
	case ".avif":
		return "image/avif"
	case ".gif":
		return "image/gif"
	case ".tif", ".tiff":
		return "image/tiff"
	case ".heic", ".heif":
		return "image/heif"
	case ".jxl":
		return "image/jxl"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}

// encodeMetadata RFC 2047-encodes non-ASCII values: raw UTF-8 in a header
// is signed differently by clients and servers, and S3 returns such values
// encoded anyway.
func encodeMetadata(md map[string]string) map[string]string {
	if len(md) == 0 {
		return nil
	}
	out := make(map[string]string, len(md))
	for k, v := range md {
		out[k] = mime.QEncoding.Encode("utf-8", v)
	}
	return out
}

// CheckPutOptions refuses what would otherwise fail inside the SDK with an
// obscure message, or be silently altered: headers with control
// characters, metadata keys that are not header tokens or collide once S3
// lowercases them, and metadata over S3's size limit.
func CheckPutOptions(loc Location, o PutOptions) error {
	for _, h := range [...]struct{ name, v string }{
		{"content type", o.ContentType},
		{"cache control", o.CacheControl},
		{"content disposition", o.ContentDisposition},
	} {
		name, v := h.name, h.v
		if len(v) > 1024 {
			return errorf(CodeInvalidArgument, loc.Raw, "%s longer than 1024 bytes", name)
		}
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return errorf(CodeInvalidArgument, loc.Raw, "%s must be printable ASCII", name)
			}
		}
	}
	total := 0
	seen := make(map[string]bool, len(o.Metadata))
	for k, v := range o.Metadata {
		if !isToken(k) {
			return errorf(CodeInvalidArgument, loc.Raw, "metadata key %q is not an HTTP token", truncate(k, 64))
		}
		if lk := strings.ToLower(k); seen[lk] {
			return errorf(CodeInvalidArgument, loc.Raw, "metadata keys %q collide (S3 lowercases them)", lk)
		} else {
			seen[lk] = true
		}
		if msg := checkChars(v); msg != "" {
			return errorf(CodeInvalidArgument, loc.Raw, "metadata %q: %s", k, msg)
		}
		total += len(k) + len(mime.QEncoding.Encode("utf-8", v))
	}
	if total > maxMetadataBytes {
		return errorf(CodeInvalidArgument, loc.Raw, "metadata is %d bytes, over S3's limit of %d", total, maxMetadataBytes)
	}
	return nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// s3Error classifies by S3 error code first (RequestTimeout is a 400 but
// transient; NoSuchBucket and NoSuchKey are both 404 but worth naming),
// then by HTTP status. No response at all is a network failure.
func s3Error(loc string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return newError(CodeUnavailable, loc, "cancelled or timed out", err)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		switch code {
		case "NoSuchKey", "NotFound", "NoSuchVersion", "NoSuchUpload":
			return newError(CodeNotFound, loc, "no such key ("+code+")", err)
		case "NoSuchBucket":
			return newError(CodeNotFound, loc, "no such bucket (NoSuchBucket)", err)
		// XAdminUserNotFound is versitygw's answer (a 404) to an unknown
		// access key, where AWS says InvalidAccessKeyId (a 403).
		case "AccessDenied", "Forbidden", "AllAccessDisabled", "AccountProblem",
			"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidObjectState",
			"XAdminUserNotFound":
			return newError(CodeForbidden, loc, "access denied ("+code+")", err)
		case "EntityTooLarge":
			return newError(CodeTooLarge, loc, "refused by the server as too large ("+code+")", err)
		case "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout",
			"Throttling", "ThrottlingException", "RequestLimitExceeded",
			"ExpiredToken", "RequestTimeTooSkewed":
			return newError(CodeUnavailable, loc, "server busy or failing ("+code+")", err)
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch st := re.HTTPStatusCode(); {
		case st == http.StatusNotFound:
			return newError(CodeNotFound, loc, "not found (HTTP 404)", err)
		case st == http.StatusUnauthorized || st == http.StatusForbidden:
			return newError(CodeForbidden, loc, fmt.Sprintf("access denied (HTTP %d)", st), err)
		case st == http.StatusRequestTimeout || st == http.StatusTooManyRequests || st >= 500:
			return newError(CodeUnavailable, loc, fmt.Sprintf("server busy or failing (HTTP %d)", st), err)
		case st >= 400:
			return newError(CodeInvalidArgument, loc, fmt.Sprintf("request refused (HTTP %d)", st), err)
		}
	}
	// Connection refused, DNS, TLS, exhausted retries, no credentials
	// (which on EC2 may be IMDS hiccuping): transient, and the task's
	// retry budget turns a lasting one into a dead letter.
	return newError(CodeUnavailable, loc, "S3 request failed", err)
}
