package middleware

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/wxcentral/wxcentral/middleware/internal/fifo"
)

// replayMemory keeps the replay check's triples in this process, for a
// Verify without a shared store: per triple the SHA-256 of the body it was
// accepted with and the state of its run claim (see claimRun), in one
// entry. check compares the body and claims the run in one locked step,
// where a dedupe.Store takes a Put of the digest and a Begin of a second,
// run key.
//
// The entries are kept in a FIFO ring (fifo.Ring) in the order they were
// made, as dedupe.Memory keeps its claims: their expiries (when the
// timestamp leaves the window) come in nearly that order, and a full
// memory drops its oldest entry for each new one without allocating.
type replayMemory struct {
	now        func() time.Time
	maxEntries int

	mu   sync.Mutex
	ring fifo.Ring[replaySlot] // the triples, by key, oldest first
	seq  uint64
	wake chan struct{} // closed when a held run settles or is dropped; made by a waiter

	waiting func() // for tests: called, under the lock, when a check starts to wait
}

// A replaySlot is one triple, kept in the ring under its key. A removed
// triple stays in the ring, with no key, until it reaches the head.
type replaySlot struct {
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
		i, e := m.lookup(keyb, now)
		if e == nil {
			key := string(keyb)
			e = m.insert(key, ttl, now)
			e.digest = *digest
			if !claim {
				return key, e.seq, verdictAccepted, nil
			}
			e.run = runHeld
			return key, e.seq, verdictRun, nil
		}
		switch {
		case e.digest != *digest:
			return "", 0, verdictOtherBody, nil
		case !claim:
			return m.ring.Key(i), e.seq, verdictAccepted, nil
		case e.run == runFree:
			e.run = runHeld
			return m.ring.Key(i), e.seq, verdictRun, nil
		case e.run == runDone:
			return m.ring.Key(i), e.seq, verdictAnswered, nil
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
	i, ok := m.ring.Lookup(key)
	if !ok {
		return
	}
	e := m.ring.At(i)
	if e.seq != seq || e.run != runHeld {
		return
	}
	if answered {
		e.run = runDone
	} else {
		e.run = runFree
	}
	m.settled()
}

// len returns the number of triples held, expired ones included until they
// are swept.
func (m *replayMemory) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ring.Len()
}

// lookup returns the position and live slot of key, removing it if it
// has expired; nil if there is none.
func (m *replayMemory) lookup(key []byte, now time.Time) (int, *replaySlot) {
	i, ok := m.ring.LookupBytes(key)
	if !ok {
		return 0, nil
	}
	e := m.ring.At(i)
	if !now.Before(e.expires) {
		m.remove(i)
		return 0, nil
	}
	return i, e
}

// insert adds a free triple key for ttl, dropping the oldest one if the
// memory is full, and returns its slot. The ring grows up to the smallest
// power of two that holds maxEntries.
func (m *replayMemory) insert(key string, ttl time.Duration, now time.Time) *replaySlot {
	for m.ring.Used() > 0 && m.ring.Used() >= m.maxEntries {
		m.pop()
	}
	m.seq++
	i := m.ring.Push(key, replaySlot{expires: now.Add(ttl), seq: m.seq}, m.maxEntries)
	return m.ring.At(i)
}

// expire drops the oldest triples while their time is up.
func (m *replayMemory) expire(now time.Time) {
	for m.ring.Used() > 0 {
		i := m.ring.Oldest()
		if m.ring.Key(i) != "" && now.Before(m.ring.At(i).expires) {
			return
		}
		m.pop()
	}
}

// pop drops the oldest slot.
func (m *replayMemory) pop() {
	if i := m.ring.Oldest(); m.ring.Key(i) != "" {
		m.remove(i)
	}
	m.ring.Pop()
}

// remove drops the triple in slot i, waking the deliveries that wait for
// its run. Its slot stays until it is the oldest.
func (m *replayMemory) remove(i int) {
	e := m.ring.At(i)
	m.ring.Remove(i)
	held := e.run == runHeld
	e.run = runFree
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
