package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/renderfarm/renderfarm/storage"
	"golang.org/x/sync/errgroup"
)

// ErrNoManifest means no manifest for the task was found where the journal
// looked: the task has not run yet, or its id is unknown.
var ErrNoManifest = errors.New("job: no manifest for this task")

// MaxManifestBytes bounds a manifest read; real ones are a few KiB.
const MaxManifestBytes = 1 << 20

// Journal reads the manifests workers write, for the web tier's status
// lookups and its status page. A manifest's path holds the day its attempt
// started, not the day the task was sent, so a lookup by id searches a
// range of days and keeps the newest attempt's record.
type Journal struct {
	Store  *storage.Store
	Prefix string // as Config.Journal: s3://bucket/_renderfarm/jobs/ or file:///...
	// Days is how many days a lookup searches (default 7): for ids that
	// carry their send time (UUIDv7, as Enqueue makes), the days from then
	// on; for others (a Python client's UUIDv4), the days back from today.
	Days int
	Now  func() time.Time // default time.Now
}

func (j *Journal) now() time.Time {
	if j.Now != nil {
		return j.Now().UTC()
	}
	return time.Now().UTC()
}

// SearchDays is Days with its default.
func (j *Journal) SearchDays() int {
	if j.Days > 0 {
		return j.Days
	}
	return 7
}

// IDTime is the send time carried by a task id that Enqueue made (a
// UUIDv7); ok is false for any other id.
func IDTime(id string) (t time.Time, ok bool) {
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 || len(id) != 36 {
		return time.Time{}, false
	}
	sec, nsec := u.Time().UnixTime()
	return time.Unix(sec, nsec).UTC(), true
}

// Find returns the newest manifest of the task, or ErrNoManifest.
func (j *Journal) Find(ctx context.Context, id string) (*Manifest, error) {
	today := day(j.now())
	var days []time.Time
	if sent, ok := IDTime(id); ok {
		for d := day(sent); !d.After(today) && len(days) < j.SearchDays(); d = d.AddDate(0, 0, 1) {
			days = append(days, d)
		}
	} else {
		for i := range j.SearchDays() {
			days = append(days, today.AddDate(0, 0, -i))
		}
	}
	found := make([]*Manifest, len(days))
	g, gctx := errgroup.WithContext(ctx)
	for i, d := range days {
		g.Go(func() error {
			m, err := j.read(gctx, ManifestLocation(j.Prefix, id, d))
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			found[i] = m
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var newest *Manifest
	for _, m := range found {
		if m != nil && m.TaskID == id && (newest == nil || m.Started.After(newest.Started)) {
			newest = m
		}
	}
	if newest == nil {
		return nil, ErrNoManifest
	}
	return newest, nil
}

// Recent returns up to n manifests of today and yesterday (UTC), the most
// recently written first. A day holding more than scan manifests is read
// only in part: listings come in key order, not time order.
func (j *Journal) Recent(ctx context.Context, n, scan int) ([]*Manifest, error) {
	today := day(j.now())
	var objs []storage.Object
	for _, d := range []time.Time{today, today.AddDate(0, 0, -1)} {
		dir, err := storage.ParseDirLocation(j.Prefix + d.Format("2006/01/02") + "/")
		if err != nil {
			return nil, err
		}
		got, _, err := j.Store.List(ctx, dir, scan)
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	sort.Slice(objs, func(a, b int) bool { return objs[a].Modified.After(objs[b].Modified) })
	var out []*Manifest
	// Read the newest n; whatever is not a manifest (or is gone since the
	// listing) makes room for the next ones.
	for len(out) < n && len(objs) > 0 {
		batch := objs[:min(n-len(out), len(objs))]
		objs = objs[len(batch):]
		ms := make([]*Manifest, len(batch))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for i, o := range batch {
			g.Go(func() error {
				m, err := j.read(gctx, o.Location.String())
				if errors.Is(err, storage.ErrNotFound) || errors.Is(err, errNotManifest) {
					return nil
				}
				ms[i] = m
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		for _, m := range ms {
			if m != nil {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

var errNotManifest = errors.New("job: not a manifest")

func (j *Journal) read(ctx context.Context, raw string) (*Manifest, error) {
	loc, err := storage.ParseLocation(raw)
	if err != nil {
		return nil, err
	}
	data, err := j.Store.Get(ctx, loc, MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil || m.TaskID == "" {
		return nil, fmt.Errorf("%s: %w", raw, errNotManifest)
	}
	return &m, nil
}

func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
