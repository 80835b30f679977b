package worker

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Celery keeps 50,000 revoked ids for 3 hours; so do we, but on disk too,
// so that a revoke survives a worker restart (a Python 5.2 worker forgets).
const (
	revokedMax = 50_000
	revokedTTL = 3 * time.Hour
)

// revokedSet is the bounded, expiring set of revoked task ids, persisted as
// an append-only file of "id<TAB>expiry-unix" lines that is rewritten
// compactly on open and when it grows well past the live set.
type revokedSet struct {
	mu       sync.Mutex
	ids      map[string]time.Time
	path     string
	f        *os.File
	appended int
	now      func() time.Time
}

func openRevoked(path string) (*revokedSet, error) {
	r := &revokedSet{ids: map[string]time.Time{}, path: path, now: time.Now}
	if path == "" {
		return r, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("revoked ids: %w", err)
	}
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			id, exp, ok := strings.Cut(sc.Text(), "\t")
			if sec, err := strconv.ParseInt(exp, 10, 64); ok && err == nil && id != "" {
				r.ids[id] = time.Unix(sec, 0)
			}
		}
		f.Close()
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("revoked ids: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.compact(); err != nil {
		return nil, err
	}
	return r, nil
}

// add revokes ids and persists them before returning.
func (r *revokedSet) add(ids ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	exp := r.now().Add(revokedTTL)
	var b strings.Builder
	for _, id := range ids {
		r.ids[id] = exp
		fmt.Fprintf(&b, "%s\t%d\n", id, exp.Unix())
	}
	if len(r.ids) > revokedMax {
		r.evict()
	}
	if r.f == nil {
		return nil
	}
	if _, err := r.f.WriteString(b.String()); err != nil {
		return fmt.Errorf("revoked ids: %w", err)
	}
	r.appended += len(ids)
	if r.appended > 2*max(len(r.ids), 1000) {
		return r.compact()
	}
	return r.f.Sync()
}

func (r *revokedSet) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	exp, ok := r.ids[id]
	return ok && r.now().Before(exp)
}

func (r *revokedSet) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evict()
	out := make([]string, 0, len(r.ids))
	for id := range r.ids {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// evict drops expired ids and, past the bound, the oldest, down to 90% of
// the bound so that a full set does not sort on every add.
func (r *revokedSet) evict() {
	now := r.now()
	for id, exp := range r.ids {
		if !now.Before(exp) {
			delete(r.ids, id)
		}
	}
	if len(r.ids) <= revokedMax {
		return
	}
	type entry struct {
		id  string
		exp time.Time
	}
	all := make([]entry, 0, len(r.ids))
	for id, exp := range r.ids {
		all = append(all, entry{id, exp})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].exp.Before(all[j].exp) })
	for _, e := range all[:len(all)-revokedMax*9/10] {
		delete(r.ids, e.id)
	}
}

// compact rewrites the file with the live set only (temp file + rename,
// so a crash leaves the old file or the new one, never half of one).
func (r *revokedSet) compact() error {
	if r.path == "" {
		return nil
	}
	r.evict()
	tmp := r.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("revoked ids: %w", err)
	}
	w := bufio.NewWriter(f)
	for id, exp := range r.ids {
		fmt.Fprintf(w, "%s\t%d\n", id, exp.Unix())
	}
	if err := w.Flush(); err == nil {
		err = f.Sync()
	}
	f.Close()
	if err := os.Rename(tmp, r.path); err != nil {
		return fmt.Errorf("revoked ids: %w", err)
	}
	if r.f != nil {
		r.f.Close()
	}
	r.f, err = os.OpenFile(r.path, os.O_APPEND|os.O_WRONLY, 0o644)
	r.appended = 0
	if err != nil {
		return fmt.Errorf("revoked ids: %w", err)
	}
	return nil
}

func (r *revokedSet) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
