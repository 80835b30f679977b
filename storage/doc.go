// Package storage reads render sources and writes render outputs by
// location: s3://bucket/key (aws-sdk-go-v2, AWS or any S3-compatible
// server), file:///abs/path (confined to configured roots, atomic writes)
// and, for sources only, https:// (and http:// when allowed) behind an
// SSRF guard.
//
// Every location is parsed and validated once (ParseLocation), then
// checked against the process's policy (Store.Check: file roots, bucket
// allow-list, URL scheme, port and literal addresses) before any I/O;
// the checks that need I/O (symlink resolution, DNS) run again where the
// I/O happens. Reads always have a byte cap.
//
// Errors are *Error values whose Code matches one of the sentinels
// (errors.Is(err, storage.ErrNotFound)...). ErrUnavailable is the only
// transient class; Permanent/IsPermanent tell a caller whether a retry can
// help, which is what decides between retrying a task and failing it.
package storage
