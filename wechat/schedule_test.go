package wechat

import (
	"math/rand/v2"
	"testing"
	"time"
)

// heldAt is a token fetched at fetched that lives life and turns stale
// refreshBefore before it expires.
func heldAt(fetched time.Time, life, refreshBefore time.Duration) *held {
	exp := fetched.Add(life)
	return &held{Credential: Credential{Value: "T", FetchedAt: fetched, ExpiresAt: exp}, staleAt: exp.Add(-refreshBefore)}
}

func TestNextWake(t *testing.T) {
	const (
		life = 7200 * time.Second
		rb   = 5 * time.Minute // the token's RefreshBefore: jitter below rb/10 = 30 s
	)
	tok := heldAt(epoch, life, rb)
	stale := tok.staleAt
	short := heldAt(epoch, 2*time.Second, time.Second) // RefreshBefore capped at half a 2 s life
	def := schedParams{SyncInterval: 30 * time.Second, RetryDelay: time.Second}
	long := schedParams{SyncInterval: time.Hour, RetryDelay: time.Second}

	none := func(time.Duration) time.Duration { return -1 } // never asked for: the case draws no jitter
	zero := func(time.Duration) time.Duration { return 0 }
	most := func(n time.Duration) time.Duration { return n - 1 }

	tests := []struct {
		name     string
		now      time.Time
		h        *held
		failures int
		p        schedParams
		jitter   func(time.Duration) time.Duration
		want     time.Duration
		wantN    time.Duration // the bound jitter is asked for; 0: not asked
	}{
		{"fresh: wake when stale, no jitter", stale.Add(-10 * time.Second), tok, 0, long, zero, 10 * time.Second, rb/10 + 1},
		{"fresh: wake when stale plus the largest jitter", stale.Add(-10 * time.Second), tok, 0, long, most, 10*time.Second + rb/10, rb/10 + 1},
		{"fresh: jitter bound is a tenth of a capped RefreshBefore", epoch, short, 0, long, most, time.Second + 100*time.Millisecond, 100*time.Millisecond + 1},
		{"fresh: jitter past SyncInterval is capped", stale.Add(-10 * time.Second), tok, 0, def, most, 30 * time.Second, rb/10 + 1},
		{"fresh: stale later than SyncInterval: sync first", epoch, tok, 0, def, zero, 30 * time.Second, rb/10 + 1},
		{"fresh: 1 ns before stale", stale.Add(-time.Nanosecond), tok, 0, def, zero, time.Nanosecond, rb/10 + 1},
		{"no token: refresh now", epoch, nil, 0, def, none, 0, 0},
		{"stale this instant: refresh now", stale, tok, 0, def, none, 0, 0},
		{"stale: refresh now", stale.Add(time.Minute), tok, 0, def, none, 0, 0},
		{"expired: refresh now", epoch.Add(life + time.Hour), tok, 0, def, none, 0, 0},
		{"first failure: RetryDelay", stale, tok, 1, long, none, time.Second, 0},
		{"second failure: doubled", stale, tok, 2, long, none, 2 * time.Second, 0},
		{"third failure: doubled again", stale, tok, 3, long, none, 4 * time.Second, 0},
		{"seventh failure: the last doubling", stale, tok, 7, long, none, 64 * time.Second, 0},
		{"eighth failure: doubling stops", stale, tok, 8, long, none, 64 * time.Second, 0},
		{"hundredth failure: no overflow", stale, tok, 100, long, none, 64 * time.Second, 0},
		{"fifth failure: capped at SyncInterval", stale, tok, 5, def, none, 16 * time.Second, 0},
		{"sixth failure: capped at SyncInterval", stale, tok, 6, def, none, 30 * time.Second, 0},
		{"failure without a token", epoch, nil, 2, def, none, 2 * time.Second, 0},
		{"failure while the token is fresh again: still back off", epoch, tok, 1, def, none, time.Second, 0},
		{"failure with a zero RetryDelay: at least 1 ms", stale, tok, 3, schedParams{SyncInterval: time.Second}, none, time.Millisecond, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var gotN time.Duration
			jitter := func(n time.Duration) time.Duration {
				gotN = n
				return tc.jitter(n)
			}
			if got := nextWake(tc.now, tc.h, tc.failures, tc.p, jitter); got != tc.want {
				t.Errorf("nextWake = %v, want %v", got, tc.want)
			}
			if gotN != tc.wantN {
				t.Errorf("jitter asked for a bound of %v, want %v (0: not asked)", gotN, tc.wantN)
			}
		})
	}
}

// With the real jitter, a fresh token's wake stays within [stale,
// stale+RefreshBefore/10] and never beyond SyncInterval.
func TestNextWakeJitterBounds(t *testing.T) {
	const rb = 5 * time.Minute
	tok := heldAt(epoch, 7200*time.Second, rb)
	now := tok.staleAt.Add(-10 * time.Second)
	for _, p := range []schedParams{{SyncInterval: time.Hour}, {SyncInterval: 30 * time.Second}} {
		lo, hi := 10*time.Second, min(10*time.Second+rb/10, p.SyncInterval)
		seen := map[time.Duration]bool{}
		for range 1000 {
			got := nextWake(now, tok, 0, p, rand.N[time.Duration])
			if got < lo || got > hi {
				t.Fatalf("SyncInterval %v: nextWake = %v, want within [%v, %v]", p.SyncInterval, got, lo, hi)
			}
			seen[got] = true
		}
		if len(seen) < 2 {
			t.Errorf("SyncInterval %v: 1000 wakes all at %v: no jitter", p.SyncInterval, lo)
		}
	}
}
