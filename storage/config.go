package storage

import (
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Defaults for the zero values of Config.
const (
	DefaultHTTPTimeout        = 30 * time.Second
	DefaultMaxRedirects       = 3
	DefaultRetries            = 5
	DefaultMultipartThreshold = 16 << 20
	// DefaultPartSize is the transfer manager's own default; S3 refuses
	// parts under 5 MiB (but the last).
	DefaultPartSize = 8 << 20
	minPartSize     = 5 << 20
	// DefaultMaxBytes is the cap Get applies when called with maxBytes <= 0,
	// so no caller can read without one by accident.
	DefaultMaxBytes = 256 << 20
)

// Config is everything a Store needs; the zero value refuses file://,
// allows any bucket through the SDK's default resolution, and allows
// https:// sources on ports 80 and 443 to public addresses only.
type Config struct {
	// FileRoots confines file:// sources and outputs: after cleaning and
	// resolving symlinks a path must lie inside one of them. Empty refuses
	// file:// altogether. Each root must be an existing directory.
	FileRoots []string
	// AllowedBuckets restricts s3:// to these buckets; empty allows any.
	AllowedBuckets []string
	// Reserved are prefixes (see ParsePrefix) no source or output may
	// touch, whatever the roots and buckets allow: the job journal, which
	// only its own store writes. A location is refused when it is a
	// reserved prefix, lies below one or is one's ancestor; file paths are
	// compared as written and with symlinks resolved. A reserved directory
	// inside a file root is carved out of it.
	Reserved []string

	// S3Endpoint overrides the endpoint ("" = AWS resolution, which also
	// honours AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL).
	S3Endpoint string
	// S3Region overrides the region ("" = AWS_REGION, the shared config,
	// and failing both us-east-1).
	S3Region    string
	S3PathStyle bool
	// S3CACertPEM adds a root CA for an S3-compatible server over HTTPS.
	S3CACertPEM []byte
	// S3Credentials overrides the SDK's default credential chain (env,
	// shared files, SSO, IMDS...). Tests and S3-compatible servers use
	// credentials.NewStaticCredentialsProvider; nil keeps the chain.
	S3Credentials aws.CredentialsProvider
	// Retries is the S3 attempt count of the SDK's standard retryer
	// (exponential backoff with jitter); 0 = DefaultRetries, 1 = no retry.
	Retries int
	// MultipartThreshold is the body size from which Put uploads in parts
	// (0 = DefaultMultipartThreshold); PartSize the part size (0 =
	// DefaultPartSize, at least 5 MiB).
	MultipartThreshold int64
	PartSize           int64

	// HTTPAllow lists CIDRs ("10.1.0.0/16", "127.0.0.1/32"), single IPs or
	// host names ("images.internal") exempt from the SSRF guard: their
	// addresses and any port are accepted.
	HTTPAllow []string
	// HTTPPorts are ports accepted for any host in addition to 80 and 443.
	HTTPPorts []int
	// AllowHTTP permits plain http:// sources; without it only https://.
	// Redirects from https to http are refused unless it is set as well.
	AllowHTTP bool
	// HTTPTimeout bounds a whole HTTP(S) fetch, body included
	// (0 = DefaultHTTPTimeout).
	HTTPTimeout time.Duration
	// MaxRedirects bounds redirects per fetch (0 = DefaultMaxRedirects,
	// negative = none followed).
	MaxRedirects int

	// Metrics counts failed operations (nil: not counted).
	Metrics *Metrics
	Logger  *slog.Logger
}

// fileRoot is a configured root in both spellings: as configured (for the
// lexical check of Check) and with symlinks resolved (opened with os.Root).
type fileRoot struct {
	given, resolved string
}

// reservedPrefix is a Reserved entry parsed; for file://, resolved is its
// path with the symlinks of its existing part resolved.
type reservedPrefix struct {
	Prefix
	resolved string
}

// allowList is HTTPAllow parsed.
type allowList struct {
	prefixes []netip.Prefix
	hosts    map[string]bool
}

func (a allowList) addr(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (a allowList) host(h string) bool {
	return a.hosts[strings.TrimSuffix(strings.ToLower(h), ".")]
}

// normalize validates cfg, applies defaults and resolves file roots. It
// touches the local filesystem (roots must exist) but never the network.
func (cfg Config) normalize() (Config, []fileRoot, []reservedPrefix, allowList, error) {
	if cfg.HTTPTimeout <= 0 {
		cfg.HTTPTimeout = DefaultHTTPTimeout
	}
	if cfg.MaxRedirects == 0 {
		cfg.MaxRedirects = DefaultMaxRedirects
	}
	if cfg.Retries <= 0 {
		cfg.Retries = DefaultRetries
	}
	if cfg.MultipartThreshold <= 0 {
		cfg.MultipartThreshold = DefaultMultipartThreshold
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < minPartSize {
		return cfg, nil, nil, allowList{}, fmt.Errorf("storage: part size %d below the S3 minimum of %d", cfg.PartSize, minPartSize)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}

	var roots []fileRoot
	for _, r := range cfg.FileRoots {
		if !filepath.IsAbs(r) {
			return cfg, nil, nil, allowList{}, fmt.Errorf("storage: file root %q is not an absolute path", r)
		}
		given := filepath.Clean(r)
		resolved, err := filepath.EvalSymlinks(given)
		if err != nil {
			return cfg, nil, nil, allowList{}, fmt.Errorf("storage: file root: %w", err)
		}
		if fi, err := os.Stat(resolved); err != nil || !fi.IsDir() {
			return cfg, nil, nil, allowList{}, fmt.Errorf("storage: file root %q is not a directory", r)
		}
		roots = append(roots, fileRoot{given: given, resolved: resolved})
	}

	var reserved []reservedPrefix
	for _, r := range cfg.Reserved {
		p, err := ParsePrefix(r)
		if err != nil {
			return cfg, nil, nil, allowList{}, fmt.Errorf("storage: reserved prefix: %w", err)
		}
		rp := reservedPrefix{Prefix: p}
		if p.Scheme == SchemeFile {
			if rp.resolved, err = resolvePath(p.Path); err != nil {
				return cfg, nil, nil, allowList{}, fmt.Errorf("storage: reserved prefix %q: %w", r, err)
			}
		}
		reserved = append(reserved, rp)
	}

	for _, b := range cfg.AllowedBuckets {
		if msg := checkBucket(b); msg != "" {
			return cfg, nil, nil, allowList{}, fmt.Errorf("storage: allowed bucket %q: %s", b, msg)
		}
	}

	if cfg.S3Endpoint != "" {
		u, err := url.Parse(cfg.S3Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, nil, nil, allowList{}, fmt.Errorf("storage: S3 endpoint %q: want http(s)://host[:port]", cfg.S3Endpoint)
		}
	}

	allow := allowList{hosts: map[string]bool{}}
	for _, a := range cfg.HTTPAllow {
		a = strings.TrimSpace(a)
		if p, err := netip.ParsePrefix(a); err == nil {
			allow.prefixes = append(allow.prefixes, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(a); err == nil {
			ip = ip.Unmap()
			allow.prefixes = append(allow.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		if a == "" || strings.ContainsAny(a, "/:@ ") {
			return cfg, nil, nil, allowList{}, fmt.Errorf("storage: HTTP allow entry %q: want a CIDR, an IP or a host name", a)
		}
		allow.hosts[strings.TrimSuffix(strings.ToLower(a), ".")] = true
	}
	for _, p := range cfg.HTTPPorts {
		if p < 1 || p > 65535 {
			return cfg, nil, nil, allowList{}, fmt.Errorf("storage: HTTP port %d out of range", p)
		}
	}
	return cfg, roots, reserved, allow, nil
}
