package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memStore is an in-memory Store: what one Redis would be to several
// keepers. Its lock is a channel of one slot; locks counts how often it
// was taken.
type memStore struct {
	mu     sync.Mutex
	creds  map[Kind]Credential
	counts map[Counter]int
	lock   chan struct{}
	locks  atomic.Int64
}

func newMemStore() *memStore {
	return &memStore{creds: map[Kind]Credential{}, counts: map[Counter]int{}, lock: make(chan struct{}, 1)}
}

func (s *memStore) Load(ctx context.Context, kind Kind) (Credential, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creds[kind], nil
}

func (s *memStore) Save(ctx context.Context, kind Kind, c Credential) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.creds[kind]; ok && old.FetchedAt.After(c.FetchedAt) {
		return ErrSuperseded
	}
	s.creds[kind] = c
	return nil
}

func (s *memStore) Lock(ctx context.Context) (func(), error) {
	select {
	case s.lock <- struct{}{}:
		s.locks.Add(1)
		return func() { <-s.lock }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *memStore) Count(ctx context.Context, c Counter) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[c], nil
}

func (s *memStore) AddCount(ctx context.Context, c Counter, n int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[c] += n
	return s.counts[c], nil
}

// guardsNow is the time of the guards' table tests: 18:00 Beijing time.
var guardsNow = epoch

// tokenLimits and ticketLimits are limits like a keeper's, small enough
// to reach.
var (
	tokenLimits = limits{API: APIToken, Calls: "fetches", DailyBudget: 10,
		MinInterval: 10 * time.Second, HourlyCap: 3, Cooldown: true}
	ticketLimits = limits{API: APITicket, Calls: "getticket calls", DailyBudget: 5,
		MinInterval: 10 * time.Second, HourlyCap: 3}
)

// fetched is a credential fetched ago before guardsNow that lives life.
func fetched(ago, life time.Duration) Credential {
	at := guardsNow.Add(-ago)
	return Credential{Value: "CRED", FetchedAt: at, ExpiresAt: at.Add(life)}
}

// saveCooldownRecord saves a credential cooldown in s, as another process
// would have.
func saveCooldownRecord(t *testing.T, s Store, from, until time.Time) {
	t.Helper()
	v, _ := json.Marshal(cooldownRecord{Code: 40125, Msg: "invalid appsecret", API: "/cgi-bin/token", N: 1})
	if err := s.Save(t.Context(), KindCooldown, Credential{Value: string(v), FetchedAt: from, ExpiresAt: until}); err != nil {
		t.Fatal(err)
	}
}

// Each guard on its own, for the token's limits and the tickets': what
// check refuses, with which error and which Refused counter.
func TestGuardsCheck(t *testing.T) {
	failed := func() *retryState {
		r := &retryState{base: time.Second}
		r.fail(guardsNow)
		return r
	}
	waited := func() *retryState {
		r := failed()
		r.waited()
		return r
	}
	tests := []struct {
		name    string
		lim     limits
		setup   func(t *testing.T, s *memStore)
		a       check
		want    error   // nil: allowed
		refused refusal // when want is not nil
	}{
		{name: "nothing counted", lim: tokenLimits, a: check{Stored: fetched(time.Hour, 2*time.Hour)}},
		{name: "nothing stored", lim: ticketLimits},
		{name: "daily budget left", lim: tokenLimits, setup: func(t *testing.T, s *memStore) {
			s.AddCount(t.Context(), DayCounter(APIToken, guardsNow), 9)
		}},
		{name: "daily budget spent", lim: tokenLimits, setup: func(t *testing.T, s *memStore) {
			s.AddCount(t.Context(), DayCounter(APIToken, guardsNow), 10)
		}, want: ErrQuotaExhausted, refused: refusedQuota},
		{name: "ticket budget spent", lim: ticketLimits, setup: func(t *testing.T, s *memStore) {
			s.AddCount(t.Context(), DayCounter(APITicket, guardsNow), 5)
		}, want: ErrQuotaExhausted, refused: refusedQuota},
		{name: "the token's count does not spend the ticket budget", lim: ticketLimits, setup: func(t *testing.T, s *memStore) {
			s.AddCount(t.Context(), DayCounter(APIToken, guardsNow), 100)
		}},
		{name: "yesterday's count", lim: tokenLimits, setup: func(t *testing.T, s *memStore) {
			s.AddCount(t.Context(), DayCounter(APIToken, guardsNow.Add(-24*time.Hour)), 10)
		}},
		{name: "within the minimum interval", lim: tokenLimits, a: check{Stored: fetched(5*time.Second, 2*time.Hour)},
			want: ErrRateLimited, refused: refusedRate},
		{name: "ticket within the minimum interval", lim: ticketLimits, a: check{Stored: fetched(5*time.Second, 2*time.Hour)},
			want: ErrRateLimited, refused: refusedRate},
		{name: "past the minimum interval", lim: tokenLimits, a: check{Stored: fetched(10*time.Second, 2*time.Hour)}},
		{name: "a quarter of a short life", lim: tokenLimits, a: check{Stored: fetched(3*time.Second, 8*time.Second)}},
		{name: "stored in the future", lim: tokenLimits, a: check{Stored: fetched(-time.Minute, 2*time.Hour)}},
		{name: "no minimum interval", lim: limits{API: APIToken, Calls: "fetches", DailyBudget: 1},
			a: check{Stored: fetched(time.Second, 2*time.Hour)}},
		{name: "forced stable_token within 30 s", lim: tokenLimits, a: check{Stored: fetched(20*time.Second, 2*time.Hour), StableForce: true},
			want: ErrRateLimited, refused: refusedRate},
		{name: "forced stable_token 20 times today", lim: tokenLimits, setup: func(t *testing.T, s *memStore) {
			s.AddCount(t.Context(), DayCounter(APIStableForce, guardsNow), stableForceDaily)
		}, a: check{Stored: fetched(time.Minute, 2*time.Hour), StableForce: true}, want: ErrQuotaExhausted, refused: refusedQuota},
		{name: "hourly cap with a valid credential held", lim: tokenLimits, setup: func(t *testing.T, s *memStore) {
			s.AddCount(t.Context(), HourCounter(APIToken, guardsNow), 3)
		}, a: check{HoldsValid: true}, want: ErrRateLimited, refused: refusedRate},
		{name: "hourly cap without one", lim: tokenLimits, setup: func(t *testing.T, s *memStore) {
			s.AddCount(t.Context(), HourCounter(APIToken, guardsNow), 3)
		}},
		{name: "ticket hourly cap", lim: ticketLimits, setup: func(t *testing.T, s *memStore) {
			s.AddCount(t.Context(), HourCounter(APITicket, guardsNow), 3)
		}, a: check{HoldsValid: true}, want: ErrRateLimited, refused: refusedRate},
		{name: "last hour's cap", lim: tokenLimits, setup: func(t *testing.T, s *memStore) {
			s.AddCount(t.Context(), HourCounter(APIToken, guardsNow.Add(-time.Hour)), 3)
		}, a: check{HoldsValid: true}},
		{name: "credential cooldown in the store", lim: tokenLimits, setup: func(t *testing.T, s *memStore) {
			saveCooldownRecord(t, s, guardsNow.Add(-time.Second), guardsNow.Add(time.Minute))
		}, want: ErrCooldown, refused: refusedCooldown},
		{name: "credential cooldown over", lim: tokenLimits, setup: func(t *testing.T, s *memStore) {
			saveCooldownRecord(t, s, guardsNow.Add(-2*time.Minute), guardsNow.Add(-time.Minute))
		}},
		{name: "no credential cooldown for tickets", lim: ticketLimits, setup: func(t *testing.T, s *memStore) {
			saveCooldownRecord(t, s, guardsNow.Add(-time.Second), guardsNow.Add(time.Minute))
		}},
		{name: "back-off not waited", lim: ticketLimits, a: check{Retry: failed()}, want: ErrRateLimited, refused: refusedRate},
		{name: "back-off waited", lim: ticketLimits, a: check{Retry: waited()}},
		{name: "no failure", lim: tokenLimits, a: check{Retry: &retryState{base: time.Second}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newMemStore()
			if tc.setup != nil {
				tc.setup(t, s)
			}
			var refused [numRefusals]atomic.Int64
			l := tc.lim
			l.Refused = &refused
			g := newGuards(s, slog.New(slog.DiscardHandler), time.Minute)
			day, err := g.check(t.Context(), l, tc.a, guardsNow)
			if tc.want == nil {
				if err != nil || day != QuotaDay(guardsNow) {
					t.Fatalf("check = %q, %v; want the attempt allowed on %s", day, err, QuotaDay(guardsNow))
				}
				for r := range numRefusals {
					if n := refused[r].Load(); n != 0 {
						t.Errorf("%d refusals counted as %s", n, refusalNames[r])
					}
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("check: %v; want %v", err, tc.want)
			}
			for r := range numRefusals {
				want := int64(0)
				if r == tc.refused {
					want = 1
				}
				if n := refused[r].Load(); n != want {
					t.Errorf("refusals counted as %s = %d, want %d", refusalNames[r], n, want)
				}
			}
		})
	}
}

// Past the hourly cap without a valid credential, one attempt per
// overCapInterval passes, whatever the clock does in between.
func TestGuardsCapPassedSlowly(t *testing.T) {
	s := newMemStore()
	g := newGuards(s, slog.New(slog.DiscardHandler), time.Minute)
	start := guardsNow.Add(10 * time.Minute) // 18:10 Beijing time: every step in one hour
	s.AddCount(t.Context(), HourCounter(APIToken, start), 3)
	steps := []struct {
		at   time.Duration // after start
		pass bool
	}{
		{0, true},
		{time.Second, false},
		{overCapInterval - time.Second, false},
		{-time.Second, true}, // the clock went back: not held against it
		{overCapInterval - time.Second, true},
		{overCapInterval, false},
	}
	for _, st := range steps {
		_, err := g.check(t.Context(), tokenLimits, check{}, start.Add(st.at))
		if pass := err == nil; pass != st.pass {
			t.Errorf("at +%v: check = %v; want pass %v", st.at, err, st.pass)
		}
	}
}

// What the keeper records through the guards after an attempt: the count
// before the call, the issued credential after a success, WeChat's 45009,
// a rejection of the credentials, and counts the store lost.
func TestGuardsRecord(t *testing.T) {
	ctx := t.Context()
	s := newMemStore()
	g := newGuards(s, slog.New(slog.DiscardHandler), time.Minute)
	count := func(c Counter) int { n, _ := s.Count(ctx, c); return n }

	// An attempt counts on its API's day, a forced stable_token refresh on
	// stable_force too.
	if used, err := g.count(ctx, tokenLimits, guardsNow, true); err != nil || used != 1 {
		t.Fatalf("count = %d, %v; want 1", used, err)
	}
	if n := count(DayCounter(APIStableForce, guardsNow)); n != 1 {
		t.Errorf("stable_force count = %d, want 1", n)
	}
	if day, used := g.quotaUsed(APIToken); day != QuotaDay(guardsNow) || used != 1 {
		t.Errorf("quota seen = %s %d, want %s 1", day, used, QuotaDay(guardsNow))
	}

	// A rejection starts the cooldown, in memory and in the store; it
	// doubles on the next one; a success ends it.
	apiErr := &APIError{Code: 40125, Msg: "invalid appsecret", API: "/cgi-bin/token"}
	if until := g.startCooldown(ctx, guardsNow, apiErr); !until.Equal(guardsNow.Add(time.Minute)) {
		t.Errorf("cooldown until %v, want 1 min", until.Sub(guardsNow))
	}
	other := newGuards(s, slog.New(slog.DiscardHandler), time.Minute) // another process
	if _, err := other.check(ctx, tokenLimits, check{}, guardsNow.Add(30*time.Second)); !errors.Is(err, ErrCooldown) {
		t.Errorf("another process on the store: %v, want ErrCooldown", err)
	}
	if until := g.startCooldown(ctx, guardsNow.Add(time.Minute), apiErr); !until.Equal(guardsNow.Add(3 * time.Minute)) {
		t.Errorf("second cooldown until +%v, want +3 min (doubled)", until.Sub(guardsNow))
	}
	g.issued(ctx, tokenLimits, guardsNow.Add(4*time.Minute))
	if _, err := other.check(ctx, tokenLimits, check{}, guardsNow.Add(4*time.Minute)); err != nil {
		t.Errorf("after a success: %v, want the cooldown ended for every process", err)
	}
	if n := count(HourCounter(APIToken, guardsNow)); n != 1 {
		t.Errorf("issued this hour = %d, want 1", n)
	}
	g.issued(ctx, limits{API: "nocap", DailyBudget: 1}, guardsNow)
	if n := count(HourCounter("nocap", guardsNow)); n != 0 {
		t.Errorf("issued without an hourly cap = %d, want not counted", n)
	}

	// 45009 spends the day's budget for every process.
	used, _ := g.count(ctx, ticketLimits, guardsNow, false)
	g.exhausted(ctx, ticketLimits, guardsNow, used)
	if n := count(DayCounter(APITicket, guardsNow)); n != ticketLimits.DailyBudget {
		t.Errorf("getticket count after 45009 = %d, want the budget %d", n, ticketLimits.DailyBudget)
	}
	if _, err := other.check(ctx, ticketLimits, check{}, guardsNow); !errors.Is(err, ErrQuotaExhausted) {
		t.Errorf("after 45009: %v, want ErrQuotaExhausted", err)
	}
	if _, err := other.check(ctx, ticketLimits, check{}, NextQuotaDay(guardsNow)); err != nil {
		t.Errorf("the next quota day: %v, want allowed", err)
	}

	// A store that lost its counts gets back what this keeper saw.
	s.mu.Lock()
	s.counts = map[Counter]int{}
	s.mu.Unlock()
	if n, err := g.readCount(ctx, DayCounter(APITicket, guardsNow)); err != nil || n != ticketLimits.DailyBudget {
		t.Errorf("count after the store lost it = %d, %v; want %d re-added", n, err, ticketLimits.DailyBudget)
	}
}

// The failure back-off of one credential: between half and all of
// base·2^(n-1) after n failures in a row, at most 16·base, zero once
// waited or after a success.
func TestRetryState(t *testing.T) {
	const base = 100 * time.Millisecond
	tests := []struct {
		failures int
		lo, hi   time.Duration
	}{
		{0, 0, 0},
		{1, base / 2, base},
		{2, base, 2 * base},
		{3, 2 * base, 4 * base},
		{5, 8 * base, 16 * base},
		{9, 8 * base, 16 * base},
	}
	for _, tc := range tests {
		r := &retryState{base: base}
		for range tc.failures {
			r.fail(guardsNow)
		}
		if d := max(r.wait(guardsNow), 0); d < tc.lo || d > tc.hi {
			t.Errorf("after %d failures: wait %v, want within [%v, %v]", tc.failures, d, tc.lo, tc.hi)
		}
		if d := r.wait(guardsNow.Add(16 * base)); d > 0 {
			t.Errorf("after %d failures: wait %v once 16·base passed", tc.failures, d)
		}
		r.waited()
		if d := r.wait(guardsNow); d > 0 {
			t.Errorf("after %d failures, waited: wait %v, want 0", tc.failures, d)
		}
		if tc.failures > 0 {
			r.fail(guardsNow) // the back-off goes on doubling after a wait
			if d := r.wait(guardsNow); d < tc.lo && tc.failures < 5 {
				t.Errorf("a failure after %d and a wait: %v, want at least %v", tc.failures, d, tc.lo)
			}
		}
		r.succeed()
		if d := r.wait(guardsNow); d > 0 {
			t.Errorf("after a success: wait %v, want 0", d)
		}
	}
}
