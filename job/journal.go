package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
			m, err := j.Read(gctx, ManifestLocation(j.Prefix, id, d))
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

// dayPrefix is where the manifests of tasks started on day d are.
func (j *Journal) dayPrefix(d time.Time) string { return j.Prefix + d.Format("2006/01/02") + "/" }

// listDay lists up to scan of day d's manifests, and whether there were more.
func (j *Journal) listDay(ctx context.Context, d time.Time, scan int) ([]storage.Object, bool, error) {
	dir, err := storage.ParseDirLocation(j.dayPrefix(d))
	if err != nil {
		return nil, false, err
	}
	return j.Store.List(ctx, dir, scan)
}

// Recent returns up to n manifests of today and yesterday (UTC), the most
// recently written first. A day holding more than scan manifests is read
// only in part: listings come in key order, not time order.
func (j *Journal) Recent(ctx context.Context, n, scan int) ([]*Manifest, error) {
	today := day(j.now())
	var objs []storage.Object
	for _, d := range []time.Time{today, today.AddDate(0, 0, -1)} {
		got, _, err := j.listDay(ctx, d, scan)
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
		ms, err := j.readAll(ctx, batch)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

// readAll reads the manifests of a listing, a few at once, leaving out
// whatever is not a manifest or is gone since the listing.
func (j *Journal) readAll(ctx context.Context, objs []storage.Object) ([]*Manifest, error) {
	ms := make([]*Manifest, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, o := range objs {
		g.Go(func() error {
			m, err := j.Read(gctx, o.Location.String())
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
	return slices.DeleteFunc(ms, func(m *Manifest) bool { return m == nil }), nil
}

// ErrTooManyManifests means a day holds more manifests than a selection
// may read, so its answer would be incomplete.
var ErrTooManyManifests = errors.New("job: too many manifests in a day to select from")

// Select returns the newest manifest of each task recorded since then
// (finished at or after it; started, for a record with no finish time)
// that keep accepts (nil: every one), oldest first. It reads every
// manifest of the days from since's to today: a retry recorded on a later
// day than its first attempt replaces it before keep sees it, so a task
// that failed and then succeeded is not selected as failed. A day holding
// more than scan manifests is ErrTooManyManifests rather than a silent
// part of the answer.
func (j *Journal) Select(ctx context.Context, since time.Time, scan int, keep func(*Manifest) bool) ([]*Manifest, error) {
	var objs []storage.Object
	for d := day(since); !d.After(day(j.now())); d = d.AddDate(0, 0, 1) {
		got, truncated, err := j.listDay(ctx, d, scan)
		if err != nil {
			return nil, err
		}
		if truncated {
			return nil, fmt.Errorf("%s: %w (more than %d)", j.dayPrefix(d), ErrTooManyManifests, scan)
		}
		objs = append(objs, got...)
	}
	ms, err := j.readAll(ctx, objs)
	if err != nil {
		return nil, err
	}
	newest := map[string]*Manifest{}
	for _, m := range ms {
		if newest[m.TaskID] == nil || m.Started.After(newest[m.TaskID].Started) {
			newest[m.TaskID] = m
		}
	}
	var out []*Manifest
	for _, m := range newest {
		at := m.Finished
		if at.IsZero() {
			at = m.Started
		}
		if !at.Before(since) && (keep == nil || keep(m)) {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Started.Before(out[b].Started) })
	return out, nil
}

var errNotManifest = errors.New("job: not a manifest")

// Read reads the manifest at a location in the journal: storage's
// ErrNotFound when there is none, an error naming it when what is there is
// not a manifest.
func (j *Journal) Read(ctx context.Context, raw string) (*Manifest, error) {
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
