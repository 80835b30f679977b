package job

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/google/uuid"
	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/storage"
)

// v7At is a UUIDv7 carrying t, as Enqueue would have made at t.
func v7At(t time.Time) string {
	u := uuid.Must(uuid.NewV7())
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(u[:6], ms[2:])
	return u.String()
}

func TestJournal(t *testing.T) {
	dir := t.TempDir()
	store, err := storage.New(context.Background(), storage.Config{FileRoots: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)
	j := &Journal{Store: store, Prefix: "file://" + dir + "/", Now: func() time.Time { return now }}
	days := func(n int) time.Time { return now.AddDate(0, 0, -n) }
	put := func(id string, status Status, started time.Time, modified time.Time) {
		t.Helper()
		putManifest(t, j, &Manifest{TaskID: id, Status: status, Started: started}, modified)
	}

	retried := v7At(days(2))
	put(retried, "RETRY", days(2), days(2))
	put(retried, "SUCCESS", days(1), days(1)) // the retry ran the next day
	python := uuid.NewString()                // a Python client's id carries no time
	put(python, "FAILURE", days(3), days(3))
	old := uuid.NewString()
	put(old, "SUCCESS", days(8), days(8)) // beyond the 7 days searched
	lateV7 := v7At(days(10))
	put(lateV7, "SUCCESS", days(10).AddDate(0, 0, 6), days(4)) // ran 6 days after it was sent

	for _, tc := range []struct {
		name, id, status string
	}{
		{"the newest attempt wins", retried, "SUCCESS"},
		{"a UUIDv4 is searched back from today", python, "FAILURE"},
		{"a UUIDv4 beyond the window", old, ""},
		{"a UUIDv7 is searched from its day on", lateV7, "SUCCESS"},
		{"never ran", v7At(now), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := j.Find(context.Background(), tc.id)
			switch {
			case tc.status == "" && !errors.Is(err, ErrNoManifest):
				t.Fatalf("Find = %v, %v; want ErrNoManifest", m, err)
			case tc.status != "" && (err != nil || string(m.Status) != tc.status || m.TaskID != tc.id):
				t.Fatalf("Find = %+v, %v; want %s", m, err, tc.status)
			}
		})
	}

	// Recent: today's and yesterday's, newest written first, junk skipped.
	a, b, c := uuid.NewString(), uuid.NewString(), uuid.NewString()
	put(a, "SUCCESS", now, now.Add(-3*time.Hour))
	put(b, "FAILURE", now, now.Add(-time.Hour))
	put(c, "SUCCESS", days(1), days(1).Add(time.Hour))
	junk := filepath.Join(dir, now.Format("2006/01/02"), "notes.json")
	if err := os.WriteFile(junk, []byte("not a manifest"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(junk, now, now)
	ms, err := j.Recent(context.Background(), 3, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.TaskID)
	}
	// junk is newest but is no manifest; of the rest: b, a, then c (a day
	// old, later in the day than retried's record).
	if want := []string{b, a, c}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Recent = %v, want %v", got, want)
	}
}

// putManifest writes m where a worker would, on a file:// journal, with
// its modification time set to modified.
func putManifest(t *testing.T, j *Journal, m *Manifest, modified time.Time) {
	t.Helper()
	data, _ := json.Marshal(m)
	p := strings.TrimPrefix(ManifestLocation(j.Prefix, m.TaskID, m.Started), "file://")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, modified, modified); err != nil {
		t.Fatal(err)
	}
}

// Select reads the days the window covers, judges each task by its newest
// attempt, and leaves out what finished before the window.
// On file:// and on S3 (versitygw), as the journal lives in production.
func TestJournalSelect(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		store, err := storage.New(context.Background(), storage.Config{FileRoots: []string{dir}})
		if err != nil {
			t.Fatal(err)
		}
		checkSelect(t, store, "file://"+dir+"/")
	})
	t.Run("s3", func(t *testing.T) {
		srv := testenv.S3(t, false)
		srv.CreateBucket(t, "media")
		store, err := storage.New(context.Background(), storage.Config{
			S3Endpoint: srv.Endpoint, S3Region: srv.Region, S3PathStyle: true,
			S3Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		})
		if err != nil {
			t.Fatal(err)
		}
		checkSelect(t, store, "s3://media/_renderfarm/jobs/")
	})
}

func checkSelect(t *testing.T, store *storage.Store, prefix string) {
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	j := &Journal{Store: store, Prefix: prefix, Now: func() time.Time { return now }}
	rec := func(id string, status Status, started time.Time, req string) {
		t.Helper()
		m := &Manifest{TaskID: id, Status: status, Started: started, Finished: started.Add(time.Second),
			Request: &Request{}}
		m.Request.Recipe = req
		if status == StatusFailure {
			m.Error = &ManifestError{Code: "not_found", Message: "not_found: s3://up/" + id + ".jpg: no such object"}
		}
		data, _ := json.Marshal(m)
		if _, err := store.Put(context.Background(), storage.MustParseLocation(ManifestLocation(prefix, id, started)), data, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rec("failed-yesterday", StatusFailure, now.Add(-2*time.Hour), "gallery") // 23:00 the day before
	rec("failed-today", StatusFailure, now.Add(-10*time.Minute), "default")
	rec("failed-long-ago", StatusFailure, now.Add(-30*time.Hour), "gallery")
	rec("recovered", StatusFailure, now.Add(-3*time.Hour), "gallery")
	rec("recovered", StatusSuccess, now.Add(-5*time.Minute), "gallery") // the retry, the next day
	rec("fine", StatusSuccess, now.Add(-time.Hour), "gallery")

	failed := func(m *Manifest) bool { return m.Status == StatusFailure }
	for _, tc := range []struct {
		name  string
		since time.Duration
		keep  func(*Manifest) bool
		want  string
	}{
		{"failed in the last 4h, across midnight", 4 * time.Hour, failed, "failed-yesterday,failed-today"},
		{"a window within today", time.Hour, failed, "failed-today"},
		{"every status", 4 * time.Hour, nil, "failed-yesterday,fine,failed-today,recovered"},
		{"by recipe", 48 * time.Hour, func(m *Manifest) bool { return failed(m) && m.Request.Recipe == "gallery" }, "failed-long-ago,failed-yesterday"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := j.Select(context.Background(), now.Add(-tc.since), 100, tc.keep)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.TaskID)
			}
			if strings.Join(got, ",") != tc.want {
				t.Errorf("Select = %v, want %s", got, tc.want)
			}
		})
	}
	if _, err := j.Select(context.Background(), now.Add(-4*time.Hour), 1, nil); !errors.Is(err, ErrTooManyManifests) {
		t.Errorf("a day over the scan limit: %v, want ErrTooManyManifests", err)
	}
}
