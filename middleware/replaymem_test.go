package middleware

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

// memClock is a clock for the replay memory's tests; they advance it
// between calls only.
type memClock struct{ now time.Time }

func (c *memClock) Now() time.Time { return c.now }

func newReplayMemory(max int) (*replayMemory, *memClock) {
	c := &memClock{now: time.Unix(1714036504, 0)}
	return &replayMemory{now: c.Now, maxEntries: max}, c
}

var (
	bodyA = sha256.Sum256([]byte("<xml>a</xml>"))
	bodyB = sha256.Sum256([]byte("<xml>b</xml>"))
)

// TestReplayMemoryCheck walks one triple through the verdicts of check,
// in the order deliveries meet them, with and without a run claim.
func TestReplayMemoryCheck(t *testing.T) {
	ctx := context.Background()
	m, _ := newReplayMemory(10)
	type step struct {
		name   string
		key    string
		digest *[sha256.Size]byte
		claim  bool
		want   verdict
		settle int // after the check: 1 answered, -1 failed, 0 nothing
	}
	var seq uint64
	for _, s := range []step{
		{"first delivery claims the run", "t1", &bodyA, true, verdictRun, 0},
		{"another body while it runs", "t1", &bodyB, true, verdictOtherBody, -1},
		{"the first delivery failed: the next claims the run", "t1", &bodyA, true, verdictRun, 1},
		{"answered: no run again", "t1", &bodyA, true, verdictAnswered, 0},
		{"another body once answered", "t1", &bodyB, true, verdictOtherBody, 0},
		{"without dedupe: a new triple", "t2", &bodyB, false, verdictAccepted, 0},
		{"without dedupe: the same body again", "t2", &bodyB, false, verdictAccepted, 0},
		{"without dedupe: another body", "t2", &bodyA, false, verdictOtherBody, 0},
	} {
		key, sq, v, err := m.check(ctx, []byte(s.key), s.digest, time.Minute, s.claim)
		if err != nil || v != s.want {
			t.Fatalf("%s: check = %v, %v; want %v", s.name, v, err, s.want)
		}
		if v == verdictOtherBody {
			if key != "" {
				t.Errorf("%s: key %q for a refused body", s.name, key)
			}
		} else {
			if key != s.key {
				t.Errorf("%s: key %q, want %q", s.name, key, s.key)
			}
			seq = sq
		}
		if s.settle != 0 {
			m.settle(s.key, seq, s.settle > 0)
		}
	}
	if n := m.len(); n != 2 {
		t.Errorf("%d triples held, want 2", n)
	}
}

// TestReplayMemoryWait checks that a delivery that meets a held run waits
// for it: it gets verdictAnswered when the run answered, claims the run
// when it failed or was dropped, and gives up with the context.
func TestReplayMemoryWait(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  func(m *replayMemory, c *memClock, seq uint64, cancel context.CancelFunc)
		want verdict
		err  error
	}{
		{"answered", func(m *replayMemory, _ *memClock, seq uint64, _ context.CancelFunc) { m.settle("t", seq, true) }, verdictAnswered, nil},
		{"failed", func(m *replayMemory, _ *memClock, seq uint64, _ context.CancelFunc) { m.settle("t", seq, false) }, verdictRun, nil},
		{"evicted", func(m *replayMemory, _ *memClock, _ uint64, _ context.CancelFunc) {
			m.check(context.Background(), []byte("u"), &bodyB, time.Minute, true) // the memory holds one triple
		}, verdictRun, nil},
		{"expired", func(m *replayMemory, c *memClock, _ uint64, _ context.CancelFunc) {
			c.now = c.now.Add(time.Minute)
			m.check(context.Background(), []byte("u"), &bodyB, time.Minute, true)
		}, verdictRun, nil},
		{"context ended", func(_ *replayMemory, _ *memClock, _ uint64, cancel context.CancelFunc) { cancel() }, 0, context.Canceled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, c := newReplayMemory(1)
			_, seq, v, err := m.check(context.Background(), []byte("t"), &bodyA, time.Minute, true)
			if v != verdictRun || err != nil {
				t.Fatalf("first check = %v, %v", v, err)
			}
			waiting := make(chan struct{}, 1)
			m.waiting = func() { waiting <- struct{}{} }
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type result struct {
				v   verdict
				err error
			}
			done := make(chan result, 1)
			go func() {
				_, _, v, err := m.check(ctx, []byte("t"), &bodyA, time.Minute, true)
				done <- result{v, err}
			}()
			<-waiting
			m.mu.Lock()
			m.waiting = nil // the one that ends the run may wait too
			m.mu.Unlock()
			tt.end(m, c, seq, cancel)
			got := <-done
			if got.v != tt.want || !errors.Is(got.err, tt.err) {
				t.Errorf("waiting check = %v, %v; want %v, %v", got.v, got.err, tt.want, tt.err)
			}
			if tt.name == "answered" {
				// Settling the claim again changes nothing.
				m.settle("t", seq, false)
				if r := m.runOf("t"); r != runDone {
					t.Errorf("after a second settle: run %v, want done", r)
				}
			}
		})
	}
}

// TestReplayMemorySettleStale checks that settling a claim whose triple
// was dropped and claimed anew leaves the new claim alone.
func TestReplayMemorySettleStale(t *testing.T) {
	ctx := context.Background()
	m, c := newReplayMemory(4)
	_, old, _, _ := m.check(ctx, []byte("t"), &bodyA, time.Second, true)
	c.now = c.now.Add(time.Second)
	_, seq, v, _ := m.check(ctx, []byte("t"), &bodyB, time.Minute, true)
	if v != verdictRun || seq == old {
		t.Fatalf("after expiry: %v, seq %d (old %d); want a new run claim", v, seq, old)
	}
	m.settle("t", old, true)
	if r := m.runOf("t"); r != runHeld {
		t.Fatalf("after the expired claim's settle: run %v, want still held", r)
	}
	m.settle("t", seq, true)
	if r := m.runOf("t"); r != runDone {
		t.Fatalf("after its own settle: run %v, want done", r)
	}
}

// runOf returns the state of key's run, runFree for no triple.
func (m *replayMemory) runOf(key string) runState {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i, ok := m.ring.Lookup(key); ok {
		return m.ring.At(i).run
	}
	return runFree
}

// TestReplayMemoryBounds fills the memory past its bound and past a
// growth of its ring: it keeps the newest triples, in order.
func TestReplayMemoryBounds(t *testing.T) {
	ctx := context.Background()
	const max = 100
	m, _ := newReplayMemory(max)
	for i := range 3 * max {
		k := []byte{byte(i >> 8), byte(i)}
		if _, _, v, _ := m.check(ctx, k, &bodyA, time.Minute, false); v != verdictAccepted {
			t.Fatalf("triple %d: %v", i, v)
		}
	}
	if n := m.len(); n != max {
		t.Fatalf("%d triples held, want %d", n, max)
	}
	for i := range 3 * max {
		k := []byte{byte(i >> 8), byte(i)}
		m.mu.Lock()
		_, held := m.ring.LookupBytes(k)
		m.mu.Unlock()
		if want := i >= 2*max; held != want {
			t.Errorf("triple %d held %v, want %v", i, held, want)
		}
	}
}
