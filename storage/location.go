package storage

import (
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Schemes a Location can have.
const (
	SchemeS3    = "s3"
	SchemeFile  = "file"
	SchemeHTTPS = "https"
	SchemeHTTP  = "http"
)

const (
	// MaxKeyBytes is S3's own limit; file paths get the same so that a key
	// valid on one backend is valid on the other.
	MaxKeyBytes = 1024
	// maxLocationBytes bounds the work done on hostile input before any
	// finer check runs. Long enough for a 1024-byte key or a signed URL.
	maxLocationBytes = 8192
)

// Location is a parsed source or output address. Only the fields of its
// scheme are set: Bucket and Key for s3, Path for file, URL for http(s).
// Raw is the address exactly as given, for messages and manifests.
type Location struct {
	Scheme      string
	Bucket, Key string
	Path        string
	URL         *url.URL
	Raw         string
}

// String is the canonical form of the location: scheme lowercased, file
// paths percent-encoded where needed, URL fragments dropped.
func (l Location) String() string {
	switch l.Scheme {
	case SchemeS3:
		return "s3://" + l.Bucket + "/" + l.Key
	case SchemeFile:
		return (&url.URL{Scheme: "file", Path: l.Path}).String()
	case SchemeHTTP, SchemeHTTPS:
		if l.URL != nil {
			return l.URL.String()
		}
	}
	return l.Raw
}

// ParseLocation parses and validates s3://bucket/key, file:///abs/path
// (file://localhost/abs/path too) and http(s)://host/path. It checks the
// address alone; whether this process may use it (file roots, bucket
// allow-list, SSRF guard) is Store.Check's job.
//
// S3 keys are taken literally (no percent-decoding, as the AWS CLI does);
// file paths are percent-decoded, as file URLs are, and validated after
// decoding so %2e%2e cannot smuggle a "..".
func ParseLocation(s string) (Location, error) {
	if s == "" {
		return Location{}, errorf(CodeInvalidLocation, s, "empty location")
	}
	if len(s) > maxLocationBytes {
		return Location{}, errorf(CodeInvalidLocation, s, "location longer than %d bytes", maxLocationBytes)
	}
	if msg := checkChars(s); msg != "" {
		return Location{}, errorf(CodeInvalidLocation, s, "%s", msg)
	}
	if strings.TrimSpace(s) != s {
		return Location{}, errorf(CodeInvalidLocation, s, "leading or trailing white space")
	}
	i := strings.Index(s, "://")
	if i <= 0 {
		return Location{}, errorf(CodeInvalidLocation, s, "not an absolute address: want s3://bucket/key, file:///path or https://host/path")
	}
	switch scheme := strings.ToLower(s[:i]); scheme {
	case SchemeS3:
		return parseS3(s, s[i+3:])
	case SchemeFile:
		return parseFile(s, s[i+3:])
	case SchemeHTTP, SchemeHTTPS:
		return parseHTTP(s)
	default:
		return Location{}, errorf(CodeInvalidLocation, s, "unsupported scheme %q: want s3, file, https or http", truncate(scheme, 32))
	}
}

// MustParseLocation is ParseLocation for constants in tests and defaults;
// it panics on error.
func MustParseLocation(s string) Location {
	l, err := ParseLocation(s)
	if err != nil {
		panic(err)
	}
	return l
}

// checkChars refuses what no backend should ever see: invalid UTF-8,
// control characters (NUL, CR/LF for header and log injection, C1) and
// backslashes (a path separator to Windows, some proxies and some S3
// gateways, so an alternative spelling of "..\").
func checkChars(s string) string {
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	for _, r := range s {
		switch {
		case r == 0:
			return "contains a NUL character"
		case unicode.IsControl(r):
			return "contains a control character"
		case r == '\\':
			return "contains a backslash"
		}
	}
	return ""
}

func parseS3(raw, rest string) (Location, error) {
	bucket, key, ok := strings.Cut(rest, "/")
	if !ok || key == "" {
		return Location{}, errorf(CodeInvalidLocation, raw, "missing key: want s3://bucket/key")
	}
	if msg := checkBucket(bucket); msg != "" {
		return Location{}, errorf(CodeInvalidLocation, raw, "bucket: %s", msg)
	}
	if msg := checkKey(key); msg != "" {
		return Location{}, errorf(CodeInvalidLocation, raw, "key: %s", msg)
	}
	return Location{Scheme: SchemeS3, Bucket: bucket, Key: key, Raw: raw}, nil
}

// checkBucket applies the S3 general purpose bucket naming rules. Strict
// names also keep virtual-host addressing and TLS wildcard certificates
// working, and rule out host-name tricks in the bucket part.
func checkBucket(b string) string {
	if len(b) < 3 || len(b) > 63 {
		return "must be 3 to 63 characters long"
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return "only lowercase letters, digits, '.' and '-' are allowed"
		}
	}
	if !isAlnum(b[0]) || !isAlnum(b[len(b)-1]) {
		return "must begin and end with a letter or digit"
	}
	if strings.Contains(b, "..") {
		return "must not contain \"..\""
	}
	if net.ParseIP(b) != nil {
		return "must not be formatted as an IP address"
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(b, p) {
			return "reserved prefix " + strconv.Quote(p)
		}
	}
	for _, sfx := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(b, sfx) {
			return "reserved suffix " + strconv.Quote(sfx)
		}
	}
	return ""
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// checkKey rejects keys that mean something else once mapped onto a
// filesystem (versitygw's posix backend, our own file backend, a sync to
// disk): empty or dot segments. Other characters S3 allows stay allowed.
func checkKey(k string) string {
	if len(k) > MaxKeyBytes {
		return "longer than " + strconv.Itoa(MaxKeyBytes) + " bytes"
	}
	return checkSegments(k)
}

func checkSegments(p string) string {
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			return "empty path segment (leading, trailing or double '/')"
		case ".", "..":
			return "\".\" and \"..\" segments are not allowed"
		}
	}
	return ""
}

func parseFile(raw, rest string) (Location, error) {
	host, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, path = rest[:i], rest[i:]
	}
	if host != "" && !strings.EqualFold(host, "localhost") {
		return Location{}, errorf(CodeInvalidLocation, raw, "file locations name no host: want file:///absolute/path")
	}
	if path == "" {
		return Location{}, errorf(CodeInvalidLocation, raw, "missing path: want file:///absolute/path")
	}
	if strings.ContainsAny(path, "?#") {
		return Location{}, errorf(CodeInvalidLocation, raw, "'?' and '#' must be percent-encoded in file locations")
	}
	p, err := url.PathUnescape(path)
	if err != nil {
		return Location{}, newError(CodeInvalidLocation, raw, "bad percent-encoding", err)
	}
	if msg := checkChars(p); msg != "" {
		return Location{}, errorf(CodeInvalidLocation, raw, "path %s", msg)
	}
	if len(p) > MaxKeyBytes+256 {
		return Location{}, errorf(CodeInvalidLocation, raw, "path longer than %d bytes", MaxKeyBytes+256)
	}
	if msg := checkSegments(p[1:]); msg != "" {
		return Location{}, errorf(CodeInvalidLocation, raw, "path: %s", msg)
	}
	return Location{Scheme: SchemeFile, Path: p, Raw: raw}, nil
}

func parseHTTP(raw string) (Location, error) {
	if strings.ContainsRune(raw, ' ') {
		return Location{}, errorf(CodeInvalidLocation, raw, "spaces must be percent-encoded in URLs")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Location{}, newError(CodeInvalidLocation, raw, "bad URL", unwrapURLError(err))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if msg := checkURL(u); msg != "" {
		return Location{}, errorf(CodeInvalidLocation, raw, "%s", msg)
	}
	// The fragment is never sent; dropping it keeps String() and logs
	// to what is actually fetched.
	u.Fragment, u.RawFragment = "", ""
	u.Host = strings.ToLower(u.Host)
	return Location{Scheme: u.Scheme, URL: u, Raw: raw}, nil
}

// checkURL is the syntax check shared by sources and redirect targets.
func checkURL(u *url.URL) string {
	switch {
	case u.Scheme != SchemeHTTP && u.Scheme != SchemeHTTPS:
		return "unsupported scheme " + strconv.Quote(truncate(u.Scheme, 32)) + ": want https or http"
	case u.Opaque != "":
		return "not a hierarchical URL"
	case u.User != nil:
		// Credentials in URLs end up in logs, manifests and Referer headers.
		return "credentials in URLs are not accepted"
	case u.Hostname() == "":
		return "missing host"
	case strings.Contains(u.Host, "%"):
		return "IPv6 zones are not accepted"
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "bad port " + strconv.Quote(truncate(p, 16))
		}
	}
	return ""
}

// unwrapURLError drops url.Error's Op and URL: the location is already in
// our message, and the URL text would repeat possibly hostile input.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
