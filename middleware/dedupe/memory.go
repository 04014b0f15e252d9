package dedupe

import (
	"container/heap"
	"context"
	"github.com/wxcentral/wxcentral/util"
	"sync"
	"time"
)

// Defaults of Memory's bounds.
const (
	DefaultMaxEntries = 10000
	DefaultMaxBytes   = 16 << 20
)

// entryOverhead approximates what an entry costs beyond its key and body,
// so that MaxBytes bounds memory even for empty replies.
const entryOverhead = 128

// Memory is a Store in this process's memory. Its zero value is ready to
// use. It keeps at most MaxEntries claims and MaxBytes of keys and replies;
// beyond that the claims that expire first are dropped early (their
// waiters get ErrAbandoned). Expired entries are dropped as new claims come
// in; Memory starts no goroutine.
type Memory struct {
	MaxEntries int        // 0 means DefaultMaxEntries
	MaxBytes   int        // 0 means DefaultMaxBytes
	Clock      util.Clock // nil means util.SystemClock

	mu      sync.Mutex
	entries map[string]*entry
	byTime  expiryHeap
	bytes   int
}

type entry struct {
	key     string
	expires time.Time
	done    chan struct{} // closed when finished or abandoned
	reply   Reply
	state   state
	waiters int // blocked in Wait; for tests
	size    int
	index   int // in byTime
}

type state uint8

const (
	pending state = iota
	finished
	abandoned
)

func (m *Memory) now() time.Time {
	if m.Clock != nil {
		return m.Clock.Now()
	}
	return time.Now()
}

// Begin implements Store.
func (m *Memory) Begin(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.expire(now)
	if _, ok := m.entries[key]; ok {
		return false, nil
	}
	if m.entries == nil {
		m.entries = make(map[string]*entry)
	}
	e := &entry{key: key, expires: now.Add(ttl), done: make(chan struct{}), size: len(key) + entryOverhead}
	m.entries[key] = e
	heap.Push(&m.byTime, e)
	m.bytes += e.size
	m.evict(e)
	return true, nil
}

// Finish implements Store.
func (m *Memory) Finish(ctx context.Context, key string, r Reply) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok || e.state != pending {
		return nil
	}
	r.Body = append([]byte(nil), r.Body...) // the caller may reuse its buffer
	e.reply, e.state = r, finished
	e.size += len(r.Body) + len(r.ContentType)
	m.bytes += len(r.Body) + len(r.ContentType)
	close(e.done)
	m.evict(e)
	return nil
}

// Abandon implements Store.
func (m *Memory) Abandon(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[key]; ok && e.state == pending {
		m.remove(e)
	}
	return nil
}

// Wait implements Store.
func (m *Memory) Wait(ctx context.Context, key string) (Reply, error) {
	m.mu.Lock()
	e, ok := m.entries[key]
	if !ok || !m.now().Before(e.expires) {
		m.mu.Unlock()
		return Reply{}, ErrAbandoned
	}
	e.waiters++
	m.mu.Unlock()

	select {
	case <-e.done:
	case <-ctx.Done():
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e.waiters--
	switch {
	case e.state == finished:
		return e.reply, nil
	case e.state == abandoned:
		return Reply{}, ErrAbandoned
	}
	return Reply{}, ctx.Err()
}

// Len returns the number of keys held, expired ones included until they
// are swept.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// expire drops the entries whose time is up.
func (m *Memory) expire(now time.Time) {
	for len(m.byTime) > 0 && !now.Before(m.byTime[0].expires) {
		m.remove(m.byTime[0])
	}
}

// evict drops the entries that expire first until the bounds hold, sparing
// keep (the entry just added or finished) unless it is alone over them.
func (m *Memory) evict(keep *entry) {
	maxEntries, maxBytes := m.MaxEntries, m.MaxBytes
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	for len(m.byTime) > 0 && (len(m.entries) > maxEntries || m.bytes > maxBytes) {
		victim := m.byTime[0]
		if victim == keep && len(m.byTime) > 1 {
			// keep expires first; drop the next one instead.
			victim = m.byTime[1]
			if len(m.byTime) > 2 && m.byTime[2].expires.Before(victim.expires) {
				victim = m.byTime[2]
			}
		}
		m.remove(victim)
	}
}

// remove drops e and, if it was pending, wakes its waiters with ErrAbandoned.
func (m *Memory) remove(e *entry) {
	delete(m.entries, e.key)
	heap.Remove(&m.byTime, e.index)
	m.bytes -= e.size
	if e.state == pending {
		e.state = abandoned
		close(e.done)
	}
}

// expiryHeap orders entries by expiry, soonest first.
type expiryHeap []*entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
