package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// The guards of token fetches, checked before every attempt (see the
// Wechat doc comment for what each one prevents).

// overCapInterval is how often a keeper that holds no valid token may
// fetch past the hourly cap: the cap bounds a token war, which needs a
// valid token to lose, so it never keeps a server without a token for
// long, but a broken WeChat (or one giving very short lives) is still
// called only this often.
const overCapInterval = 5 * time.Minute

// lockWarnAfter is how long a refresh waits on the Store's lock before it
// logs that it is waiting and Status says so.
const lockWarnAfter = 3 * time.Second

// logRepeatWindow is how long a repeated warning is suppressed after it was
// logged; the next one says how many were suppressed.
const logRepeatWindow = time.Minute

// stableForce reports whether a refresh with force uses stable_token's
// force_refresh, which WeChat limits (stableForceDaily, stableForceSpacing).
func (w *Wechat) stableForce(force bool) bool {
	return force && w.opts.TokenAPI == TokenAPIStable
}

// tokenAPIName is the Counter API of the configured token endpoint.
func (w *Wechat) tokenAPIName() string {
	if w.opts.TokenAPI == TokenAPIStable {
		return APIStableToken
	}
	return APIToken
}

// guard checks, at now, whether a token fetch may be attempted: the
// credential cooldown, the minimum interval since stored was fetched, the
// hourly cap of issued tokens (passed at a slow rate when no valid token is
// held), WeChat's limit on forced stable_token refreshes and the daily
// budget. stableForce is a forced stable_token refresh (see stableForce).
// rejected is a token WeChat rejected (the stale token of a passive
// refresh that the store still holds), which does not count as held. It
// returns the quota day to count the attempt on. The caller holds the
// Store's lock.
func (w *Wechat) guard(ctx context.Context, api string, stored Credential, now time.Time, stableForce bool, rejected string) (day string, err error) {
	if err := w.checkCooldown(ctx, now); err != nil {
		w.stats.refused(refusedCooldown)
		return "", err
	}
	if !stored.FetchedAt.IsZero() {
		life := stored.ExpiresAt.Sub(stored.FetchedAt)
		minGap := min(w.opts.MinFetchInterval, life/4)
		if stableForce {
			minGap = max(minGap, stableForceSpacing)
		}
		if since := now.Sub(stored.FetchedAt); since >= 0 && since < minGap {
			w.stats.refused(refusedRate)
			return "", fmt.Errorf("%w: the stored token was fetched %v ago, less than the minimum interval %v",
				ErrRateLimited, since.Round(time.Millisecond), minGap)
		}
	}
	day = QuotaDay(now)
	hk := HourCounter(api, now)
	issued, err := w.readCount(ctx, hk)
	if err != nil {
		return "", fmt.Errorf("wechat: reading the fetch count: %w", err)
	}
	if issued >= w.opts.MaxFetchesPerHour {
		if w.holdsValid(stored, now, rejected) || !w.passCap(hk, now) {
			w.stats.refused(refusedRate)
			return "", fmt.Errorf("%w: %d tokens issued this hour reached the cap MaxFetchesPerHour", ErrRateLimited, issued)
		}
	}
	if stableForce {
		n, err := w.readCount(ctx, DayCounter(APIStableForce, now))
		if err != nil {
			return "", fmt.Errorf("wechat: reading the fetch count: %w", err)
		}
		if n >= stableForceDaily {
			w.stats.refused(refusedQuota)
			return "", fmt.Errorf("%w: %d forced stable_token refreshes today (WeChat allows %d)", ErrQuotaExhausted, n, stableForceDaily)
		}
	}
	used, err := w.readCount(ctx, DayCounter(api, now))
	if err != nil {
		return "", fmt.Errorf("wechat: reading the fetch count: %w", err)
	}
	w.noteQuota(day, used)
	if used >= w.opts.DailyBudget {
		w.stats.refused(refusedQuota)
		return "", fmt.Errorf("%w: %d of %d fetches used on %s (Beijing time); fetching resumes at %s",
			ErrQuotaExhausted, used, w.opts.DailyBudget, day, NextQuotaDay(now).UTC().Format(time.RFC3339))
	}
	return day, nil
}

// holdsValid reports whether a token that has not expired, and is not
// rejected (one WeChat rejected; "" for none), is held in memory or in the
// store. A token WeChat rejected is worth nothing, however long it would
// last: a keeper holding only that one holds no token (in a token war,
// say), and the cap must not keep it there for the rest of the hour.
func (w *Wechat) holdsValid(stored Credential, now time.Time, rejected string) bool {
	usable := func(c Credential) bool { return c.ValidAt(now) && (rejected == "" || c.Value != rejected) }
	if h := w.tok.Load(); h != nil && usable(h.Credential) {
		return true
	}
	return usable(stored)
}

// passCap reports whether a keeper without a valid token (or with only one
// WeChat rejected) may fetch past the
// hourly cap hk now: at most once per overCapInterval. The first pass of an
// hour is logged.
func (w *Wechat) passCap(hk Counter, now time.Time) bool {
	w.mu.Lock()
	if !w.overCapAt.IsZero() && now.Sub(w.overCapAt) < overCapInterval && now.Sub(w.overCapAt) >= 0 {
		w.mu.Unlock()
		return false
	}
	w.overCapAt = now
	first := w.overCapLogged != hk
	w.overCapLogged = hk
	w.mu.Unlock()
	if first {
		w.log.Warn("wechat: no valid token and the hourly cap of issued tokens is reached: fetching anyway, at most once per "+overCapInterval.String(),
			"cap", w.opts.MaxFetchesPerHour)
	}
	return true
}

// noteFailure records a failed fetch attempt: the next attempt, of this
// refresh or a later one, waits a back-off with jitter that doubles with
// each failure in a row up to 16 times RetryBackoff.
func (w *Wechat) noteFailure() {
	now := w.clock.Now()
	w.mu.Lock()
	w.failN++
	w.nextAttemptAt = now.Add(backoff(w.opts.RetryBackoff, w.failN-1))
	w.mu.Unlock()
}

// noteSuccess ends the back-off of noteFailure.
func (w *Wechat) noteSuccess() {
	w.mu.Lock()
	w.failN, w.nextAttemptAt = 0, time.Time{}
	w.mu.Unlock()
}

// attemptWait is how long the next fetch attempt must wait.
func (w *Wechat) attemptWait() time.Duration {
	now := w.clock.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nextAttemptAt.Sub(now)
}

// readCount reads the store's count c. A count lower than one this keeper
// saw before (the store lost it: a deleted file, a flushed Redis) is
// re-added, so that losing the store does not reset the guards.
func (w *Wechat) readCount(ctx context.Context, c Counter) (int, error) {
	return w.addCount(ctx, c, 0)
}

// addCount adds n (0 to only read) to the store's count c, like readCount.
func (w *Wechat) addCount(ctx context.Context, c Counter, n int) (int, error) {
	var (
		got int
		err error
	)
	if n == 0 {
		got, err = w.store.Count(ctx, c)
	} else {
		got, err = w.store.AddCount(ctx, c, n)
	}
	if err != nil {
		return 0, err
	}
	w.mu.Lock()
	if w.countsDay != c.Day {
		w.countsDay, w.counts = c.Day, map[Counter]int{}
	}
	seen := w.counts[c] + n
	w.mu.Unlock()
	if got < seen {
		w.log.Warn("wechat: the store lost fetch counts it held (deleted or flushed?); adding back what this process knows",
			"count", c.String(), "stored", got, "known", seen)
		if got, err = w.store.AddCount(ctx, c, seen-got); err != nil {
			return 0, err
		}
	}
	w.mu.Lock()
	if w.countsDay == c.Day {
		w.counts[c] = max(w.counts[c], got)
	}
	w.mu.Unlock()
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
func (w *Wechat) checkCooldown(ctx context.Context, now time.Time) error {
	w.syncCooldown(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	if until, ok := w.cooldownLocked(now); ok {
		return &CooldownError{Until: until, Err: w.cooldownErr}
	}
	return nil
}

// syncCooldown adopts the cooldown record in the Store when it is newer
// than the one in memory: another process or host (or an earlier run of
// this one) started or ended it.
func (w *Wechat) syncCooldown(ctx context.Context) {
	c, err := w.store.Load(ctx, KindCooldown)
	if err != nil || c.IsZero() {
		return
	}
	var rec cooldownRecord
	if json.Unmarshal([]byte(c.Value), &rec) != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.FetchedAt.Before(w.cooldownAt) {
		return
	}
	w.cooldownAt, w.cooldownN, w.cooldownUntil = c.FetchedAt, rec.N, c.ExpiresAt
	w.cooldownErr = nil
	if rec.Code != 0 {
		w.cooldownErr = &APIError{Code: rec.Code, Msg: cleanErrmsg(rec.Msg), API: rec.API}
	}
}

// cooldownLocked returns the end of the credential cooldown in force at
// now, if one is; the caller holds w.mu.
func (w *Wechat) cooldownLocked(now time.Time) (until time.Time, ok bool) {
	if w.cooldownErr != nil && now.Before(w.cooldownUntil) {
		return w.cooldownUntil, true
	}
	return time.Time{}, false
}

// startCooldown pauses fetches after WeChat rejected the credentials, in
// memory and in the Store, for CredentialCooldown doubled for each
// rejection in a row, and returns the end of the pause.
func (w *Wechat) startCooldown(ctx context.Context, now time.Time, apiErr *APIError) time.Time {
	w.mu.Lock()
	w.cooldownN++
	d := w.opts.CredentialCooldown << min(w.cooldownN-1, 5)
	w.cooldownAt, w.cooldownUntil, w.cooldownErr = now, now.Add(d), apiErr
	rec := cooldownRecord{Code: apiErr.Code, Msg: apiErr.Msg, API: apiErr.API, N: w.cooldownN}
	until := w.cooldownUntil
	w.mu.Unlock()
	w.saveCooldown(ctx, rec, now, until)
	return until
}

// clearCooldown ends the rejections in a row after a successful fetch.
func (w *Wechat) clearCooldown(ctx context.Context, now time.Time) {
	w.mu.Lock()
	was := w.cooldownN
	w.cooldownN, w.cooldownErr, w.cooldownUntil, w.cooldownAt = 0, nil, time.Time{}, now
	w.mu.Unlock()
	if was > 0 {
		w.saveCooldown(ctx, cooldownRecord{}, now, now)
	}
}

func (w *Wechat) saveCooldown(ctx context.Context, rec cooldownRecord, now, until time.Time) {
	v, _ := json.Marshal(rec) // plain fields always marshal
	err := w.store.Save(ctx, KindCooldown, Credential{Value: string(v), ExpiresAt: until, FetchedAt: now})
	if err != nil && !errors.Is(err, ErrSuperseded) {
		w.log.Error("wechat: cannot save the fetch cooldown; other processes will not honour it", "err", err)
	}
}

// lockStore takes the Store's lock; every refresh takes it through here,
// whatever the Store. A wait longer than lockWarnAfter is shown by
// Status.LockWaitSince until the lock is taken or the wait ends (while
// several refreshes wait, the earliest start of a long wait is shown), and
// logged once, naming the store (like every repeated warning, at most once
// a minute); the end of a logged wait is logged with how long it took.
func (w *Wechat) lockStore(ctx context.Context) (func(), error) {
	start, realStart := w.clock.Now(), time.Now()
	var (
		mu           sync.Mutex
		done, warned bool
		id           uint64 // in w.lockWaits, once long; 0 before
	)
	t := time.AfterFunc(w.lockWarnAfter, func() {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return
		}
		w.mu.Lock()
		w.lockWaitN++
		id = w.lockWaitN
		if w.lockWaits == nil {
			w.lockWaits = map[uint64]time.Time{}
		}
		w.lockWaits[id] = start
		w.mu.Unlock()
		warned = w.warnRepeat("lock", "wechat: a refresh is waiting for the store's lock (held by another process or host?)",
			"store", describeStore(w.store), "waited", time.Since(realStart).Round(time.Millisecond).String())
	})
	unlock, err := w.store.Lock(ctx)
	t.Stop()
	mu.Lock()
	done = true
	if id != 0 {
		w.mu.Lock()
		delete(w.lockWaits, id)
		w.mu.Unlock()
	}
	if warned {
		waited := time.Since(realStart).Round(time.Millisecond).String()
		if err != nil {
			w.log.Warn("wechat: gave up waiting for the store's lock", "store", describeStore(w.store), "waited", waited, "err", err)
		} else {
			w.log.Info("wechat: got the store's lock", "store", describeStore(w.store), "waited", waited)
		}
	}
	mu.Unlock()
	return unlock, err
}

// lockWaitSinceLocked is the earliest start of the long waits on the
// Store's lock still going on; zero if none. The caller holds w.mu.
func (w *Wechat) lockWaitSinceLocked() time.Time {
	var since time.Time
	for _, t := range w.lockWaits {
		if since.IsZero() || t.Before(since) {
			since = t
		}
	}
	return since
}

// describeStore names a Store for a log line: its path or its String, or
// else its type.
func describeStore(s Store) string {
	switch v := s.(type) {
	case interface{ Path() string }:
		return v.Path()
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprintf("%T", s)
}

// warnRepeat logs a warning unless the same key was logged less than
// logRepeatWindow ago (by the keeper's clock); then it only counts it, and
// the next line of that key says how many were suppressed. It reports
// whether it logged.
func (w *Wechat) warnRepeat(key, msg string, args ...any) bool {
	return w.logRepeat(slog.LevelWarn, key, msg, args...)
}

// logRepeat is warnRepeat at level.
func (w *Wechat) logRepeat(level slog.Level, key, msg string, args ...any) bool {
	now := w.clock.Now()
	w.logMu.Lock()
	r := w.repeats[key]
	if r.n > 0 && now.Sub(r.at) < logRepeatWindow && now.Sub(r.at) >= 0 {
		r.suppressed++
		w.repeats[key] = r
		w.logMu.Unlock()
		return false
	}
	suppressed := r.suppressed
	w.repeats[key] = repeat{at: now, n: r.n + 1}
	w.logMu.Unlock()
	if suppressed > 0 {
		args = append(args, "repeats_suppressed", suppressed)
	}
	w.log.Log(context.Background(), level, msg, args...)
	return true
}

// endRepeats forgets the repeats of the keys with prefix, after a state
// change (a refresh that succeeded): it logs how many were suppressed
// since their last line, if any, and the next warning is logged at once.
func (w *Wechat) endRepeats(prefix, msg string) {
	w.logMu.Lock()
	suppressed, had := 0, false
	for k, r := range w.repeats {
		if strings.HasPrefix(k, prefix) {
			suppressed += r.suppressed
			had = true
			delete(w.repeats, k)
		}
	}
	w.logMu.Unlock()
	if had {
		w.log.Info(msg, "repeats_suppressed", suppressed)
	}
}

// repeat is the state of one key of warnRepeat.
type repeat struct {
	at         time.Time // of the last line logged
	n          int       // lines logged
	suppressed int       // since the last line
}

// errClass is a short stable name of what kind of failure err is, for
// warnRepeat keys.
func errClass(err error) string {
	var apiErr *APIError
	switch {
	case errors.Is(err, ErrCooldown):
		return "cooldown"
	case errors.Is(err, ErrRateLimited):
		return "rate"
	case errors.Is(err, ErrQuotaExhausted):
		return "quota"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.As(err, &apiErr):
		return fmt.Sprintf("errcode %d", apiErr.Code)
	case isTransient(err):
		return "transient"
	}
	return "other"
}
