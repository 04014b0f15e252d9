package dedupe

import (
	"context"
	"sync"
	"time"

	"github.com/wxcentral/wxcentral/middleware/internal/fifo"
	"github.com/wxcentral/wxcentral/util"
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
// beyond that the oldest claims are dropped early (their waiters get
// ErrAbandoned). Expired entries are dropped as new claims come in; Memory
// starts no goroutine.
//
// The claims are kept in a FIFO ring in the order they were made, which is
// the order they expire in when every claim has the same TTL, as the
// callback middleware's do: a full store drops its oldest claim for each
// new one at no more cost than a map update, with no allocation per entry
// beyond the map's. A claim with a longer TTL than the ones after it holds
// them until it is dropped, or until they are looked up and found expired.
type Memory struct {
	MaxEntries int        // 0 means DefaultMaxEntries
	MaxBytes   int        // 0 means DefaultMaxBytes
	Clock      util.Clock // nil means util.SystemClock

	mu      sync.Mutex
	ring    fifo.Ring[slot] // the claims, by key, oldest first
	bytes   int
	seq     uint64
	wake    chan struct{} // closed when a claim settles; made by a waiter
	waiters int           // blocked in Wait; for tests
}

// A slot is one claim, kept in the ring under its key. A removed claim
// stays in the ring (abandoned, with no key) until it reaches the head.
type slot struct {
	expires time.Time
	reply   Reply
	seq     uint64 // tells a reused slot from the claim a waiter waits on
	size    int
	state   state
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

func (m *Memory) limits() (maxEntries, maxBytes int) {
	maxEntries, maxBytes = m.MaxEntries, m.MaxBytes
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return maxEntries, maxBytes
}

// lookup returns the live slot of key, removing it if it has expired.
func (m *Memory) lookup(key string, now time.Time) *slot {
	i, ok := m.ring.Lookup(key)
	if !ok {
		return nil
	}
	e := m.ring.At(i)
	if !now.Before(e.expires) {
		m.remove(i)
		return nil
	}
	return e
}

// Begin implements Store.
func (m *Memory) Begin(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.expire(now)
	if m.lookup(key, now) != nil {
		return false, nil
	}
	m.evict(m.insert(key, ttl, now))
	return true, nil
}

// put is Begin and Finish in one step, for Put: it stores r under key
// unless key is held, and then reports what it holds (a finished reply,
// or pending for an unfinished claim).
func (m *Memory) put(key string, ttl time.Duration, r Reply) (held Reply, existed, pending bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.expire(now)
	if e := m.lookup(key, now); e != nil {
		return e.reply, true, e.state != finished
	}
	i := m.insert(key, ttl, now)
	m.finish(i, r)
	m.evict(i)
	return r, false, false
}

// insert adds a pending claim on key, for ttl (DefaultTTL if ttl <= 0),
// and returns its slot.
func (m *Memory) insert(key string, ttl time.Duration, now time.Time) int {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	maxEntries, _ := m.limits()
	for m.ring.Used() > 0 && m.ring.Used() >= maxEntries {
		m.pop()
	}
	m.seq++
	size := len(key) + entryOverhead
	i := m.ring.Push(key, slot{expires: now.Add(ttl), seq: m.seq, size: size}, maxEntries)
	m.bytes += size
	return i
}

// Finish implements Store.
func (m *Memory) Finish(ctx context.Context, key string, r Reply) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := m.ring.Lookup(key)
	if !ok || m.ring.At(i).state != pending {
		return nil
	}
	m.finish(i, r)
	m.settled()
	m.evict(i)
	return nil
}

// finish stores r, copied, as the reply of the pending claim in slot i.
func (m *Memory) finish(i int, r Reply) {
	e := m.ring.At(i)
	// The caller may reuse its buffer. make and copy, which the compiler
	// turns into one call that does not clear the new bytes first.
	if len(r.Body) > 0 {
		body := make([]byte, len(r.Body))
		copy(body, r.Body)
		r.Body = body
	} else {
		r.Body = nil
	}
	e.reply, e.state = r, finished
	e.size += len(r.Body) + len(r.ContentType)
	m.bytes += len(r.Body) + len(r.ContentType)
}

// Abandon implements Store.
func (m *Memory) Abandon(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i, ok := m.ring.Lookup(key); ok && m.ring.At(i).state == pending {
		m.remove(i)
	}
	return nil
}

// Wait implements Store.
func (m *Memory) Wait(ctx context.Context, key string) (Reply, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.lookup(key, m.now())
	if e == nil {
		return Reply{}, ErrAbandoned
	}
	seq := e.seq
	for {
		switch e.state {
		case finished:
			return e.reply, nil
		case abandoned:
			return Reply{}, ErrAbandoned
		}
		if m.wake == nil {
			m.wake = make(chan struct{})
		}
		wake := m.wake
		m.waiters++
		m.mu.Unlock()
		var done bool
		select {
		case <-wake:
		case <-ctx.Done():
			done = true
		}
		m.mu.Lock()
		m.waiters--
		i, ok := m.ring.Lookup(key)
		if !ok || m.ring.At(i).seq != seq {
			return Reply{}, ErrAbandoned // dropped, and maybe claimed anew
		}
		e = m.ring.At(i)
		if done && e.state == pending {
			return Reply{}, ctx.Err()
		}
	}
}

// Len returns the number of keys held, expired ones included until they
// are swept.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ring.Len()
}

// settled wakes the waiters: a claim was finished or abandoned.
func (m *Memory) settled() {
	if m.wake != nil {
		close(m.wake)
		m.wake = nil
	}
}

// expire drops the oldest entries while their time is up.
func (m *Memory) expire(now time.Time) {
	for m.ring.Used() > 0 {
		i := m.ring.Oldest()
		if m.ring.Key(i) != "" && now.Before(m.ring.At(i).expires) {
			return
		}
		m.pop()
	}
}

// evict drops the oldest entries until the bounds hold, sparing keep (the
// slot just added or finished) unless it is alone over them.
func (m *Memory) evict(keep int) {
	maxEntries, maxBytes := m.limits()
	for m.ring.Len() > 0 && (m.ring.Len() > maxEntries || m.bytes > maxBytes) {
		victim := -1
		for k := range m.ring.Used() {
			i := m.ring.Nth(k)
			if m.ring.Key(i) != "" && (i != keep || m.ring.Len() == 1) {
				victim = i
				break
			}
		}
		if victim < 0 {
			return
		}
		m.remove(victim)
	}
}

// pop drops the oldest slot.
func (m *Memory) pop() {
	if i := m.ring.Oldest(); m.ring.Key(i) != "" {
		m.remove(i)
	}
	m.ring.Pop()
}

// remove drops the claim in slot i and, if it was pending, wakes its
// waiters with ErrAbandoned. Its slot stays until it is the oldest.
func (m *Memory) remove(i int) {
	e := m.ring.At(i)
	m.ring.Remove(i)
	m.bytes -= e.size
	wasPending := e.state == pending
	e.reply, e.size, e.state = Reply{}, 0, abandoned
	if wasPending {
		m.settled()
	}
}
