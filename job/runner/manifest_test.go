package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/renderfarm/renderfarm/job"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/renderfarm/renderfarm/storage"
)

// A manifest is never replaced by an older attempt's, on file:// and on S3
// (versitygw), whichever order the attempts finish in, concurrently too.
func TestManifestKeepsTheNewestAttempt(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		store, err := storage.New(context.Background(), storage.Config{FileRoots: []string{dir}})
		if err != nil {
			t.Fatal(err)
		}
		checkManifestOrder(t, store, "file://"+dir+"/")
	})
	t.Run("s3", func(t *testing.T) {
		srv := testenv.S3(t, false)
		srv.CreateBucket(t, "journal")
		store, err := storage.New(context.Background(), storage.Config{
			S3Endpoint: srv.Endpoint, S3Region: srv.Region, S3PathStyle: true,
			S3Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		})
		if err != nil {
			t.Fatal(err)
		}
		checkManifestOrder(t, store, "s3://journal/jobs/")
	})
}

func checkManifestOrder(t *testing.T, store *storage.Store, journal string) {
	r := &Runner{cfg: Config{JournalStore: store, Journal: journal, Logger: slog.Default()}}
	ctx := context.Background()
	day := time.Now().UTC().Truncate(time.Hour)
	stored := func(id string) job.Manifest {
		t.Helper()
		data, err := store.Get(ctx, storage.MustParseLocation(job.ManifestLocation(journal, id, day)), 0)
		if err != nil {
			t.Fatal(err)
		}
		var m job.Manifest
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	write := func(m *job.Manifest) {
		t.Helper()
		if err := r.writeManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	// A redelivered attempt (started later) wrote first; the stale one
	// finishing afterwards must leave it.
	newer := &job.Manifest{TaskID: "t1", Status: "SUCCESS", Attempts: 1, Worker: "b", Started: day.Add(2 * time.Second)}
	stale := &job.Manifest{TaskID: "t1", Status: "SUCCESS", Attempts: 1, Worker: "a", Started: day.Add(time.Second)}
	write(newer)
	write(stale)
	if got := stored("t1"); got.Worker != "b" {
		t.Errorf("the stale attempt replaced the newer manifest: %+v", got)
	}
	// A retry (one more attempt) replaces it even if its clock is behind.
	retry := &job.Manifest{TaskID: "t1", Status: "FAILURE", Attempts: 2, Worker: "c", Started: day.Add(1500 * time.Millisecond)}
	write(retry)
	if got := stored("t1"); got.Worker != "c" {
		t.Errorf("a later retry did not replace the manifest: %+v", got)
	}

	// A replay under the same id, started after the last attempt finished,
	// is recorded though it counts its attempts from one again.
	failed := &job.Manifest{TaskID: "t3", Status: "FAILURE", Attempts: 5, Worker: "d", Started: day, Finished: day.Add(time.Second)}
	replay := &job.Manifest{TaskID: "t3", Status: "SUCCESS", Attempts: 1, Worker: "e", Started: day.Add(time.Minute)}
	write(failed)
	write(replay)
	if got := stored("t3"); got.Worker != "e" {
		t.Errorf("a same-id replay did not replace the failed run's manifest: %+v", got)
	}

	// Many attempts finishing at once: the latest start wins, whatever
	// order the writes land in.
	const n = 6
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &job.Manifest{TaskID: "t2", Attempts: 1, Worker: fmt.Sprint(i), Started: day.Add(time.Duration(i) * time.Millisecond)}
			if err := r.writeManifest(ctx, m); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := stored("t2"); got.Worker != fmt.Sprint(n-1) {
		t.Errorf("after %d concurrent writes the manifest is attempt %s's, want %d's", n, got.Worker, n-1)
	}
}
