package middleware

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"
)

// replayMemory keeps the replay check's triples in this process, for a
// Verify without a shared store: per triple the SHA-256 of the body it was
// accepted with and the state of its run claim (see claimRun), in one
// entry. check compares the body and claims the run in one locked step,
// where a dedupe.Store takes a Put of the digest and a Begin of a second,
// run key.
//
// The entries are kept in a FIFO ring in the order they were made, as
// dedupe.Memory keeps its claims: their expiries (when the timestamp
// leaves the window) come in nearly that order, and a full memory drops
// its oldest entry for each new one without allocating.
type replayMemory struct {
	now        func() time.Time
	maxEntries int

	mu      sync.Mutex
	index   map[string]int // key → position in ring
	ring    []replaySlot   // len is a power of two, or 0
	head, n int            // the oldest slot, and how many are in use
	seq     uint64
	wake    chan struct{} // closed when a held run settles or is dropped; made by a waiter

	waiting func() // for tests: called, under the lock, when a check starts to wait
}

// A replaySlot is one triple. A removed triple stays in the ring, with no
// key, until it reaches the head.
type replaySlot struct {
	key     string
	expires time.Time
	digest  [sha256.Size]byte
	seq     uint64 // tells a reused slot from the triple a delivery claimed
	run     runState
}

// runState is where the run of a triple's next handler stands.
type runState uint8

const (
	runFree runState = iota // no delivery holds it: none claimed it yet, or the last one failed
	runHeld                 // a delivery runs the next handler
	runDone                 // a delivery has answered: no other runs it again
)

// A verdict is what replayMemory.check found.
type verdict uint8

const (
	verdictOtherBody verdict = iota + 1 // the triple was accepted with another body
	verdictAccepted                     // the body is the triple's; no run claim was asked
	verdictRun                          // this delivery holds the run claim
	verdictAnswered                     // a delivery of the triple has answered already
)

// check records digest as the body of the triple key (for ttl) unless the
// triple is held with another body already, and, if claim is set, claims
// the triple's run for this delivery: at once if no delivery holds it, after
// waiting while one does, never once one has answered. It returns the
// triple's key as kept (for settle) and the seq of the claim.
//
// keyb is only read; the key is copied into a string when the triple is
// new. ctx ends a wait for another delivery's run.
func (m *replayMemory) check(ctx context.Context, keyb []byte, digest *[sha256.Size]byte, ttl time.Duration, claim bool) (key string, seq uint64, v verdict, err error) {
	if err := ctx.Err(); err != nil {
		return "", 0, 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ctxDone := false
	for {
		now := m.now()
		m.expire(now)
		e := m.lookup(keyb, now)
		if e == nil {
			e = m.insert(string(keyb), ttl, now)
			e.digest = *digest
			if !claim {
				return e.key, e.seq, verdictAccepted, nil
			}
			e.run = runHeld
			return e.key, e.seq, verdictRun, nil
		}
		switch {
		case e.digest != *digest:
			return "", 0, verdictOtherBody, nil
		case !claim:
			return e.key, e.seq, verdictAccepted, nil
		case e.run == runFree:
			e.run = runHeld
			return e.key, e.seq, verdictRun, nil
		case e.run == runDone:
			return e.key, e.seq, verdictAnswered, nil
		case ctxDone:
			return "", 0, 0, ctx.Err()
		}
		// Another delivery runs it: wait until it settles, or is dropped
		// (expired or evicted), and look again.
		if m.wake == nil {
			m.wake = make(chan struct{})
		}
		wake := m.wake
		if m.waiting != nil {
			m.waiting()
		}
		m.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			ctxDone = true
		}
		m.mu.Lock()
	}
}

// settle ends the run claim seq on key: done if the delivery answered, free
// again (for the next delivery to claim) if it failed. A claim that was
// dropped meanwhile is left alone, as is a newer one on the same key.
func (m *replayMemory) settle(key string, seq uint64, answered bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := m.index[key]
	if !ok || m.ring[i].seq != seq || m.ring[i].run != runHeld {
		return
	}
	if answered {
		m.ring[i].run = runDone
	} else {
		m.ring[i].run = runFree
	}
	m.settled()
}

// len returns the number of triples held, expired ones included until they
// are swept.
func (m *replayMemory) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.index)
}

// lookup returns the live slot of key, removing it if it has expired.
func (m *replayMemory) lookup(key []byte, now time.Time) *replaySlot {
	i, ok := m.index[string(key)]
	if !ok {
		return nil
	}
	e := &m.ring[i]
	if !now.Before(e.expires) {
		m.remove(e)
		return nil
	}
	return e
}

// insert adds a free triple key for ttl, dropping the oldest one if the
// memory is full, and returns its slot.
func (m *replayMemory) insert(key string, ttl time.Duration, now time.Time) *replaySlot {
	for m.n > 0 && m.n >= m.maxEntries {
		m.pop()
	}
	if m.n == len(m.ring) {
		m.grow()
	}
	if m.index == nil {
		m.index = make(map[string]int)
	}
	i := (m.head + m.n) & (len(m.ring) - 1)
	m.n++
	m.seq++
	m.ring[i] = replaySlot{key: key, expires: now.Add(ttl), seq: m.seq}
	m.index[key] = i
	return &m.ring[i]
}

// grow doubles the ring, keeping the order of its slots, up to the
// smallest power of two that holds maxEntries.
func (m *replayMemory) grow() {
	size := 2 * len(m.ring)
	if size == 0 {
		size = 64
	}
	for size/2 >= m.maxEntries && size > 1 && size/2 >= m.n+1 {
		size /= 2
	}
	ring := make([]replaySlot, size)
	for k := range m.n {
		e := m.ring[(m.head+k)&(len(m.ring)-1)]
		ring[k] = e
		if e.key != "" {
			m.index[e.key] = k
		}
	}
	m.ring, m.head = ring, 0
}

// expire drops the oldest triples while their time is up.
func (m *replayMemory) expire(now time.Time) {
	for m.n > 0 {
		e := &m.ring[m.head]
		if e.key != "" && now.Before(e.expires) {
			return
		}
		m.pop()
	}
}

// pop drops the oldest slot.
func (m *replayMemory) pop() {
	e := &m.ring[m.head]
	if e.key != "" {
		m.remove(e)
	}
	*e = replaySlot{}
	m.head = (m.head + 1) & (len(m.ring) - 1)
	m.n--
}

// remove drops e's triple, waking the deliveries that wait for its run.
// Its slot stays until it is the oldest.
func (m *replayMemory) remove(e *replaySlot) {
	delete(m.index, e.key)
	held := e.run == runHeld
	e.key, e.run = "", runFree
	if held {
		m.settled()
	}
}

// settled wakes the deliveries waiting for a run.
func (m *replayMemory) settled() {
	if m.wake != nil {
		close(m.wake)
		m.wake = nil
	}
}
