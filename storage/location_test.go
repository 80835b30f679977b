package storage

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	long := strings.Repeat("k", MaxKeyBytes)
	tests := []struct {
		in   string
		want Location // Raw is checked separately; URL via String()
		str  string   // String() if the location is valid
	}{
		{in: "s3://renders/out/photo.jpg", want: Location{Scheme: "s3", Bucket: "renders", Key: "out/photo.jpg"}},
		{in: "S3://renders/a b/ü.jpg", want: Location{Scheme: "s3", Bucket: "renders", Key: "a b/ü.jpg"}, str: "s3://renders/a b/ü.jpg"},
		{in: "s3://my.bucket-1/k?v=1#x", want: Location{Scheme: "s3", Bucket: "my.bucket-1", Key: "k?v=1#x"}},
		{in: "s3://b12/a..b/c...d", want: Location{Scheme: "s3", Bucket: "b12", Key: "a..b/c...d"}},
		{in: "s3://b12/" + long, want: Location{Scheme: "s3", Bucket: "b12", Key: long}},
		{in: "file:///srv/renders/out.jpg", want: Location{Scheme: "file", Path: "/srv/renders/out.jpg"}},
		{in: "file://localhost/srv/x", want: Location{Scheme: "file", Path: "/srv/x"}, str: "file:///srv/x"},
		{in: "file:///srv/a%20b.jpg", want: Location{Scheme: "file", Path: "/srv/a b.jpg"}, str: "file:///srv/a%20b.jpg"},
		{in: "https://img.example.com/a/b.jpg?x=1#frag", want: Location{Scheme: "https"}, str: "https://img.example.com/a/b.jpg?x=1"},
		{in: "HTTP://Example.COM:8080/x", want: Location{Scheme: "http"}, str: "http://example.com:8080/x"},
		{in: "https://[2001:4860::1]/x", want: Location{Scheme: "https"}},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 40)], func(t *testing.T) {
			got, err := ParseLocation(tt.in)
			if err != nil {
				t.Fatalf("ParseLocation(%q): %v", tt.in, err)
			}
			if got.Raw != tt.in {
				t.Errorf("Raw = %q, want the input", got.Raw)
			}
			if got.Scheme != tt.want.Scheme || got.Bucket != tt.want.Bucket || got.Key != tt.want.Key || got.Path != tt.want.Path {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if (got.URL != nil) != (got.Scheme == "http" || got.Scheme == "https") {
				t.Errorf("URL = %v for scheme %s", got.URL, got.Scheme)
			}
			str := tt.str
			if str == "" {
				str = tt.in
			}
			if got.String() != str {
				t.Errorf("String() = %q, want %q", got.String(), str)
			}
			// The canonical form parses to the same location.
			again, err := ParseLocation(got.String())
			if err != nil || again.String() != got.String() {
				t.Errorf("String() does not round-trip: %q, %v", again.String(), err)
			}
		})
	}
}

func TestParseLocationRejects(t *testing.T) {
	tests := []struct{ name, in, msg string }{
		{"empty", "", "empty"},
		{"no scheme", "/etc/passwd", "absolute address"},
		{"relative", "photo.jpg", "absolute address"},
		{"file without slashes", "file:relative/x", "absolute address"},
		{"gopher", "gopher://example.com/", "unsupported scheme"},
		{"ftp", "ftp://example.com/x", "unsupported scheme"},
		{"javascript", "javascript://x", "unsupported scheme"},
		{"s3 dotdot", "s3://b12/../k", "segments"},
		{"s3 dotdot inside", "s3://b12/a/../../k", "segments"},
		{"s3 dot", "s3://b12/./k", "segments"},
		{"s3 trailing dotdot", "s3://b12/a/..", "segments"},
		{"s3 double slash", "s3://b12//k", "empty path segment"},
		{"s3 inner double slash", "s3://b12/a//k", "empty path segment"},
		{"s3 trailing slash", "s3://b12/dir/", "empty path segment"},
		{"s3 no key", "s3://b12", "missing key"},
		{"s3 empty key", "s3://b12/", "missing key"},
		{"s3 no bucket", "s3:///k", "bucket"},
		{"s3 uppercase bucket", "s3://B_ad/k", "bucket"},
		{"s3 underscore bucket", "s3://b_ad/k", "bucket"},
		{"s3 short bucket", "s3://ab/k", "3 to 63"},
		{"s3 long bucket", "s3://" + strings.Repeat("b", 64) + "/k", "3 to 63"},
		{"s3 bucket dash edge", "s3://-bucket/k", "begin and end"},
		{"s3 bucket double dot", "s3://a..b/k", "bucket"},
		{"s3 bucket IP", "s3://192.168.1.1/k", "IP address"},
		{"s3 bucket xn--", "s3://xn--bucket/k", "reserved prefix"},
		{"s3 bucket alias", "s3://bucket-s3alias/k", "reserved suffix"},
		{"s3 key NUL", "s3://b12/a\x00b", "NUL"},
		{"s3 key CRLF", "s3://b12/a\r\nX-Injected: 1", "control"},
		{"s3 key tab", "s3://b12/a\tb", "control"},
		{"s3 key C1", "s3://b12/a\u0085b", "control"},
		{"s3 key DEL", "s3://b12/a\x7fb", "control"},
		{"s3 key backslash", `s3://b12/a\..\k`, "backslash"},
		{"s3 key invalid utf8", "s3://b12/a\xffb", "UTF-8"},
		{"s3 key too long", "s3://b12/" + strings.Repeat("k", MaxKeyBytes+1), "longer than"},
		{"whitespace", " s3://b12/k", "white space"},
		{"huge", "s3://b12/" + strings.Repeat("k/", 5000), "longer than"},
		{"file host", "file://host/x", "no host"},
		{"file host evil", "file://evil.example.com/etc/passwd", "no host"},
		{"file dotdot", "file:///root/../etc/passwd", "segments"},
		{"file encoded dotdot", "file:///root/%2e%2e/etc/passwd", "segments"},
		{"file encoded slash dotdot", "file:///root/..%2fetc", "segments"},
		{"file encoded NUL", "file:///root/a%00b", "NUL"},
		{"file encoded newline", "file:///root/a%0ab", "control"},
		{"file encoded backslash", "file:///root/a%5c..%5cb", "backslash"},
		{"file bad escape", "file:///root/%zz", "percent-encoding"},
		{"file query", "file:///root/a?b", "percent-encoded"},
		{"file trailing slash", "file:///root/dir/", "empty path segment"},
		{"file double slash", "file:///root//x", "empty path segment"},
		{"file root only", "file:///", "empty path segment"},
		{"file no path", "file://", "missing path"},
		{"https userinfo", "https://user:pass@host.example/", "credentials"},
		{"https user only", "https://user@host.example/", "credentials"},
		{"https no host", "https:///path", "missing host"},
		{"https opaque-ish", "https:foo", "absolute address"},
		{"https bad port", "https://host.example:99999/", "port"},
		{"https zone", "https://[fe80::1%25eth0]/", "zone"},
		{"https space", "https://host.example/a b", "percent-encoded"},
		{"https backslash", `https://host.example\@evil.example/`, "backslash"},
		{"https CRLF", "https://host.example/\r\nHost: evil", "control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLocation(tt.in)
			if !errors.Is(err, ErrInvalidLocation) {
				t.Fatalf("ParseLocation(%q) = %v, want ErrInvalidLocation", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
			var se *Error
			if !errors.As(err, &se) || !se.Permanent() || se.Location != tt.in {
				t.Errorf("want a permanent *Error carrying the input, got %#v", err)
			}
		})
	}
}

// FuzzParseLocation: whatever is accepted has no traversal, control
// characters or empty segments, and its canonical form parses back to the
// same thing.
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{"s3://b12/k", "file:///a/b", "https://h.example/x?y", "s3://b12/a/../k", "file:///a/%2e%2e/b", "http://[::1]:80/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLocation(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidLocation) {
				t.Fatalf("error of the wrong class: %v", err)
			}
			return
		}
		var p string
		switch l.Scheme {
		case "s3":
			p = l.Key
		case "file":
			p = l.Path[1:]
		case "http", "https":
			if l.URL == nil || l.URL.User != nil || l.URL.Host == "" {
				t.Fatalf("bad URL accepted: %q", s)
			}
			return
		default:
			t.Fatalf("scheme %q accepted", l.Scheme)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("segment %q accepted in %q", seg, s)
			}
		}
		if checkChars(p) != "" {
			t.Fatalf("bad characters accepted in %q", s)
		}
		again, err := ParseLocation(l.String())
		if err != nil || again.Bucket != l.Bucket || again.Key != l.Key || again.Path != l.Path {
			t.Fatalf("%q: canonical %q parses to %+v, %v", s, l.String(), again, err)
		}
	})
}
