package storage

import (
	"context"
	"errors"
	"testing"
)

func MustParsePrefix(s string) Prefix {
	p, err := ParsePrefix(s)
	if err != nil {
		panic(err)
	}
	return p
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"s3://media/_renderfarm/jobs/", "s3://media/_renderfarm/jobs/", true},
		{"S3://media/jobs/", "s3://media/jobs/", true},
		{"s3://media/", "s3://media/", true},
		{"file:///var/lib/renderfarm/jobs/", "file:///var/lib/renderfarm/jobs/", true},
		{"file://localhost/srv/j/", "file:///srv/j/", true},
		{"s3://media/jobs", "", false},           // no trailing '/'
		{"s3://media/a//jobs/", "", false},       // empty segment
		{"s3://media//", "", false},              // empty key segment
		{"s3://Media/jobs/", "", false},          // bucket case
		{"file:///srv/../etc/", "", false},       // dot segment
		{"file:///srv/j//", "", false},           // double slash
		{"https://example.com/jobs/", "", false}, // not a store
		{"file://host/srv/j/", "", false},        // a host
		{"s3://a/", "", false},                   // bucket too short
		{"", "", false},
	}
	for _, tt := range tests {
		p, err := ParsePrefix(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParsePrefix(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && p.String() != tt.want {
			t.Errorf("ParsePrefix(%q) = %s, want %s", tt.in, p, tt.want)
		}
	}
	p := MustParsePrefix("s3://media/_renderfarm/jobs/")
	if loc, err := p.Location("2026/12/02/x.json"); err != nil || loc.Key != "_renderfarm/jobs/2026/12/02/x.json" {
		t.Errorf("Location = %+v, %v", loc, err)
	}
	if _, err := p.Location("../x.json"); err == nil {
		t.Error("Location accepted a dot segment")
	}
}

// On S3 the journal's bucket and key prefix are refused in every
// spelling a request can write, and nothing reaches the server.
func TestReservedS3(t *testing.T) {
	s, hits := tripwireStore(t, Config{Reserved: []string{"s3://media/_renderfarm/jobs/"}})
	ctx := context.Background()
	for _, raw := range []string{
		"s3://media/_renderfarm/jobs/2026/12/02/t1.json",
		"s3://media/_renderfarm/jobs/2027",
		"s3://media/_renderfarm/jobs",
		"s3://media/_renderfarm",
		"S3://media/_renderfarm/jobs/x.json",
	} {
		loc, err := ParseLocation(raw)
		if err != nil {
			t.Fatalf("ParseLocation(%q): %v", raw, err)
		}
		if err := s.Check(loc); !errors.Is(err, ErrForbidden) {
			t.Errorf("Check(%s) = %v, want ErrForbidden", raw, err)
		}
		if _, err := s.Put(ctx, loc, []byte("x"), PutOptions{}); !errors.Is(err, ErrForbidden) {
			t.Errorf("Put(%s) = %v, want ErrForbidden", raw, err)
		}
		if _, err := s.Get(ctx, loc, 100); !errors.Is(err, ErrForbidden) {
			t.Errorf("Get(%s) = %v, want ErrForbidden", raw, err)
		}
	}
	// Other spellings do not even parse.
	for _, raw := range []string{"s3://MEDIA/_renderfarm/jobs/x", "s3://media/_renderfarm//jobs/x", "s3://media//_renderfarm/jobs/x", "s3://media/_renderfarm/./jobs/x"} {
		if _, err := ParseLocation(raw); err == nil {
			t.Errorf("ParseLocation(%q) accepted", raw)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the server for the journal", n)
	}
	// Neighbours stay usable: they reach the tripwire.
	for _, raw := range []string{"s3://media/_renderfarm/jobs2/x", "s3://media/photos/x.jpg", "s3://other/_renderfarm/jobs/x"} {
		if err := s.Check(MustParseLocation(raw)); err != nil {
			t.Errorf("Check(%s) = %v", raw, err)
		}
	}
	if s.Reaches(MustParsePrefix("s3://media/_renderfarm/jobs/")) || s.Reaches(MustParsePrefix("s3://media/_renderfarm/jobs/2026/")) {
		t.Error("Reaches says requests reach the journal")
	}
	if !s.Reaches(MustParsePrefix("s3://media/_renderfarm/")) || !s.Reaches(MustParsePrefix("s3://other/_renderfarm/jobs/")) {
		t.Error("Reaches misses what requests can reach")
	}
	limited := newStore(t, Config{AllowedBuckets: []string{"renders"}})
	if limited.Reaches(MustParsePrefix("s3://media/_renderfarm/jobs/")) {
		t.Error("Reaches claims a bucket not allowed")
	}
}
