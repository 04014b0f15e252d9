package wechat

import (
	"context"
	"sync/atomic"
	"time"
)

// trigger says what started a refresh.
type trigger int

const (
	triggerStartup    trigger = iota // New found no valid token
	triggerBackground                // Run
	triggerStale                     // AccessToken met a stale or invalid token
	triggerPassive                   // Refresh(stale)
	triggerForced                    // ForceRefresh
	numTriggers
)

var triggerNames = [numTriggers]string{"startup", "background", "stale", "passive", "forced"}

func (t trigger) String() string { return triggerNames[t] }

// outcome says how a refresh ended.
type outcome int

const (
	outcomeFetched outcome = iota // a new token from WeChat
	outcomeAdopted                // a token another process (or start-up) stored
	outcomeFailed
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"fetched", "adopted", "failed"}

// fetchResult says how one upstream call of the token endpoint ended.
type fetchResult int

const (
	fetchOK       fetchResult = iota
	fetchRetry                // a transient failure, retried
	fetchError                // a failure that ended the fetch (after retries)
	fetchRejected             // WeChat rejected the credentials
	fetchQuota                // WeChat answered 45009
	numFetchResults
)

var fetchResultNames = [numFetchResults]string{"ok", "retry", "error", "rejected", "quota_exhausted"}

// refusal says why a fetch was not even attempted.
type refusal int

const (
	refusedQuota refusal = iota
	refusedRate
	refusedCooldown
	numRefusals
)

var refusalNames = [numRefusals]string{"quota", "rate", "cooldown"}

// counters are the keeper's monotonic counters.
type counters struct {
	refreshes [numTriggers][numOutcomes]atomic.Int64
	fetches   [numFetchResults]atomic.Int64
	refusals  [numRefusals]atomic.Int64
	tickets   [numFetchResults]atomic.Int64
	history   history // the access token's refreshes over 24 h, for RefreshHistory
}

func (c *counters) refresh(t trigger, o outcome) { c.refreshes[t][o].Add(1) }
func (c *counters) fetch(r fetchResult)          { c.fetches[r].Add(1) }
func (c *counters) refused(r refusal)            { c.refusals[r].Add(1) }

// Stats is a snapshot of a keeper's counters and state, made for a metrics
// layer: the maps' keys are label values, every count only grows.
type Stats struct {
	// Fetches counts upstream calls of the token endpoint by result:
	// "ok", "retry", "error", "rejected" (credentials), "quota_exhausted".
	Fetches map[string]int64
	// TicketFetches counts getticket calls by the same results.
	TicketFetches map[string]int64
	// Refused counts fetches the guards did not make, by reason:
	// "quota", "rate", "cooldown".
	Refused map[string]int64
	// Refreshes counts refreshes by trigger ("startup", "background",
	// "stale", "passive", "forced") and outcome ("fetched", "adopted",
	// "failed").
	Refreshes map[string]map[string]int64

	QuotaDay    string // the Beijing-time day of QuotaUsed
	QuotaUsed   int    // fetches counted in the Store that day, as last seen
	QuotaBudget int    // Options.DailyBudget

	TokenExpiresAt  time.Time // zero without a token
	TokenFetchedAt  time.Time
	TokenStaleAt    time.Time // when the token turns stale (see Status.StaleAt)
	TicketExpiresAt map[Kind]time.Time
}

// Stats returns a snapshot of the keeper's counters. It does no I/O.
func (w *Wechat) Stats() Stats {
	s := Stats{
		Fetches:         make(map[string]int64, numFetchResults),
		TicketFetches:   make(map[string]int64, numFetchResults),
		Refused:         make(map[string]int64, numRefusals),
		Refreshes:       make(map[string]map[string]int64, numTriggers),
		QuotaBudget:     w.opts.DailyBudget,
		TicketExpiresAt: map[Kind]time.Time{},
	}
	for r := range numFetchResults {
		s.Fetches[fetchResultNames[r]] = w.stats.fetches[r].Load()
		s.TicketFetches[fetchResultNames[r]] = w.stats.tickets[r].Load()
	}
	for r := range numRefusals {
		s.Refused[refusalNames[r]] = w.stats.refusals[r].Load()
	}
	for t := range numTriggers {
		m := make(map[string]int64, numOutcomes)
		for o := range numOutcomes {
			m[outcomeNames[o]] = w.stats.refreshes[t][o].Load()
		}
		s.Refreshes[triggerNames[t]] = m
	}
	s.QuotaDay, s.QuotaUsed = w.guards.quotaUsed(w.tokenAPIName())
	if h := w.token.cur.Load(); h != nil {
		s.TokenExpiresAt, s.TokenFetchedAt, s.TokenStaleAt = h.ExpiresAt, h.FetchedAt, h.staleAt
	}
	for i, k := range ticketKinds {
		if h := w.tickets[i].cur.Load(); h != nil {
			s.TicketExpiresAt[k] = h.ExpiresAt
		}
	}
	return s
}

// TokenState is how usable the held token is.
type TokenState string

// The token states.
const (
	StateFresh   TokenState = "fresh"   // served from memory
	StateStale   TokenState = "stale"   // served while it is refreshed
	StateInvalid TokenState = "invalid" // none, or expired: callers wait
)

// Status is a health view of a keeper.
type Status struct {
	Healthy        bool       // a valid token is held
	State          TokenState // of the token
	ExpiresAt      time.Time  // of the token; zero without one
	FetchedAt      time.Time
	StaleAt        time.Time // when the token turns stale and a refresh starts; zero without one
	LastRefresh    time.Time // when the last refresh succeeded
	LastError      string    // of the last refresh, "" if it succeeded; never holds a secret
	LastErrorAt    time.Time
	CooldownUntil  time.Time // fetches paused after a credential error until then, by this or another process
	QuotaDay       string
	QuotaUsed      int // read from the Store
	QuotaBudget    int
	StoreReachable bool // the Store answered
	// LockWaitSince is when a refresh started waiting for the Store's
	// lock (held by another process or host), once it has waited more
	// than a few seconds and while it still waits (the earliest, while
	// several refreshes wait); zero otherwise. The
	// wait is also logged once, naming the store.
	LockWaitSince time.Time
}

// Status reports the keeper's health. It reads the day's fetch count from
// the Store.
func (w *Wechat) Status(ctx context.Context) Status {
	now := w.clock.Now()
	st := Status{State: StateInvalid, QuotaBudget: w.opts.DailyBudget, QuotaDay: QuotaDay(now)}
	if h := w.token.cur.Load(); h != nil {
		st.ExpiresAt, st.FetchedAt, st.StaleAt = h.ExpiresAt, h.FetchedAt, h.staleAt
		switch {
		case now.Before(h.staleAt):
			st.State = StateFresh
		case now.Before(h.ExpiresAt):
			st.State = StateStale
		}
	}
	st.Healthy = st.State != StateInvalid
	api := w.tokenAPIName()
	if n, err := w.store.Count(ctx, Counter{API: api, Day: st.QuotaDay}); err == nil {
		st.QuotaUsed, st.StoreReachable = n, true
		w.guards.noteQuota(api, st.QuotaDay, n)
	}
	w.guards.syncCooldown(ctx) // a cooldown another process or host started shows too
	st.CooldownUntil = w.guards.cooldownUntilAt(now)
	w.mu.Lock()
	defer w.mu.Unlock()
	st.LastRefresh, st.LastErrorAt = w.lastRefresh, w.lastErrAt
	if w.lastErr != nil {
		st.LastError = w.lastErr.Error()
	}
	st.LockWaitSince = w.lockWaitSinceLocked()
	return st
}
