package wechat

import (
	"errors"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The measured defect: 3 s of errcode -1 from getticket while the ticket
// is stale (the token fresh), with a caller asking for the ticket every
// 10 ms, used 893 of the 1000 getticket calls of the day. The ticket goes
// through the refresher like the token: its failure back-off carries over
// from one refresh to the next, so a handful of calls are made, the stale
// ticket is served meanwhile, and a new one is had soon after the
// recovery.
func TestTicketOutageBounded(t *testing.T) {
	e := newEnv(t, newFake(t))
	o := newPathOutage(t, e.srv, wechattest.PathTicket)
	e.opts.APIBase = o.srv.URL
	e.opts.RetryBackoff = 0 // the default, 200 ms
	w := openKeeper(t, e)
	old, err := w.Ticket(t.Context(), KindJSAPITicket)
	if err != nil {
		t.Fatal(err)
	}
	// A token fetched an hour later: fresh when the ticket turns stale.
	e.srv.Advance(time.Hour)
	tok, err := w.AccessToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Refresh(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	tokens := e.rt.count(wechattest.PathToken)
	e.srv.Advance(7200*time.Second - 5*time.Minute - time.Hour) // the ticket is stale now
	start := e.srv.Now()
	o.set(start, 3*time.Second)
	var renewed time.Time
	for e.srv.Now().Before(start.Add(10 * time.Second)) {
		c, err := w.Ticket(t.Context(), KindJSAPITicket)
		now := e.srv.Now()
		switch {
		case err != nil:
			t.Fatalf("at +%v: Ticket: %v; want the stale ticket while it is valid", now.Sub(start), err)
		case renewed.IsZero() && c.ExpiresAt.After(old.ExpiresAt):
			renewed = now // the fake gives the same value, with a new expiry
		case renewed.IsZero() && c != old:
			t.Fatalf("at +%v: Ticket = %+v, want the stale %+v until a refresh succeeds", now.Sub(start), c, old)
		}
		settle(t, w)
		e.srv.Advance(10 * time.Millisecond)
	}
	if n := o.failed.Load(); n > 5 {
		t.Errorf("%d getticket calls failed during the 3 s outage, want at most 5", n)
	}
	if renewed.IsZero() {
		t.Fatal("no new ticket within 7 s of the recovery")
	}
	if after := renewed.Sub(start.Add(3 * time.Second)); after > 5*time.Second {
		t.Errorf("new ticket %v after the recovery, want within 5 s", after)
	}
	if n := e.rt.count(wechattest.PathToken); n != tokens {
		t.Errorf("%d token fetches during the ticket outage, want none (the token is fresh)", n-tokens)
	}
	t.Logf("%d failed getticket calls during the outage; new ticket %v after the recovery", o.failed.Load(), renewed.Sub(start.Add(3*time.Second)))
}

// WeChat's 45009 from getticket stops the ticket fetches of the day, of
// every ticket type (they share the budget), as it stops the token's; the
// token is not touched.
func TestTicketQuotaExhaustedStops(t *testing.T) {
	e := newEnv(t, newFake(t))
	w := openKeeper(t, e)
	if _, err := w.AccessToken(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.srv.Fail(wechattest.PathTicket, wechattest.Fault{Errcode: 45009})
	for _, k := range []Kind{KindJSAPITicket, KindJSAPITicket, KindCardTicket} {
		if _, err := w.Ticket(t.Context(), k); !errors.Is(err, ErrQuotaExhausted) {
			t.Fatalf("Ticket(%s) = %v, want ErrQuotaExhausted", k, err)
		}
	}
	if n := e.rt.count(wechattest.PathTicket); n != 1 {
		t.Errorf("getticket calls = %d, want 1 (none after the 45009)", n)
	}
	if n, _ := e.store.Count(t.Context(), DayCounter(APITicket, e.srv.Now())); n != 1000 {
		t.Errorf("getticket count = %d, want the budget 1000", n)
	}
	if _, err := w.AccessToken(t.Context()); err != nil {
		t.Errorf("AccessToken after the ticket quota ran out: %v", err)
	}
	e.srv.SetClock(NextQuotaDay(e.srv.Now()).Add(time.Minute))
	if _, err := w.Ticket(t.Context(), KindJSAPITicket); err != nil {
		t.Errorf("Ticket on the next quota day: %v", err)
	}
}

// Adoption never waits on the lock: when the token turns stale, N keepers
// sharing one store take the store's lock once per refresh cycle (the one
// that fetches), not N times: the others read the store first, without
// the lock, and adopt the token saved there.
func TestAdoptionTakesNoLock(t *testing.T) {
	const keepers, cycles = 5, 3
	e := newEnv(t, newFake(t))
	s := newMemStore()
	e.opts.Store = s
	first := openKeeper(t, e)
	if _, err := first.AccessToken(t.Context()); err != nil {
		t.Fatal(err)
	}
	ws := []*Wechat{first}
	for range keepers - 1 {
		ws = append(ws, openKeeper(t, e)) // adopts the stored token
	}
	locks, fetches := s.locks.Load(), e.rt.count(wechattest.PathToken)
	for cycle := range cycles {
		e.srv.Advance(7200*time.Second - 5*time.Minute) // stale now
		want := ""
		for i, w := range ws {
			if _, err := w.AccessToken(t.Context()); err != nil {
				t.Fatalf("cycle %d, keeper %d: %v", cycle, i, err)
			}
			settle(t, w)
			tok, err := w.AccessToken(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if want == "" {
				want = tok
			} else if tok != want {
				t.Fatalf("cycle %d: keeper %d serves a token other than the one fetched", cycle, i)
			}
		}
	}
	if n := e.rt.count(wechattest.PathToken) - fetches; n != cycles {
		t.Errorf("%d token fetches in %d refresh cycles, want %d", n, cycles, cycles)
	}
	if n := s.locks.Load() - locks; n != cycles {
		t.Errorf("%d acquisitions of the store's lock by %d keepers in %d refresh cycles, want %d (one per cycle)", n, keepers, cycles, cycles)
	}
}
