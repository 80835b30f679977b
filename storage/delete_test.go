package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Delete removes a file under a root, not what a symlink points to, is
// idempotent, and refuses what Put would refuse.
func TestFileDelete(t *testing.T) {
	s, root, outside := fileFixture(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		path    string
		wantErr error
		gone    string // a path that must no longer exist
		kept    string // a path that must still exist
	}{
		{"a file", filepath.Join(root, "in", "photo.jpg"), nil, filepath.Join(root, "in", "photo.jpg"), ""},
		{"already gone", filepath.Join(root, "in", "photo.jpg"), nil, "", ""},
		{"missing directory", filepath.Join(root, "nope", "x"), nil, "", ""},
		{"a symlink out of the root removes the link only", filepath.Join(root, "escape-file"), nil,
			filepath.Join(root, "escape-file"), filepath.Join(outside, "secret")},
		{"outside every root", filepath.Join(outside, "secret"), ErrForbidden, "", filepath.Join(outside, "secret")},
		{"through a symlinked directory out of the root", filepath.Join(root, "escape-dir", "secret"), ErrForbidden, "", filepath.Join(outside, "secret")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Delete(ctx, fileLoc(tt.path))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Delete(%s) = %v, want %v", tt.path, err, tt.wantErr)
			}
			if tt.gone != "" {
				if _, err := os.Lstat(tt.gone); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s still exists (%v)", tt.gone, err)
				}
			}
			if tt.kept != "" {
				if _, err := os.Stat(tt.kept); err != nil {
					t.Errorf("%s was removed: %v", tt.kept, err)
				}
			}
		})
	}
}
