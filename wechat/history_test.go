package wechat

import (
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// RefreshHistory counts the token's refreshes by outcome in 10-minute
// slots, keeps WeChat's errcode of a failure, and forgets what is older
// than 24 hours.
func TestRefreshHistory(t *testing.T) {
	srv := newFake(t)
	e := newEnv(t, srv)
	e.opts.MaxAttempts = 1
	e.opts.MaxFetchesPerHour = 7
	w := openKeeper(t, e)

	if h := w.RefreshHistory(); len(h.Slots) != 0 || h.API != APIToken || h.HourlyCap != 7 {
		t.Fatalf("a new keeper's history = %+v, want no slots, API token, cap 7", h)
	}
	if _, err := w.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	h := w.RefreshHistory()
	if len(h.Slots) != 1 || h.Slots[0].Fetched != 1 || h.Slots[0].Failed != 0 {
		t.Fatalf("after one fetch: %+v", h.Slots)
	}
	if start := h.Slots[0].Start; !start.Equal(srv.Now().Truncate(HistorySlot)) {
		t.Fatalf("the slot starts at %v, want %v", start, srv.Now().Truncate(HistorySlot))
	}

	// An hour later, a forced refresh fails with errcode 40164.
	srv.Advance(time.Hour)
	srv.Fail("/cgi-bin/token", wechattest.Fault{Errcode: 40164})
	if _, err := w.ForceRefresh(t.Context()); err == nil {
		t.Fatal("the forced refresh succeeded against a failing WeChat")
	}
	h = w.RefreshHistory()
	if len(h.Slots) != 2 {
		t.Fatalf("after a failure an hour later: %+v, want 2 slots", h.Slots)
	}
	if s := h.Slots[1]; s.Failed != 1 || s.Errcode != 40164 || s.Fetched != 0 {
		t.Fatalf("the failed slot = %+v, want 1 failure with errcode 40164", s)
	}
	if !h.Slots[0].Start.Before(h.Slots[1].Start) {
		t.Fatalf("slots are not oldest first: %+v", h.Slots)
	}

	// 23 h 30 min later the first slot has left the 24 hours, the second
	// has not.
	srv.Advance(23*time.Hour + 30*time.Minute)
	if h = w.RefreshHistory(); len(h.Slots) != 1 || h.Slots[0].Failed != 1 {
		t.Fatalf("23.5 h later: %+v, want only the failed slot", h.Slots)
	}
	// A slot reused a day later starts from zero.
	srv.Advance(time.Hour)
	w.stats.history.add(srv.Now(), outcomeAdopted)
	if h = w.RefreshHistory(); len(h.Slots) != 1 || h.Slots[0].Adopted != 1 || h.Slots[0].Failed != 0 || h.Slots[0].Errcode != 0 {
		t.Fatalf("a reused slot = %+v, want only the new adoption", h.Slots)
	}
}

// Noting a refresh in the history allocates nothing.
func TestRefreshHistoryNoAlloc(t *testing.T) {
	var h history
	now := epoch
	if n := testing.AllocsPerRun(100, func() {
		h.add(now, outcomeFetched)
		now = now.Add(time.Minute)
	}); n != 0 {
		t.Fatalf("history.add allocates %v times", n)
	}
}

// A keeper that adopts a stored token at Open shows it in its history.
func TestRefreshHistoryAdoptedAtOpen(t *testing.T) {
	srv := newFake(t)
	e := newEnv(t, srv)
	first := openKeeper(t, e)
	if _, err := first.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	second := openKeeper(t, e)
	if h := second.RefreshHistory(); len(h.Slots) != 1 || h.Slots[0].Adopted != 1 || h.Slots[0].Fetched != 0 {
		t.Fatalf("a keeper that adopted at Open: %+v", h.Slots)
	}
}

// BenchmarkHistoryAdd measures noting one refresh in the history.
func BenchmarkHistoryAdd(b *testing.B) {
	var h history
	now := epoch
	b.ReportAllocs()
	for b.Loop() {
		h.add(now, outcomeFetched)
	}
}
