package storage

import (
	"errors"
	"strings"
)

// Prefix is a parsed location prefix: a directory for file://, a bucket
// and key prefix for s3://. Written with a trailing '/', as
// s3://bucket/_renderfarm/jobs/ or file:///var/lib/renderfarm/jobs/;
// s3://bucket/ is the whole bucket. Key and Path keep no trailing '/'.
type Prefix struct {
	Scheme string
	Bucket string
	Key    string // "" for a whole bucket
	Path   string
	Raw    string
}

// ParsePrefix parses a prefix with the rules of ParseLocation for the
// part before the trailing '/', so a prefix is valid exactly when the
// locations below it can be.
func ParsePrefix(s string) (Prefix, error) {
	trimmed, ok := strings.CutSuffix(s, "/")
	if !ok {
		return Prefix{}, errorf(CodeInvalidLocation, s, "a prefix ends with '/'")
	}
	if rest, ok := strings.CutPrefix(strings.ToLower(trimmed), "s3://"); ok && !strings.Contains(rest, "/") {
		// A whole bucket: ParseLocation wants a key, the bucket rules are
		// the same.
		bucket := trimmed[len("s3://"):]
		if msg := checkBucket(bucket); msg != "" {
			return Prefix{}, errorf(CodeInvalidLocation, s, "bucket: %s", msg)
		}
		return Prefix{Scheme: SchemeS3, Bucket: bucket, Raw: s}, nil
	}
	loc, err := ParseLocation(trimmed)
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			se.Location = s // name what the caller gave, not our trimmed copy
		}
		return Prefix{}, err
	}
	switch loc.Scheme {
	case SchemeS3:
		return Prefix{Scheme: SchemeS3, Bucket: loc.Bucket, Key: loc.Key, Raw: s}, nil
	case SchemeFile:
		return Prefix{Scheme: SchemeFile, Path: loc.Path, Raw: s}, nil
	}
	return Prefix{}, errorf(CodeInvalidLocation, s, "a prefix is s3:// or file://, not %s://", loc.Scheme)
}

// String is the canonical form, with its trailing '/'.
func (p Prefix) String() string {
	switch p.Scheme {
	case SchemeS3:
		if p.Key == "" {
			return "s3://" + p.Bucket + "/"
		}
		return "s3://" + p.Bucket + "/" + p.Key + "/"
	case SchemeFile:
		return Location{Scheme: SchemeFile, Path: p.Path}.String() + "/"
	}
	return p.Raw
}

// Location is the location rel (a relative key or path, '/'-separated)
// below the prefix, validated as ParseLocation validates.
func (p Prefix) Location(rel string) (Location, error) {
	switch p.Scheme {
	case SchemeS3:
		key := rel
		if p.Key != "" {
			key = p.Key + "/" + rel
		}
		return parseS3("s3://"+p.Bucket+"/"+key, p.Bucket+"/"+key)
	case SchemeFile:
		return ParseLocation(Location{Scheme: SchemeFile, Path: p.Path + "/" + rel}.String())
	}
	return Location{}, errorf(CodeInvalidLocation, p.Raw, "not a prefix")
}

// Overlaps says whether loc is the prefix itself, lies below it, or is one
// of its ancestors, compared lexically. An ancestor counts: an object or
// file written there would stand where the prefix's directories must go
// (on a file system, or an S3 server with a POSIX backend).
func (p Prefix) Overlaps(loc Location) bool {
	switch {
	case p.Scheme == SchemeS3 && loc.Scheme == SchemeS3:
		return loc.Bucket == p.Bucket && overlaps(p.Key, loc.Key)
	case p.Scheme == SchemeFile && loc.Scheme == SchemeFile:
		return overlapsPath(p.Path, loc.Path)
	}
	return false
}

// overlaps compares '/'-separated keys segment-wise; base "" is a whole
// bucket, which every key is below.
func overlaps(base, key string) bool {
	if base == "" || key == base {
		return true
	}
	return strings.HasPrefix(key, base+"/") || strings.HasPrefix(base, key+"/")
}

// overlapsPath is overlaps for clean absolute paths.
func overlapsPath(base, p string) bool {
	if _, ok := within(base, p); ok {
		return true
	}
	_, ok := within(p, base)
	return ok
}
