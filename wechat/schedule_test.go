package wechat

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// heldAt is a token fetched at fetched that lives life and turns stale
// refreshBefore before it expires.
func heldAt(fetched time.Time, life, refreshBefore time.Duration) *cached {
	exp := fetched.Add(life)
	return &cached{Credential: Credential{Value: "T", FetchedAt: fetched, ExpiresAt: exp}, staleAt: exp.Add(-refreshBefore)}
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
		h        *cached
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

// fetchClock records the fake clock's time of each token request that
// reaches the network.
type fetchClock struct {
	base http.RoundTripper
	srv  *wechattest.Server
	mu   sync.Mutex
	at   []time.Time
}

func (f *fetchClock) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == wechattest.PathToken {
		f.mu.Lock()
		f.at = append(f.at, f.srv.Now())
		f.mu.Unlock()
	}
	return f.base.RoundTrip(r)
}

// Run, driven in fake time on the test's goroutine: its waits (a fake
// sleep records them and advances the fake clock) and its fetches follow
// the schedule, cycle after cycle. It fetches at once without a token,
// wakes at least every SyncInterval, fetches when the token turns stale
// plus the jitter, adopts a token fetched out of turn elsewhere (and wakes
// by that token's staleness instead), backs off 1 s, 2 s after failed
// refreshes and returns ctx's error when ctx ends in a wait.
func TestRunSchedule(t *testing.T) {
	e := newEnv(t, newFake(t))
	e.opts.RefreshBefore = 10 * time.Minute // stale 6600 s after a fetch; jitter below 60 s; bgRetryDelay 1 s
	e.opts.SyncInterval = time.Hour
	e.opts.MaxAttempts = 1 // one fetch per failed refresh
	fc := &fetchClock{base: e.opts.HTTPClient.Transport, srv: e.srv}
	e.opts.HTTPClient = &http.Client{Transport: fc, Timeout: 2 * time.Second}
	w := openKeeper(t, e)

	const jitter = 7 * time.Second
	var bounds []time.Duration
	w.jitter = func(n time.Duration) time.Duration {
		bounds = append(bounds, n)
		return jitter
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var waits []time.Duration
	outOfTurn := ""
	w.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		e.srv.Advance(d)
		switch len(waits) {
		case 3: // meanwhile another process fetched out of turn (a forced refresh)
			outOfTurn = e.srv.IssueToken(testAppID)
			now := e.srv.Now()
			if err := e.store.Save(ctx, KindAccessToken, Credential{Value: outOfTurn, FetchedAt: now, ExpiresAt: now.Add(7200 * time.Second)}); err != nil {
				t.Error(err)
			}
		case 5: // WeChat fails the next two fetches
			e.srv.Fail(wechattest.PathToken, wechattest.Fault{Errcode: -1, Times: 2})
		case 8:
			cancel()
			return ctx.Err()
		}
		return nil
	}
	if err := w.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}

	s := time.Second
	wantWaits := []time.Duration{
		3600 * s,          // fetched at 0 (no token), stale at 6600: SyncInterval first
		6607*s - 3600*s,   // to 6607: stale plus the jitter; fetch at 6607, stale at 13207
		3600 * s,          // to 10207: SyncInterval; the out-of-turn token is adopted, stale at 16807
		3600 * s,          // to 13807: SyncInterval, not 3007 s to the old token's staleness
		16814*s - 13807*s, // to 16814: the adopted token's staleness plus the jitter; the fetch fails
		s,                 // to 16815: bgRetryDelay; the fetch fails again
		2 * s,             // to 16817: doubled; the fetch succeeds, stale at 23417
		3600 * s,          // SyncInterval; ctx ends in it
	}
	if !slices.Equal(waits, wantWaits) {
		t.Errorf("Run's waits = %v\nwant %v", waits, wantWaits)
	}
	var fetchedAt []time.Duration
	for _, at := range fc.at {
		fetchedAt = append(fetchedAt, at.Sub(epoch))
	}
	wantFetches := []time.Duration{0, 6607 * s, 16814 * s, 16815 * s, 16817 * s}
	if !slices.Equal(fetchedAt, wantFetches) {
		t.Errorf("token fetches at %v, want %v", fetchedAt, wantFetches)
	}
	for i, n := range bounds {
		if n != time.Minute+1 {
			t.Errorf("jitter bound %d = %v, want a tenth of RefreshBefore (+1 ns)", i, n)
		}
	}
	if len(bounds) != 6 {
		t.Errorf("jitter drawn %d times, want 6 (once per wait on a fresh token)", len(bounds))
	}
	switch h := w.token.cur.Load(); {
	case h == nil:
		t.Error("no token held")
	case h.Value == outOfTurn || !h.FetchedAt.Equal(epoch.Add(16817*s)):
		t.Errorf("held token fetched at %v, want the one fetched at 16817 s", h.FetchedAt.Sub(epoch))
	}
	st := w.Stats().Refreshes
	if got := st["background"]; got["fetched"] != 3 || got["adopted"] != 1 || got["failed"] != 2 {
		t.Errorf("background refreshes = %v, want 3 fetched, 1 adopted, 2 failed", got)
	}
}

// wechat.Clock and wechattest.Clock are util.Clock itself, not look-alike
// interfaces: pointers to them convert only if the types are identical.
var (
	_ *util.Clock = (*Clock)(nil)
	_ *util.Clock = (*wechattest.Clock)(nil)
)
