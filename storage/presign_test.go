package storage

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/renderfarm/renderfarm/internal/testenv"
)

// fetch GETs u with plain net/http, as a browser would: no SDK, no
// credentials, only the server's CA trusted over TLS.
func fetch(t *testing.T, srv testenv.S3Server, u string) (int, []byte) {
	t.Helper()
	tr := &http.Transport{Proxy: nil}
	if srv.CACertPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(srv.CACertPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", u, err)
	}
	return resp.StatusCode, body
}

func TestPresignGetS3(t *testing.T) {
	eachS3(t, func(t *testing.T, srv testenv.S3Server, s *Store) {
		ctx := context.Background()
		loc := MustParseLocation("s3://renders/out/thumb 1.webp")
		data := randomBytes(t, 5000)
		if _, err := s.Put(ctx, loc, data, PutOptions{}); err != nil {
			t.Fatalf("Put: %v", err)
		}
		signed, err := s.PresignGet(ctx, loc, time.Minute)
		if err != nil {
			t.Fatalf("PresignGet: %v", err)
		}
		if !strings.HasPrefix(signed, srv.Endpoint+"/") || strings.Contains(signed, srv.SecretKey) {
			t.Errorf("presigned URL %q: want one on %s without the secret", signed, srv.Endpoint)
		}

		tampered := func(u string) string {
			pu, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			q := pu.Query()
			sig := []byte(q.Get("X-Amz-Signature"))
			if len(sig) == 0 {
				t.Fatalf("no X-Amz-Signature in %s", u)
			}
			if sig[len(sig)-1] == '0' { // another hex digit: still well-formed
				sig[len(sig)-1] = '1'
			} else {
				sig[len(sig)-1] = '0'
			}
			q.Set("X-Amz-Signature", string(sig))
			pu.RawQuery = q.Encode()
			return pu.String()
		}
		otherKey := strings.Replace(signed, "thumb%201.webp", "thumb%202.webp", 1)
		if otherKey == signed {
			t.Fatalf("key not found in %s", signed)
		}
		expiredLoc := MustParseLocation("s3://renders/out/short.webp")
		if _, err := s.Put(ctx, expiredLoc, data, PutOptions{}); err != nil {
			t.Fatal(err)
		}
		short, err := s.PresignGet(ctx, expiredLoc, 0) // clamped to 1s
		if err != nil {
			t.Fatal(err)
		}
		// Valid at first, so the 403 below is the expiry's.
		if status, _ := fetch(t, srv, short); status != http.StatusOK {
			t.Fatalf("GET of a fresh 1s URL = %d, want 200", status)
		}
		missing, err := s.PresignGet(ctx, MustParseLocation("s3://renders/out/none.webp"), time.Minute)
		if err != nil {
			t.Fatalf("PresignGet of a missing key = %v; signing is local and must not fail", err)
		}
		time.Sleep(2100 * time.Millisecond) // past short's 1s

		for _, f := range []struct {
			name   string
			url    string
			status int
		}{
			{"as signed", signed, http.StatusOK},
			{"tampered signature", tampered(signed), http.StatusForbidden},
			{"signature used for another key", otherKey, http.StatusForbidden},
			{"expired", short, http.StatusForbidden},
			{"missing key", missing, http.StatusNotFound},
		} {
			t.Run(f.name, func(t *testing.T) {
				status, body := fetch(t, srv, f.url)
				if status != f.status {
					t.Fatalf("GET = %d (%s), want %d", status, truncate(string(body), 300), f.status)
				}
				if f.status == http.StatusOK && !bytes.Equal(body, data) {
					t.Fatalf("GET returned %d bytes that differ from the %d put", len(body), len(data))
				}
			})
		}
	})
}

// The URL is signed locally, so these need no server: the endpoint is a
// closed port.
func TestPresignGetExpires(t *testing.T) {
	s := newStore(t, Config{
		S3Endpoint:    "http://127.0.0.1:1",
		S3PathStyle:   true,
		S3Credentials: credentials.NewStaticCredentialsProvider("AK", "SK", ""),
	})
	for _, tt := range []struct {
		ttl  time.Duration
		want string // X-Amz-Expires, in seconds
	}{
		{-time.Hour, "1"},
		{0, "1"},
		{time.Millisecond, "1"},
		{10 * time.Minute, "600"},
		{7 * 24 * time.Hour, "604800"},
		{30 * 24 * time.Hour, "604800"},
	} {
		t.Run(tt.ttl.String(), func(t *testing.T) {
			signed, err := s.PresignGet(context.Background(), MustParseLocation("s3://renders/a.jpg"), tt.ttl)
			if err != nil {
				t.Fatalf("PresignGet: %v", err)
			}
			u, err := url.Parse(signed)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Query().Get("X-Amz-Expires"); got != tt.want {
				t.Errorf("X-Amz-Expires = %q, want %q (%s)", got, tt.want, signed)
			}
		})
	}
}

func TestPresignGetRefuses(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, Config{
		FileRoots:      []string{root},
		AllowedBuckets: []string{"renders"},
		S3Endpoint:     "http://127.0.0.1:1",
		S3PathStyle:    true,
		S3Credentials:  credentials.NewStaticCredentialsProvider("AK", "SK", ""),
	})
	tests := []struct {
		name string
		loc  Location
		want error
	}{
		{"file inside the roots", MustParseLocation("file://" + root + "/a.jpg"), ErrInvalidArgument},
		{"https", MustParseLocation("https://img.example.com/a.jpg"), ErrInvalidArgument},
		{"file outside the roots", MustParseLocation("file:///etc/passwd"), ErrForbidden},
		{"bucket not allowed", MustParseLocation("s3://secrets/a.jpg"), ErrForbidden},
		{"hand-built traversal", Location{Scheme: SchemeS3, Bucket: "renders", Key: "../a.jpg"}, ErrInvalidLocation},
		{"zero location", Location{}, ErrInvalidLocation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signed, err := s.PresignGet(context.Background(), tt.loc, time.Minute)
			if !errors.Is(err, tt.want) || signed != "" {
				t.Fatalf("PresignGet = %q, %v; want %v", signed, err, tt.want)
			}
			if tt.want == ErrInvalidArgument && !strings.Contains(err.Error(), "s3://") {
				t.Errorf("the refusal does not say presigning is for s3:// only: %v", err)
			}
		})
	}
}
