package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// limits are the guards' settings for the fetches of one credential: the
// API they are counted on and what bounds them. A zero MinInterval or
// HourlyCap disables that guard.
type limits struct {
	API         string        // the Counter API the attempts are counted on
	Calls       string        // what the attempts are called in errors: "fetches", "getticket calls"
	DailyBudget int           // attempts a quota day, failed ones included
	MinInterval time.Duration // since the stored credential was fetched (at most a quarter of its life)
	HourlyCap   int           // credentials issued (successful fetches) a Beijing hour
	// Cooldown says that the credential cooldown applies: the fetch sends
	// the AppSecret, and a rejection of it pauses the fetches.
	Cooldown bool
	// Refused counts the attempts the guards refuse, by reason; nil not to.
	Refused *[numRefusals]atomic.Int64
}

// check is what guards.check needs to know of one fetch attempt.
type check struct {
	Stored Credential // the stored credential, as read under the Store's lock
	// HoldsValid is whether a usable credential of the kind is held (in
	// memory or in the store; one WeChat rejected does not count): the
	// hourly cap is then strict, otherwise one fetch per overCapInterval
	// passes it.
	HoldsValid  bool
	StableForce bool        // a forced stable_token refresh (see stableForce)
	Retry       *retryState // the credential's failure back-off; nil for none
}

// guards are the checks before every fetch attempt of every credential a
// keeper holds, and the state they keep (see the Wechat doc comment for
// what each one prevents): the credential cooldown, the fetch counts the
// keeper has seen in the Store, the last fetch past each API's hourly cap
// and the last daily count seen of each API. The failure back-off is kept
// per credential (retryState) and checked here. The methods that read or
// add counts are called with the Store's lock held.
type guards struct {
	store              Store
	log                *slog.Logger
	credentialCooldown time.Duration // Options.CredentialCooldown

	mu            sync.Mutex // guards the fields below
	cooldownAt    time.Time  // when the cooldown state below was decided
	cooldownUntil time.Time
	cooldownErr   error
	cooldownN     int                // credential rejections in a row
	overCap       map[string]overCap // by API
	countsDay     string
	counts        map[Counter]int      // the highest count seen of each counter of countsDay
	quota         map[string]quotaSeen // the last daily count seen, by API
}

// overCap is the last fetch past an API's hourly cap.
type overCap struct {
	at     time.Time
	logged Counter // the hour of the last one logged
}

// quotaSeen is a daily count as last seen.
type quotaSeen struct {
	day  string
	used int
}

// newGuards returns the guards of a keeper on store. They read no clock:
// every check is made at a time the caller gives (the keeper's Clock).
func newGuards(store Store, log *slog.Logger, credentialCooldown time.Duration) *guards {
	return &guards{store: store, log: log, credentialCooldown: credentialCooldown,
		overCap: map[string]overCap{}, quota: map[string]quotaSeen{}}
}

// refuse counts a refusal of reason r for l.
func (l *limits) refuse(r refusal) {
	if l.Refused != nil {
		l.Refused[r].Add(1)
	}
}

// check decides, at now, whether a fetch attempt under l may be made: the
// failure back-off, the credential cooldown (if l.Cooldown), the minimum
// interval since a.Stored was fetched, the hourly cap of issued
// credentials (passed at a slow rate when none is held), WeChat's limit on
// forced stable_token refreshes and the daily budget (which WeChat's 45009
// fills, see exhausted). It returns the quota day to count the attempt on.
func (g *guards) check(ctx context.Context, l limits, a check, now time.Time) (day string, err error) {
	if a.Retry != nil {
		if d := a.Retry.wait(now); d > 0 {
			l.refuse(refusedRate)
			return "", fmt.Errorf("%w: backing off %v after failed attempts", ErrRateLimited, d.Round(time.Millisecond))
		}
	}
	if l.Cooldown {
		if err := g.checkCooldown(ctx, now); err != nil {
			l.refuse(refusedCooldown)
			return "", err
		}
	}
	if !a.Stored.FetchedAt.IsZero() && (l.MinInterval > 0 || a.StableForce) {
		life := a.Stored.ExpiresAt.Sub(a.Stored.FetchedAt)
		minGap := min(l.MinInterval, life/4)
		if a.StableForce {
			minGap = max(minGap, stableForceSpacing)
		}
		if since := now.Sub(a.Stored.FetchedAt); since >= 0 && since < minGap {
			l.refuse(refusedRate)
			return "", fmt.Errorf("%w: the stored credential was fetched %v ago, less than the minimum interval %v",
				ErrRateLimited, since.Round(time.Millisecond), minGap)
		}
	}
	day = QuotaDay(now)
	if l.HourlyCap > 0 {
		hk := HourCounter(l.API, now)
		issued, err := g.readCount(ctx, hk)
		if err != nil {
			return "", fmt.Errorf("wechat: reading the fetch count: %w", err)
		}
		if issued >= l.HourlyCap && (a.HoldsValid || !g.passCap(hk, now, l.HourlyCap)) {
			l.refuse(refusedRate)
			return "", fmt.Errorf("%w: %d issued this hour reached the cap of %d (%s)", ErrRateLimited, issued, l.HourlyCap, l.API)
		}
	}
	if a.StableForce {
		n, err := g.readCount(ctx, DayCounter(APIStableForce, now))
		if err != nil {
			return "", fmt.Errorf("wechat: reading the fetch count: %w", err)
		}
		if n >= stableForceDaily {
			l.refuse(refusedQuota)
			return "", fmt.Errorf("%w: %d forced stable_token refreshes today (WeChat allows %d)", ErrQuotaExhausted, n, stableForceDaily)
		}
	}
	used, err := g.readCount(ctx, DayCounter(l.API, now))
	if err != nil {
		return "", fmt.Errorf("wechat: reading the fetch count: %w", err)
	}
	g.noteQuota(l.API, day, used)
	if used >= l.DailyBudget {
		l.refuse(refusedQuota)
		return "", fmt.Errorf("%w: %d of %d %s used on %s (Beijing time); fetching resumes at %s",
			ErrQuotaExhausted, used, l.DailyBudget, l.Calls, day, NextQuotaDay(now).UTC().Format(time.RFC3339))
	}
	return day, nil
}

// count counts an attempt that check allowed, before it is made (a call
// whose reply is lost still costs quota), and returns the day's count.
func (g *guards) count(ctx context.Context, l limits, now time.Time, stableForce bool) (int, error) {
	used, err := g.addCount(ctx, DayCounter(l.API, now), 1)
	if err != nil {
		return 0, err
	}
	g.noteQuota(l.API, QuotaDay(now), used)
	if stableForce {
		if _, err := g.addCount(ctx, DayCounter(APIStableForce, now), 1); err != nil {
			return 0, err
		}
	}
	return used, nil
}

// issued records a successful fetch made at now: it ends the credential
// rejections in a row (if l.Cooldown) and counts the credential issued
// toward the hourly cap (issued credentials are what kill each other in a
// fight with another program).
func (g *guards) issued(ctx context.Context, l limits, now time.Time) {
	if l.Cooldown {
		g.clearCooldown(ctx, now)
	}
	if l.HourlyCap > 0 {
		if _, err := g.addCount(ctx, HourCounter(l.API, now), 1); err != nil {
			g.log.Error("wechat: cannot count the issued credential", "api", l.API, "err", err)
		}
	}
}

// exhausted records WeChat's 45009 for l's API: the day's count is raised
// to the budget, so that every process stops fetching until the next quota
// day. used is the count after the attempt.
func (g *guards) exhausted(ctx context.Context, l limits, now time.Time, used int) {
	if used >= l.DailyBudget {
		return
	}
	if n, err := g.addCount(ctx, DayCounter(l.API, now), l.DailyBudget-used); err == nil {
		g.noteQuota(l.API, QuotaDay(now), n)
	}
}

// noteQuota records the daily count of api last seen.
func (g *guards) noteQuota(api, day string, used int) {
	g.mu.Lock()
	g.quota[api] = quotaSeen{day, used}
	g.mu.Unlock()
}

// quotaUsed is the daily count of api last seen, and its day.
func (g *guards) quotaUsed(api string) (day string, used int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	q := g.quota[api]
	return q.day, q.used
}

// passCap reports whether a keeper without a valid credential (or with
// only one WeChat rejected) may fetch past the hourly cap hk now: at most
// once per overCapInterval. The first pass of an hour is logged.
func (g *guards) passCap(hk Counter, now time.Time, limit int) bool {
	g.mu.Lock()
	oc := g.overCap[hk.API]
	if !oc.at.IsZero() && now.Sub(oc.at) < overCapInterval && now.Sub(oc.at) >= 0 {
		g.mu.Unlock()
		return false
	}
	first := oc.logged != hk
	g.overCap[hk.API] = overCap{at: now, logged: hk}
	g.mu.Unlock()
	if first {
		g.log.Warn("wechat: no valid credential and the hourly cap of issued ones is reached: fetching anyway, at most once per "+overCapInterval.String(),
			"api", hk.API, "cap", limit)
	}
	return true
}

// readCount reads the store's count c. A count lower than one this keeper
// saw before (the store lost it: a deleted file, a flushed Redis) is
// re-added, so that losing the store does not reset the guards.
func (g *guards) readCount(ctx context.Context, c Counter) (int, error) {
	return g.addCount(ctx, c, 0)
}

// addCount adds n (0 to only read) to the store's count c, like readCount.
func (g *guards) addCount(ctx context.Context, c Counter, n int) (int, error) {
	var (
		got int
		err error
	)
	if n == 0 {
		got, err = g.store.Count(ctx, c)
	} else {
		got, err = g.store.AddCount(ctx, c, n)
	}
	if err != nil {
		return 0, err
	}
	g.mu.Lock()
	if g.countsDay != c.Day {
		g.countsDay, g.counts = c.Day, map[Counter]int{}
	}
	seen := g.counts[c] + n
	g.mu.Unlock()
	if got < seen {
		g.log.Warn("wechat: the store lost fetch counts it held (deleted or flushed?); adding back what this process knows",
			"count", c.String(), "stored", got, "known", seen)
		if got, err = g.store.AddCount(ctx, c, seen-got); err != nil {
			return 0, err
		}
	}
	g.mu.Lock()
	if g.countsDay == c.Day {
		g.counts[c] = max(g.counts[c], got)
	}
	g.mu.Unlock()
	return got, nil
}

// cooldownRecord is the Value of a KindCooldown entry.
type cooldownRecord struct {
	Code int    `json:"errcode"`
	Msg  string `json:"errmsg"`
	API  string `json:"api"`
	N    int    `json:"n"` // rejections in a row
}

// checkCooldown returns an ErrCooldown error, wrapping the *APIError that
// started it, while a cooldown saved in the Store (by any process) or known
// in memory lasts.
func (g *guards) checkCooldown(ctx context.Context, now time.Time) error {
	g.syncCooldown(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	if until, ok := g.cooldownLocked(now); ok {
		return &CooldownError{Until: until, Err: g.cooldownErr}
	}
	return nil
}

// syncCooldown adopts the cooldown record in the Store when it is newer
// than the one in memory: another process or host (or an earlier run of
// this one) started or ended it.
func (g *guards) syncCooldown(ctx context.Context) {
	c, err := g.store.Load(ctx, KindCooldown)
	if err != nil || c.IsZero() {
		return
	}
	var rec cooldownRecord
	if json.Unmarshal([]byte(c.Value), &rec) != nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if c.FetchedAt.Before(g.cooldownAt) {
		return
	}
	g.cooldownAt, g.cooldownN, g.cooldownUntil = c.FetchedAt, rec.N, c.ExpiresAt
	g.cooldownErr = nil
	if rec.Code != 0 {
		g.cooldownErr = &APIError{Code: rec.Code, Msg: cleanErrmsg(rec.Msg), API: rec.API}
	}
}

// cooldownUntilAt returns the end of the credential cooldown in force at
// now, or zero.
func (g *guards) cooldownUntilAt(now time.Time) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, _ := g.cooldownLocked(now)
	return until
}

// cooldownLocked returns the end of the credential cooldown in force at
// now, if one is; the caller holds g.mu.
func (g *guards) cooldownLocked(now time.Time) (until time.Time, ok bool) {
	if g.cooldownErr != nil && now.Before(g.cooldownUntil) {
		return g.cooldownUntil, true
	}
	return time.Time{}, false
}

// startCooldown pauses fetches after WeChat rejected the credentials, in
// memory and in the Store, for CredentialCooldown doubled for each
// rejection in a row, and returns the end of the pause.
func (g *guards) startCooldown(ctx context.Context, now time.Time, apiErr *APIError) time.Time {
	g.mu.Lock()
	g.cooldownN++
	d := g.credentialCooldown << min(g.cooldownN-1, 5)
	g.cooldownAt, g.cooldownUntil, g.cooldownErr = now, now.Add(d), apiErr
	rec := cooldownRecord{Code: apiErr.Code, Msg: apiErr.Msg, API: apiErr.API, N: g.cooldownN}
	until := g.cooldownUntil
	g.mu.Unlock()
	g.saveCooldown(ctx, rec, now, until)
	return until
}

// clearCooldown ends the rejections in a row after a successful fetch.
func (g *guards) clearCooldown(ctx context.Context, now time.Time) {
	g.mu.Lock()
	was := g.cooldownN
	g.cooldownN, g.cooldownErr, g.cooldownUntil, g.cooldownAt = 0, nil, time.Time{}, now
	g.mu.Unlock()
	if was > 0 {
		g.saveCooldown(ctx, cooldownRecord{}, now, now)
	}
}

// endCooldown ends the credential cooldown in force at now, in memory and
// in the Store, and reports whether one was.
func (g *guards) endCooldown(ctx context.Context, now time.Time) bool {
	g.syncCooldown(ctx)
	g.mu.Lock()
	_, active := g.cooldownLocked(now)
	g.mu.Unlock()
	if !active {
		return false
	}
	g.mu.Lock()
	g.cooldownN = max(g.cooldownN, 1) // so that clearCooldown saves the end
	g.mu.Unlock()
	g.clearCooldown(ctx, now)
	return true
}

func (g *guards) saveCooldown(ctx context.Context, rec cooldownRecord, now, until time.Time) {
	v, _ := json.Marshal(rec) // plain fields always marshal
	err := g.store.Save(ctx, KindCooldown, Credential{Value: string(v), ExpiresAt: until, FetchedAt: now})
	if err != nil && !errors.Is(err, ErrSuperseded) {
		g.log.Error("wechat: cannot save the fetch cooldown; other processes will not honour it", "err", err)
	}
}

// retryState is the failure back-off of one credential: after a failed
// fetch attempt the next one, of the same refresh or a later one, waits a
// back-off with jitter that doubles with each failure in a row up to 16
// times base, until a fetch succeeds. The waiter calls waited once it has
// waited (by whatever clock it sleeps on), and guards.check refuses an
// attempt that did not wait.
type retryState struct {
	base time.Duration // Options.RetryBackoff

	mu     sync.Mutex
	failN  int // failed attempts in a row
	nextAt time.Time
}

// fail records a failed attempt that ended at now.
func (s *retryState) fail(now time.Time) {
	s.mu.Lock()
	s.failN++
	s.nextAt = now.Add(backoff(s.base, s.failN-1))
	s.mu.Unlock()
}

// succeed ends the back-off.
func (s *retryState) succeed() {
	s.mu.Lock()
	s.failN, s.nextAt = 0, time.Time{}
	s.mu.Unlock()
}

// waited records that the back-off was waited: the next attempt may go
// (the back-off still doubles on the next failure).
func (s *retryState) waited() {
	s.mu.Lock()
	s.nextAt = time.Time{}
	s.mu.Unlock()
}

// wait is how long an attempt at now must still wait.
func (s *retryState) wait(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextAt.Sub(now)
}
