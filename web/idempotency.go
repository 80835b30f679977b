package web

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// idempotency remembers the answers to requests sent with an
// Idempotency-Key, per token and endpoint, for a window: a client that
// retries after a timeout or a dropped connection gets the same task id
// instead of a second task. Only accepted requests are remembered; after
// an error the key is free again, so the retry does the work.
//
// The memory is per process: behind a load balancer, retries must reach the
// same instance (or a duplicate task may be enqueued, which re-renders the
// same output keys).
type idempotency struct {
	window time.Duration
	max    int
	mu     sync.Mutex
	byKey  map[string]*list.Element
	order  *list.List // of *idemEntry, oldest first: the window expires them in order
}

type idemEntry struct {
	key      string
	body     [sha256.Size]byte // the request's body, to refuse a key reused for another request
	created  time.Time
	done     bool
	status   int
	location string
	resp     []byte
}

func newIdempotency(window time.Duration, max int) *idempotency {
	return &idempotency{window: window, max: max, byKey: map[string]*list.Element{}, order: list.New()}
}

// idemOutcome is what begin found.
type idemOutcome int

const (
	idemNew      idemOutcome = iota // first time: do the work, then finish or abandon
	idemReplay                      // done before: answer with the stored response
	idemBusy                        // the same key is being worked on right now
	idemMismatch                    // the key was used for a different body
)

func (m *idempotency) begin(key string, body []byte, now time.Time) (idemOutcome, *idemEntry) {
	sum := sha256.Sum256(body)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(now)
	if el, ok := m.byKey[key]; ok {
		e := el.Value.(*idemEntry)
		switch {
		case e.body != sum:
			return idemMismatch, e
		case !e.done:
			return idemBusy, e
		}
		return idemReplay, e
	}
	e := &idemEntry{key: key, body: sum, created: now}
	m.byKey[key] = m.order.PushBack(e)
	for m.order.Len() > m.max {
		m.remove(m.order.Front())
	}
	return idemNew, e
}

// finish stores the answer for replays.
func (m *idempotency) finish(e *idemEntry, status int, location string, resp []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.done, e.status, e.location, e.resp = true, status, location, resp
}

// abandon forgets a key whose request failed, so a retry does the work.
func (m *idempotency) abandon(e *idemEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.byKey[e.key]; ok && el.Value == e {
		m.remove(el)
	}
}

func (m *idempotency) expire(now time.Time) {
	for el := m.order.Front(); el != nil && now.Sub(el.Value.(*idemEntry).created) > m.window; el = m.order.Front() {
		m.remove(el)
	}
}

func (m *idempotency) remove(el *list.Element) {
	delete(m.byKey, el.Value.(*idemEntry).key)
	m.order.Remove(el)
}
