package storage

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
)

// TestMain keeps every test away from real AWS whatever the developer's
// environment holds: no IMDS, no profiles, no endpoint or credentials from
// the environment, no proxies.
func TestMain(m *testing.M) {
	for _, k := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
	} {
		os.Unsetenv(k)
	}
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	os.Exit(m.Run())
}

func newStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestNewValidatesConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	tests := []struct {
		name string
		cfg  Config
		msg  string
	}{
		{"relative root", Config{FileRoots: []string{"out"}}, "not an absolute path"},
		{"missing root", Config{FileRoots: []string{filepath.Join(dir, "nope")}}, "no such file"},
		{"root is a file", Config{FileRoots: []string{file}}, "not a directory"},
		{"bad bucket", Config{AllowedBuckets: []string{"Bad_Bucket"}}, "allowed bucket"},
		{"bad endpoint", Config{S3Endpoint: "127.0.0.1:9000"}, "S3 endpoint"},
		{"bad allow", Config{HTTPAllow: []string{"user@host"}}, "HTTP allow entry"},
		{"bad port", Config{HTTPPorts: []int{70000}}, "out of range"},
		{"small parts", Config{PartSize: 1 << 20}, "part size"},
		{"bad CA", Config{S3CACertPEM: []byte("not a certificate")}, "PEM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("New = %v, want an error mentioning %q", err, tt.msg)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, Config{
		FileRoots:      []string{root},
		AllowedBuckets: []string{"renders"},
		HTTPAllow:      []string{"10.1.0.0/16", "images.internal"},
		HTTPPorts:      []int{8443},
	})
	none := newStore(t, Config{})
	tests := []struct {
		store *Store
		loc   string
		want  error // nil = allowed
	}{
		{s, "s3://renders/k.jpg", nil},
		{s, "s3://other/k.jpg", ErrForbidden},
		{none, "s3://other/k.jpg", nil},
		{s, "file://" + root + "/out/a.jpg", nil},
		{s, "file://" + root, ErrForbidden}, // the root itself is no file
		{s, "file://" + root + "x/a.jpg", ErrForbidden},
		{s, "file:///etc/passwd", ErrForbidden},
		{none, "file://" + root + "/a.jpg", ErrForbidden},
		{s, "https://img.example.com/a.jpg", nil},
		{s, "https://img.example.com:8443/a.jpg", nil},
		{s, "https://img.example.com:8080/a.jpg", ErrForbidden},
		{s, "http://img.example.com/a.jpg", ErrForbidden}, // AllowHTTP unset
		{s, "https://127.0.0.1/", ErrForbidden},
		{s, "https://[::1]/", ErrForbidden},
		{s, "https://[::ffff:127.0.0.1]/", ErrForbidden},
		{s, "https://169.254.169.254/latest/meta-data/", ErrForbidden},
		{s, "https://[fd00:ec2::254]/", ErrForbidden},
		{s, "https://10.0.0.1/", ErrForbidden},
		{s, "https://10.1.2.3:9999/", nil}, // allow-listed CIDR: any port
		{s, "https://images.internal:1234/x", nil},
		{s, "https://100.64.0.1/", ErrForbidden},
		{s, "https://0.0.0.0/", ErrForbidden},
		{s, "https://127.1/", ErrForbidden},
		{s, "https://2130706433/", ErrForbidden},
		{s, "https://0x7f.0.0.1/", ErrForbidden},
		{s, "https://8.8.8.8/", nil},
		{s, "https://[2606:4700::1111]/", nil},
		{s, "https://[64:ff9b::7f00:1]/", ErrForbidden},
		{s, "https://[2002:7f00:1::]/", ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.loc, func(t *testing.T) {
			loc, err := ParseLocation(tt.loc)
			if err != nil {
				t.Fatalf("ParseLocation: %v", err)
			}
			err = tt.store.Check(loc)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
		})
	}
}

// Locations built by hand skip ParseLocation; Check must not trust them.
func TestCheckRevalidates(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, Config{FileRoots: []string{root}})
	for _, loc := range []Location{
		{Scheme: "file", Path: root + "/../etc/passwd"},
		{Scheme: "file", Path: "relative/x"},
		{Scheme: "s3", Bucket: "renders", Key: "../k"},
		{Scheme: "s3", Bucket: "renders", Key: "a\x00b"},
		{Scheme: "s3", Bucket: "Bad", Key: "k"},
		{Scheme: "https"},
		{Scheme: "https", URL: &url.URL{Scheme: "gopher", Host: "x.example"}},
		{Scheme: "ftp"},
		{},
	} {
		if err := s.Check(loc); !errors.Is(err, ErrInvalidLocation) {
			t.Errorf("Check(%+v) = %v, want ErrInvalidLocation", loc, err)
		}
	}
}

// The bucket allow-list is enforced before any request: a tripwire server
// stands where S3 would be.
// tripwireStore is a store whose S3 endpoint answers every request with
// a 500 and counts it, for tests that nothing reaches the server.
func tripwireStore(t *testing.T, cfg Config) (*Store, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	trip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "tripwire", http.StatusInternalServerError)
	}))
	t.Cleanup(trip.Close)
	cfg.S3Endpoint, cfg.S3PathStyle, cfg.Retries = trip.URL, true, 1
	cfg.S3Credentials = credentials.NewStaticCredentialsProvider("AK", "SK", "")
	return newStore(t, cfg), &hits
}

func TestBucketNotAllowedSendsNothing(t *testing.T) {
	s, hits := tripwireStore(t, Config{AllowedBuckets: []string{"renders"}})
	ctx := context.Background()
	denied := MustParseLocation("s3://secrets/k.jpg")
	if _, err := s.Get(ctx, denied, 1<<20); !errors.Is(err, ErrForbidden) {
		t.Errorf("Get = %v, want ErrForbidden", err)
	}
	if _, err := s.Put(ctx, denied, []byte("x"), PutOptions{}); !errors.Is(err, ErrForbidden) {
		t.Errorf("Put = %v, want ErrForbidden", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the server for a bucket not allowed", n)
	}
	// The tripwire works: an allowed bucket does reach it (and its 500 is
	// transient).
	if _, err := s.Get(ctx, MustParseLocation("s3://renders/k.jpg"), 1<<20); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get of an allowed bucket = %v, want ErrUnavailable from the tripwire", err)
	}
	if hits.Load() == 0 {
		t.Fatal("the tripwire saw nothing: the test proves nothing")
	}
}

func TestPutOptionsValidated(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, Config{FileRoots: []string{root}})
	loc := MustParseLocation("file://" + root + "/x.jpg")
	tests := []struct {
		name string
		opts PutOptions
	}{
		{"header injection", PutOptions{CacheControl: "max-age=1\r\nX-Evil: 1"}},
		{"non-ASCII type", PutOptions{ContentType: "image/jpég"}},
		{"bad metadata key", PutOptions{Metadata: map[string]string{"a b": "x"}}},
		{"colliding keys", PutOptions{Metadata: map[string]string{"Job": "1", "job": "2"}}},
		{"control in value", PutOptions{Metadata: map[string]string{"k": "a\nb"}}},
		{"too much metadata", PutOptions{Metadata: map[string]string{"k": strings.Repeat("v", 2100)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Put(context.Background(), loc, []byte("x"), tt.opts); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("Put = %v, want ErrInvalidArgument", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(root, "x.jpg")); !os.IsNotExist(err) {
		t.Error("a refused Put wrote the file")
	}
}

func TestPutHTTPRefused(t *testing.T) {
	s := newStore(t, Config{})
	_, err := s.Put(context.Background(), MustParseLocation("https://img.example.com/x.jpg"), []byte("x"), PutOptions{})
	if !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Put to https = %v, want ErrInvalidArgument", err)
	}
}

func TestContentTypeFor(t *testing.T) {
	for key, want := range map[string]string{
		"a/b.JPG": "image/jpeg", "x.jpeg": "image/jpeg", "x.png": "image/png", "x.webp": "image/webp",
		"x.avif": "image/avif", "x.gif": "image/gif", "x.tif": "image/tiff", "m.json": "application/json",
		"noext": "application/octet-stream", "x.exe": "application/octet-stream",
	} {
		if got := contentTypeFor(key); got != want {
			t.Errorf("contentTypeFor(%q) = %q, want %q", key, got, want)
		}
	}
}

// New reads configuration only: neither S3 (here from AWS_ENDPOINT_URL_S3,
// the SDK's standard variable) nor the credential chain (IMDS, pointed at
// a tripwire) is contacted until the first request, which then uses both.
func TestNewIsLazyAndUsesStandardEnv(t *testing.T) {
	var s3Hits, imdsHits atomic.Int32
	var auth atomic.Value
	s3trip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s3Hits.Add(1)
		auth.Store(r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusNotFound)
	}))
	defer s3trip.Close()
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		imdsHits.Add(1)
		w.WriteHeader(http.StatusNotFound)
	}))
	defer imds.Close()
	t.Setenv("AWS_ENDPOINT_URL_S3", s3trip.URL)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)

	s := newStore(t, Config{S3PathStyle: true, Retries: 1})
	if s3Hits.Load()+imdsHits.Load() != 0 {
		t.Fatalf("New contacted S3 %d times and IMDS %d times", s3Hits.Load(), imdsHits.Load())
	}
	_, err := s.Get(context.Background(), MustParseLocation("s3://renders/k.jpg"), 1<<20)
	if imdsHits.Load() == 0 {
		t.Errorf("the default credential chain did not reach IMDS: %v", err)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get without any credentials = %v, want ErrUnavailable", err)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENVTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	s = newStore(t, Config{S3PathStyle: true, Retries: 1})
	_, err = s.Get(context.Background(), MustParseLocation("s3://renders/k.jpg"), 1<<20)
	if !errors.Is(err, ErrNotFound) || s3Hits.Load() == 0 {
		t.Fatalf("Get = %v after %d requests; want the endpoint from AWS_ENDPOINT_URL_S3 to answer 404", err, s3Hits.Load())
	}
	if a, _ := auth.Load().(string); !strings.Contains(a, "Credential=AKIAENVTEST/") {
		t.Errorf("request not signed with the environment's key: %q", a)
	}
}
