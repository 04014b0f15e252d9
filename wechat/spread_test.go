package wechat

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The spread is stable, within [0, maxSpread), different for the token and
// the tickets of one app, and spreads a thousand apps whose tokens were
// fetched in the same second over the first half of their refresh window,
// a few a second at most.
func TestSpreadFraction(t *testing.T) {
	const apps = 1000
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tok := Credential{Value: "t", FetchedAt: t0, ExpiresAt: t0.Add(7200 * time.Second)}
	early := 5 * time.Minute
	perSecond := map[int64]int{}
	for i := range apps {
		id := fmt.Sprintf("wx%016x", i*7919)
		f := spreadFraction(id, KindAccessToken)
		if f < 0 || f >= maxSpread {
			t.Fatalf("spreadFraction(%s) = %v, outside [0, %v)", id, f, maxSpread)
		}
		if f != spreadFraction(id, KindAccessToken) {
			t.Fatalf("spreadFraction(%s) is not stable", id)
		}
		if f == spreadFraction(id, KindJSAPITicket) {
			t.Errorf("%s: the token and the jsapi_ticket have the same spread %v", id, f)
		}
		c := &credCache{early: early, spread: f}
		stale := c.staleAt(tok)
		if earliest, latest := tok.ExpiresAt.Add(-early), tok.ExpiresAt.Add(-early/2); stale.Before(earliest) || !stale.Before(latest) {
			t.Fatalf("%s: stale at %v, outside [%v, %v)", id, stale, earliest, latest)
		}
		perSecond[stale.Unix()]++
	}
	most := 0
	for _, n := range perSecond {
		most = max(most, n)
	}
	// 1,000 apps over 150 s: 6.7 a second on average.
	if most > 14 || len(perSecond) < 140 {
		t.Errorf("%d apps turn stale in %d distinct seconds, at most %d in one: not spread", apps, len(perSecond), most)
	}
	t.Logf("%d apps: stale in %d distinct seconds, at most %d in one", apps, len(perSecond), most)
}

// A short-lived token's window is half its life, and the spread is a share
// of that window, so it spreads such tokens too; without SpreadRefresh
// nothing moves.
func TestSpreadShortLived(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tok := Credential{Value: "t", FetchedAt: t0, ExpiresAt: t0.Add(60 * time.Second)}
	c := &credCache{early: 5 * time.Minute, spread: 0.4}
	if got, want := c.staleAt(tok), t0.Add(30*time.Second+12*time.Second); !got.Equal(want) {
		t.Errorf("stale at t0+%v, want t0+%v", got.Sub(t0), want.Sub(t0))
	}
	plain := &credCache{early: 5 * time.Minute}
	if got := plain.staleAt(tok); !got.Equal(staleAt(tok, 5*time.Minute)) {
		t.Errorf("no spread: stale at t0+%v, want staleAt's t0+%v", got.Sub(t0), staleAt(tok, 5*time.Minute).Sub(t0))
	}
}

// Keepers with SpreadRefresh on the fake: every process of one app agrees
// on when its token turns stale (so the first to wake fetches and the
// others adopt), two apps fetched in the same second turn stale at
// different instants, and a keeper without it is stale RefreshBefore
// before expiry as before.
func TestSpreadRefreshKeepers(t *testing.T) {
	const otherID, otherSecret = "wx00000000000000b2", "other-secret-0123456789"
	srv := newFake(t, wechattest.WithApp(otherID, otherSecret))
	dir := t.TempDir()
	open := func(id, secret, file string, spread bool) *Wechat {
		t.Helper()
		e := newEnv(t, srv)
		e.opts.AppID, e.opts.AppSecret, e.opts.SpreadRefresh = id, secret, spread
		e.opts.Store = NewFileStore(filepath.Join(dir, file), nil)
		w := openKeeper(t, e)
		if _, err := w.Token(t.Context()); err != nil {
			t.Fatal(err)
		}
		return w
	}
	a1 := open(testAppID, testSecret, "a.txt", true)
	a2 := open(testAppID, testSecret, "a.txt", true) // a second process of app a: adopts
	b := open(otherID, otherSecret, "b.txt", true)
	plain := open(otherID, otherSecret, "plain.txt", false)
	if n := srv.Stats().Fetches[wechattest.PathToken]; n != 3 {
		t.Fatalf("%d token fetches, want 3 (a once, b twice in two stores)", n)
	}
	ctx := t.Context()
	sa1, sa2, sb, sp := a1.Status(ctx), a2.Status(ctx), b.Status(ctx), plain.Status(ctx)
	if !sa1.StaleAt.Equal(sa2.StaleAt) {
		t.Errorf("two processes of one app turn stale at %v and %v", sa1.StaleAt, sa2.StaleAt)
	}
	if sa1.StaleAt.Equal(sb.StaleAt) {
		t.Errorf("two apps fetched together turn stale at the same instant %v", sb.StaleAt)
	}
	for _, st := range []Status{sa1, sb} {
		if lo, hi := st.ExpiresAt.Add(-5*time.Minute), st.ExpiresAt.Add(-150*time.Second); st.StaleAt.Before(lo) || !st.StaleAt.Before(hi) {
			t.Errorf("stale at %v, outside the first half of the refresh window [%v, %v)", st.StaleAt, lo, hi)
		}
	}
	if want := sp.ExpiresAt.Add(-5 * time.Minute); !sp.StaleAt.Equal(want) {
		t.Errorf("without SpreadRefresh: stale at %v, want %v", sp.StaleAt, want)
	}
}

// With SpreadRefresh, keepers of different apps re-read their stores at
// different intervals within the last tenth below SyncInterval, so that
// keepers started together drift apart; without it the interval is
// SyncInterval.
func TestSpreadSyncInterval(t *testing.T) {
	srv := newFake(t)
	const si = 30 * time.Second
	seen := map[time.Duration]bool{}
	for i := range 20 {
		e := newEnv(t, srv)
		e.opts.AppID = fmt.Sprintf("wx%016x", i)
		e.opts.SpreadRefresh = true
		w := openKeeper(t, e)
		got := w.schedParams().SyncInterval
		if got > si || got < si-si/10 {
			t.Fatalf("%s: SyncInterval %v, want within [%v, %v]", e.opts.AppID, got, si-si/10, si)
		}
		seen[got] = true
	}
	if len(seen) < 18 {
		t.Errorf("20 apps have %d distinct sync intervals, want them spread", len(seen))
	}
	if got := openKeeper(t, newEnv(t, srv)).schedParams().SyncInterval; got != si {
		t.Errorf("without SpreadRefresh: SyncInterval %v, want %v", got, si)
	}
}
