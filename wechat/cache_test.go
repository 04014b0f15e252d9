package wechat

import (
	"sync"
	"testing"
	"time"
)

// The one early-expiry rule and the states it gives, on explicit instants
// (the clock a holder reads is the caller's): stale at ExpiresAt −
// min(early, life/2), life = ExpiresAt − FetchedAt, or 7200 s when
// FetchedAt is unknown or not before ExpiresAt.
func TestCredCacheRuleAndStates(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	tok := func(fetched, expires time.Duration) Credential {
		return Credential{Value: "TOKEN", ExpiresAt: at(expires), FetchedAt: at(fetched)}
	}
	tests := []struct {
		name      string
		early     time.Duration
		c         Credential
		wantStale time.Time
		// The state at each instant.
		states map[time.Duration]cacheState
	}{
		{name: "keeper default: RefreshBefore 5 min of a 7200 s token", early: 5 * time.Minute,
			c: tok(0, 7200*time.Second), wantStale: at(6900 * time.Second),
			states: map[time.Duration]cacheState{
				0: cacheFresh, 6900*time.Second - 1: cacheFresh, 6900 * time.Second: cacheStale,
				7200*time.Second - 1: cacheStale, 7200 * time.Second: cacheInvalid, 8000 * time.Second: cacheInvalid,
			}},
		{name: "early capped at half the life", early: 5 * time.Minute,
			c: tok(0, 120*time.Second), wantStale: at(60 * time.Second),
			states: map[time.Duration]cacheState{
				59 * time.Second: cacheFresh, 60 * time.Second: cacheStale, 120 * time.Second: cacheInvalid,
			}},
		{name: "remote default: 1 min early, 200 s left when the answer arrived", early: time.Minute,
			// The Remote's old rule, min(early, left/4), said 150 s.
			c: tok(0, 200*time.Second), wantStale: at(140 * time.Second),
			states: map[time.Duration]cacheState{
				139 * time.Second: cacheFresh, 140 * time.Second: cacheStale, 150 * time.Second: cacheStale,
			}},
		{name: "remote default: 100 s left", early: time.Minute,
			// The old rule said 75 s.
			c: tok(0, 100*time.Second), wantStale: at(50 * time.Second),
			states: map[time.Duration]cacheState{
				49 * time.Second: cacheFresh, 50 * time.Second: cacheStale, 75 * time.Second: cacheStale,
			}},
		{name: "FetchedAt unknown: life 7200 s", early: 2 * time.Hour,
			c:         Credential{Value: "TOKEN", ExpiresAt: at(600 * time.Second)},
			wantStale: at(600*time.Second - time.Hour),
			states:    map[time.Duration]cacheState{0: cacheStale, 599 * time.Second: cacheStale, 600 * time.Second: cacheInvalid},
		},
		{name: "FetchedAt after ExpiresAt: life 7200 s", early: 5 * time.Minute,
			c: tok(900*time.Second, 600*time.Second), wantStale: at(300 * time.Second),
			states: map[time.Duration]cacheState{299 * time.Second: cacheFresh, 300 * time.Second: cacheStale},
		},
		{name: "no early: fresh until it expires", early: 0,
			c: tok(0, 7200*time.Second), wantStale: at(7200 * time.Second),
			states: map[time.Duration]cacheState{7200*time.Second - 1: cacheFresh, 7200 * time.Second: cacheInvalid},
		},
		{name: "empty value", early: time.Minute,
			c: Credential{ExpiresAt: at(7200 * time.Second), FetchedAt: t0}, wantStale: at(7140 * time.Second),
			states: map[time.Duration]cacheState{0: cacheInvalid},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := staleAt(tt.c, tt.early); !got.Equal(tt.wantStale) {
				t.Fatalf("staleAt = t0%+v, want t0%+v", got.Sub(t0), tt.wantStale.Sub(t0))
			}
			c := &credCache{early: tt.early}
			if c.Load() != nil || c.State(t0) != cacheInvalid {
				t.Fatal("an empty cache holds something")
			}
			h := c.Store(tt.c)
			if c.Load() != h || h.Credential != tt.c || !h.staleAt.Equal(tt.wantStale) {
				t.Fatalf("Store = %+v, Load = %+v; want %+v stale at t0%+v", h, c.Load(), tt.c, tt.wantStale.Sub(t0))
			}
			for d, want := range tt.states {
				now := at(d)
				if got := c.State(now); got != want {
					t.Errorf("at t0+%v: %v, want %v", d, got, want)
				}
				if got := c.FreshAt(tt.c, now); got != (want == cacheFresh) {
					t.Errorf("at t0+%v: FreshAt = %v, want %v", d, got, want == cacheFresh)
				}
			}
		})
	}
}

// Storing replaces what is held; a nil entry is invalid; the read path
// allocates nothing; concurrent stores and loads are safe (under -race)
// and never show a torn entry.
func TestCredCacheConcurrentAndCheap(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	c := &credCache{early: 5 * time.Minute}
	var none *cached
	if none.stateAt(t0) != cacheInvalid {
		t.Fatal("nil entry is not invalid")
	}
	c.Store(Credential{Value: "A", ExpiresAt: t0.Add(time.Hour), FetchedAt: t0})
	c.Store(Credential{Value: "B", ExpiresAt: t0.Add(2 * time.Hour), FetchedAt: t0})
	if h := c.Load(); h.Value != "B" || c.State(t0) != cacheFresh {
		t.Fatalf("after two stores: %+v, %v; want B, fresh", h, c.State(t0))
	}
	if n := testing.AllocsPerRun(1000, func() {
		if h := c.Load(); h.stateAt(t0) != cacheFresh || !c.FreshAt(h.Credential, t0) {
			t.Fatal("not fresh")
		}
	}); n != 0 {
		t.Errorf("the read path allocates %v times, want 0", n)
	}

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				life := time.Duration(i*200+j+1) * time.Second
				if i%2 == 0 {
					c.Store(Credential{Value: "T", ExpiresAt: t0.Add(life), FetchedAt: t0})
					continue
				}
				h := c.Load()
				if want := staleAt(h.Credential, c.early); !h.staleAt.Equal(want) {
					t.Errorf("entry %+v stale at %v, want %v: torn", h, h.staleAt, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
