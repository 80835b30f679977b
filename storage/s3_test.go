package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/renderfarm/renderfarm/internal/testenv"
)

// S3 tests run against versitygw, started per test over plain HTTP and over
// HTTPS: the SDK signs and checksums uploads differently over TLS, and
// production is TLS.

const testBucket = "renders"

func s3Store(t *testing.T, srv testenv.S3Server, mod func(*Config)) *Store {
	t.Helper()
	cfg := Config{
		S3Endpoint:         srv.Endpoint,
		S3Region:           srv.Region,
		S3PathStyle:        true,
		S3CACertPEM:        srv.CACertPEM,
		S3Credentials:      credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		AllowedBuckets:     []string{testBucket, "no-such-bucket"},
		MultipartThreshold: 1 << 20,
		PartSize:           5 << 20,
	}
	if mod != nil {
		mod(&cfg)
	}
	return newStore(t, cfg)
}

// rawS3 is a plain SDK client for what the Store does not do: creating
// buckets and reading object headers back.
func rawS3(t *testing.T, srv testenv.S3Server) *s3.Client { return srv.Client(t) }

func createBucket(t *testing.T, c *s3.Client, name string) {
	t.Helper()
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("CreateBucket %s: %v", name, err)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestS3(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"http", false}, {"https", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := testenv.S3(t, tc.tls)
			raw := rawS3(t, srv)
			createBucket(t, raw, testBucket)
			s := s3Store(t, srv, nil)
			ctx := context.Background()

			t.Run("delete", func(t *testing.T) {
				loc := MustParseLocation("s3://renders/starts/x.0.start")
				if _, err := s.Put(ctx, loc, []byte(`{"starts":1}`), PutOptions{}); err != nil {
					t.Fatal(err)
				}
				for i := range 2 { // the second finds it gone, and succeeds too
					if err := s.Delete(ctx, loc); err != nil {
						t.Fatalf("Delete %d: %v", i+1, err)
					}
				}
				if _, err := s.Get(ctx, loc, 0); !errors.Is(err, ErrNotFound) {
					t.Errorf("Get after Delete: %v, want ErrNotFound", err)
				}
			})
			t.Run("put small with headers", func(t *testing.T) {
				loc := MustParseLocation("s3://renders/out/a b/photo-1.webp")
				data := randomBytes(t, 10_000)
				res, err := s.Put(ctx, loc, data, PutOptions{
					ContentType:        "image/webp",
					CacheControl:       "public, max-age=31536000, immutable",
					ContentDisposition: `inline; filename="photo-1.webp"`,
					Metadata:           map[string]string{"job-id": "j-123", "Caption": "Zürich ☃"},
				})
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				if res.Size != int64(len(data)) || res.SHA256 != sha256Hex(data) || res.ETag == "" || res.Parts != 0 {
					t.Errorf("PutResult = %+v", res)
				}
				head, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Key)})
				if err != nil {
					t.Fatalf("HeadObject: %v", err)
				}
				if got := aws.ToString(head.ContentType); got != "image/webp" {
					t.Errorf("Content-Type = %q", got)
				}
				if got := aws.ToString(head.CacheControl); got != "public, max-age=31536000, immutable" {
					t.Errorf("Cache-Control = %q", got)
				}
				if got := aws.ToString(head.ContentDisposition); got != `inline; filename="photo-1.webp"` {
					t.Errorf("Content-Disposition = %q", got)
				}
				if got := aws.ToInt64(head.ContentLength); got != int64(len(data)) {
					t.Errorf("Content-Length = %d", got)
				}
				if aws.ToString(head.ETag) != res.ETag {
					t.Errorf("ETag %q, Put said %q", aws.ToString(head.ETag), res.ETag)
				}
				if got := head.Metadata["job-id"]; got != "j-123" {
					t.Errorf("metadata job-id = %q (all: %v)", got, head.Metadata)
				}
				caption, err := new(mime.WordDecoder).DecodeHeader(head.Metadata["caption"])
				if err != nil || caption != "Zürich ☃" {
					t.Errorf("metadata caption = %q (%q), %v", caption, head.Metadata["caption"], err)
				}
				got, err := s.Get(ctx, loc, int64(len(data)))
				if err != nil || sha256Hex(got) != res.SHA256 {
					t.Fatalf("Get round trip: %d bytes, %v", len(got), err)
				}
			})

			t.Run("content type from extension", func(t *testing.T) {
				loc := MustParseLocation("s3://renders/out/x.png")
				if _, err := s.Put(ctx, loc, []byte("png"), PutOptions{}); err != nil {
					t.Fatal(err)
				}
				head, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Key)})
				if err != nil || aws.ToString(head.ContentType) != "image/png" {
					t.Errorf("Content-Type = %q, %v", aws.ToString(head.ContentType), err)
				}
			})

			t.Run("put large multipart", func(t *testing.T) {
				loc := MustParseLocation("s3://renders/out/large.tif")
				data := randomBytes(t, 5<<20+12345) // two parts of 5 MiB max
				res, err := s.Put(ctx, loc, data, PutOptions{ContentType: "image/tiff", CacheControl: "no-cache", Metadata: map[string]string{"job-id": "j-9"}})
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				if res.Parts != 2 || !strings.HasSuffix(strings.Trim(res.ETag, `"`), "-2") {
					t.Errorf("want a 2-part multipart upload, got %+v", res)
				}
				head, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Key)})
				if err != nil {
					t.Fatalf("HeadObject: %v", err)
				}
				if aws.ToString(head.ContentType) != "image/tiff" || aws.ToString(head.CacheControl) != "no-cache" || head.Metadata["job-id"] != "j-9" {
					t.Errorf("multipart headers: type %q, cache %q, metadata %v", aws.ToString(head.ContentType), aws.ToString(head.CacheControl), head.Metadata)
				}
				got, err := s.Get(ctx, loc, int64(len(data)))
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				if sha256Hex(got) != sha256Hex(data) || res.SHA256 != sha256Hex(data) {
					t.Fatal("multipart round trip: sha256 differs")
				}
				uploads, err := raw.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(testBucket)})
				if err != nil || len(uploads.Uploads) != 0 {
					t.Errorf("multipart uploads left open: %v, %v", uploads.Uploads, err)
				}
			})

			t.Run("overwrite is idempotent", func(t *testing.T) {
				loc := MustParseLocation("s3://renders/out/again.jpg")
				data := randomBytes(t, 2000)
				for i := 0; i < 2; i++ {
					if _, err := s.Put(ctx, loc, data, PutOptions{}); err != nil {
						t.Fatalf("Put %d: %v", i, err)
					}
				}
				if got, err := s.Get(ctx, loc, 1<<20); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("Get after a repeated Put: %v", err)
				}
			})

			t.Run("byte cap", func(t *testing.T) {
				loc := MustParseLocation("s3://renders/src/cap.jpg")
				data := randomBytes(t, 4096)
				if _, err := s.Put(ctx, loc, data, PutOptions{}); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Get(ctx, loc, 4095); !errors.Is(err, ErrTooLarge) || !IsPermanent(err) {
					t.Errorf("Get over the cap = %v, want ErrTooLarge", err)
				}
				if got, err := s.Get(ctx, loc, 4096); err != nil || !bytes.Equal(got, data) {
					t.Errorf("Get at exactly the cap: %v", err)
				}
			})

			t.Run("not found", func(t *testing.T) {
				for _, raw := range []string{"s3://renders/nope.jpg", "s3://no-such-bucket/k.jpg"} {
					_, err := s.Get(ctx, MustParseLocation(raw), 1<<20)
					if !errors.Is(err, ErrNotFound) || !IsPermanent(err) {
						t.Errorf("Get %s = %v, want ErrNotFound", raw, err)
					}
				}
				_, err := s.Put(ctx, MustParseLocation("s3://no-such-bucket/k.jpg"), []byte("x"), PutOptions{})
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("Put to a missing bucket = %v, want ErrNotFound", err)
				}
			})

			t.Run("bucket not allowed", func(t *testing.T) {
				_, err := s.Get(ctx, MustParseLocation("s3://other-bucket/k.jpg"), 1<<20)
				if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "allowed buckets") {
					t.Errorf("Get = %v, want ErrForbidden from the allow-list", err)
				}
			})

			t.Run("wrong credentials", func(t *testing.T) {
				for _, keys := range [][2]string{{srv.AccessKey, "wrong-secret"}, {"UNKNOWNKEY", srv.SecretKey}} {
					bad := s3Store(t, srv, func(c *Config) {
						c.S3Credentials = credentials.NewStaticCredentialsProvider(keys[0], keys[1], "")
					})
					_, err := bad.Get(ctx, MustParseLocation("s3://renders/src/cap.jpg"), 1<<20)
					if !errors.Is(err, ErrForbidden) {
						t.Errorf("Get with keys %q = %v, want ErrForbidden", keys[0], err)
					}
				}
			})
		})
	}
}

func TestS3Unreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	s := newStore(t, Config{
		S3Endpoint:    endpoint,
		S3PathStyle:   true,
		S3Credentials: credentials.NewStaticCredentialsProvider("AK", "SK", ""),
		Retries:       2,
	})
	_, err = s.Get(context.Background(), MustParseLocation("s3://renders/k.jpg"), 1<<20)
	if !errors.Is(err, ErrUnavailable) || IsPermanent(err) {
		t.Fatalf("Get from a closed port = %v, want transient ErrUnavailable", err)
	}
	_, err = s.Put(context.Background(), MustParseLocation("s3://renders/k.jpg"), []byte("x"), PutOptions{})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put to a closed port = %v, want ErrUnavailable", err)
	}
}

// TestS3Wire pins down what goes over the wire, through a recording proxy
// in front of versitygw: no SDK checksum (no x-amz-checksum-*, no
// aws-chunked trailer) on single or multipart uploads, over HTTP or TLS.
// That is the setting S3-compatible servers need, and the transfer
// manager has its own copy of it that is easy to miss.
func TestS3Wire(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run("tls="+strconv.FormatBool(useTLS), func(t *testing.T) {
			t.Parallel()
			srv := testenv.S3(t, useTLS)
			createBucket(t, rawS3(t, srv), testBucket)
			endpoint, caPEM, requests := recordingProxy(t, srv)
			s := s3Store(t, srv, func(c *Config) { c.S3Endpoint, c.S3CACertPEM = endpoint, caPEM })
			ctx := context.Background()
			small, large := randomBytes(t, 1000), randomBytes(t, 5<<20+1)
			for key, data := range map[string][]byte{"wire/small.jpg": small, "wire/large.jpg": large} {
				loc := MustParseLocation("s3://renders/" + key)
				if _, err := s.Put(ctx, loc, data, PutOptions{}); err != nil {
					t.Fatalf("Put %s: %v", key, err)
				}
				if got, err := s.Get(ctx, loc, 10<<20); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("Get %s: %v", key, err)
				}
			}
			var puts int
			for _, r := range requests() {
				if r.method != http.MethodPut {
					continue
				}
				puts++
				for name := range r.header {
					if strings.HasPrefix(strings.ToLower(name), "x-amz-checksum-") || strings.EqualFold(name, "x-amz-sdk-checksum-algorithm") || strings.EqualFold(name, "x-amz-trailer") {
						t.Errorf("%s %s sent %s: %s", r.method, r.url, name, r.header.Get(name))
					}
				}
				if strings.Contains(r.header.Get("Content-Encoding"), "aws-chunked") {
					t.Errorf("%s %s used aws-chunked encoding", r.method, r.url)
				}
				t.Logf("%s %s X-Amz-Content-Sha256=%s", r.method, r.url, truncate(r.header.Get("X-Amz-Content-Sha256"), 20))
			}
			if puts != 3 { // PutObject, then two UploadPart
				t.Errorf("saw %d PUT requests, want 3", puts)
			}
		})
	}
}

type recorded struct {
	method, url string
	header      http.Header
}

// recordingProxy forwards to srv and records request headers. It keeps the
// Host header, which SigV4 signs. Over TLS it terminates with its own
// certificate and returns it as the CA to trust.
func recordingProxy(t *testing.T, srv testenv.S3Server) (endpoint string, caPEM []byte, requests func() []recorded) {
	t.Helper()
	target, _ := url.Parse(srv.Endpoint)
	var mu sync.Mutex
	var reqs []recorded
	tr := &http.Transport{Proxy: nil}
	if srv.CACertPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(srv.CACertPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			mu.Lock()
			reqs = append(reqs, recorded{pr.In.Method, pr.In.URL.String(), pr.In.Header.Clone()})
			mu.Unlock()
		},
		Transport: tr,
	}
	var ps *httptest.Server
	if srv.CACertPEM != nil {
		ps = httptest.NewTLSServer(proxy)
		caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ps.Certificate().Raw})
	} else {
		ps = httptest.NewServer(proxy)
	}
	t.Cleanup(ps.Close)
	return ps.URL, caPEM, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), reqs...)
	}
}
