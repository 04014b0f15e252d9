package wechat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// defaultLifetime is assumed for a stored token whose fetch time is unknown
// (one written by the original Koa app).
const defaultLifetime = 7200 * time.Second

// A Wechat keeps one official account's access token (and tickets) fresh,
// shared through a Store with every other process of the app. It is safe
// for concurrent use; build it with New.
//
// A token is fresh until RefreshBefore its expiry (AccessToken serves it
// from memory), then stale (still served; one background refresh starts),
// then invalid (callers wait for a refresh). Every refresh — at start-up,
// in the background, on a stale token, passive, forced — follows one
// protocol: take the Store's lock, re-read the store and adopt a fresher
// token someone else saved, and only otherwise check the quota guards,
// fetch, and save.
//
// How fast other processes switch to a new token: all processes read the
// same stored expiry, so they all see the token turn stale at the same
// instant; the first refresh after that fetches, and every other process
// adopts the new token on its first AccessToken call after that instant
// (or, if idle, when Run wakes, at most RefreshBefore/10 later). WeChat
// keeps the old token working 5 minutes after a fetch, so adoption is well
// within the grace. A token fetched out of turn (passive or forced refresh,
// another program) is adopted by the next passive refresh of a caller whose
// call WeChat rejected, or by Run within SyncInterval. A store that lost
// the token this process holds (a deleted file, a flushed Redis) gets it
// saved back instead of a fetch.
//
// The guards, checked under the lock before every fetch attempt (retries
// included), each prevent one thing:
//
//   - The credential cooldown (CredentialCooldown) stops calling WeChat
//     with credentials it rejected (40125, 40164, …) until a person fixes
//     them. It is kept in the Store (KindCooldown), so every process and
//     host honours it, and a restart does not end it.
//   - The minimum interval (MinFetchInterval, or a quarter of the token's
//     life if less) stops a storm of passive refreshes: no fetch that soon
//     after the stored token was fetched.
//   - The hourly cap (MaxFetchesPerHour) bounds a token war with another
//     program using the same AppSecret: it counts tokens issued (successful
//     fetches), which are what kill each other, not failed attempts. While
//     no valid token is held (or only one WeChat rejected: a passive
//     refresh with the token the Store holds) there is nothing to lose, and
//     a fetch passes the cap once per 5 minutes (logged once an hour), so
//     the cap never keeps a server without a token for long.
//   - The daily budget (DailyBudget, and WeChat's 45009) protects the
//     day's quota: it counts every call that may have reached WeChat,
//     failed or not.
//   - Failed attempts (errcode -1, HTTP 5xx, network errors, malformed
//     answers) are spaced by a back-off with jitter, RetryBackoff doubling
//     up to 16 times, that carries over from one refresh to the next until
//     a fetch succeeds (the next refresh waits it before it takes the
//     Store's lock); one refresh makes at most MaxAttempts attempts.
//
// Every upstream call refuses redirects (see RedirectError), never quotes
// an upstream body in an error, and rejects a token longer than 2048
// characters; an expires_in above WeChat's 7200 s is clamped to it.
type Wechat struct {
	opts  Options
	store Store
	clock Clock
	log   *slog.Logger

	tok        atomic.Pointer[held]
	tickets    [2]atomic.Pointer[held] // by ticketIndex
	ticketBusy [2]atomic.Bool          // a background ticket refresh runs

	flight     singleflight.Group
	bgBusy     atomic.Bool
	life       context.Context // done once Close is called
	stop       context.CancelFunc
	work       sync.WaitGroup // refreshes that may still write to the Store
	bgFailedAt atomic.Int64   // clock UnixNano of the last failed background refresh

	sleep         func(ctx context.Context, d time.Duration) error // waits d; tests replace it
	lockWarnAfter time.Duration                                    // see lockStore

	mu            sync.Mutex // guards the fields below
	closed        bool
	cooldownAt    time.Time // when the cooldown state below was decided
	cooldownUntil time.Time
	cooldownErr   error
	cooldownN     int // credential rejections in a row
	failN         int // failed fetch attempts in a row (see noteFailure)
	nextAttemptAt time.Time
	overCapAt     time.Time // the last fetch past the hourly cap
	overCapLogged Counter   // the hour of the last one logged
	countsDay     string
	counts        map[Counter]int      // the highest count seen of each counter of countsDay
	lockWaits     map[uint64]time.Time // the start of each long wait on the Store's lock, by lockWaitN
	lockWaitN     uint64
	lastErr       error
	lastErrAt     time.Time
	lastRefresh   time.Time
	quotaDay      string
	quotaUsed     int

	logMu   sync.Mutex
	repeats map[string]repeat // by warnRepeat key

	stats counters
}

// held is a credential with the instant it turns stale.
type held struct {
	Credential
	staleAt time.Time
}

// hold computes when c turns stale: RefreshBefore before expiry, but at
// least half of its lifetime after it was fetched.
func (w *Wechat) hold(c Credential) *held {
	life := c.ExpiresAt.Sub(c.FetchedAt)
	if c.FetchedAt.IsZero() || life <= 0 {
		life = defaultLifetime
	}
	return &held{Credential: c, staleAt: c.ExpiresAt.Add(-min(w.opts.RefreshBefore, life/2))}
}

// freshAt reports whether c is valid and not yet stale at t.
func (w *Wechat) freshAt(c Credential, t time.Time) bool {
	return c.ValidAt(t) && t.Before(w.hold(c).staleAt)
}

// New builds a keeper. Like the original app's constructor it loads the
// token from the Store and, when it is missing, unreadable or expired,
// fetches a new one (through the refresh protocol, so concurrent starts of
// several processes fetch once). A stored token that is merely stale is
// used, and refreshed on first use. Bad options give one error naming every
// problem.
func New(ctx context.Context, opts Options) (*Wechat, error) {
	w, err := Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	if w.tok.Load() != nil {
		return w, nil
	}
	if _, err := w.refresh(ctx, triggerStartup, "", false); err != nil {
		w.Close()
		return nil, fmt.Errorf("wechat: start-up: %w", err)
	}
	return w, nil
}

// Open builds a keeper like New but never fetches: it adopts a valid
// stored token if there is one and otherwise starts without a token, which
// the first AccessToken call or Run then fetches under every guard. A
// server uses Open so that one keeper, with its cooldown and back-off,
// lives through a start-up during which WeChat cannot be reached. Only bad
// options make it fail.
func Open(ctx context.Context, opts Options) (*Wechat, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	w := &Wechat{opts: o, store: o.Store, clock: o.Clock, log: o.Logger,
		sleep: sleepCtx, lockWarnAfter: lockWarnAfter, repeats: map[string]repeat{}}
	w.life, w.stop = context.WithCancel(context.Background())
	c, err := w.store.Load(ctx, KindAccessToken)
	if err != nil {
		w.log.Warn("wechat: cannot read the token store at start-up", "err", err)
	}
	if err == nil && c.ValidAt(w.clock.Now()) {
		w.tok.Store(w.hold(c))
		w.stats.refresh(triggerStartup, outcomeAdopted)
	}
	return w, nil
}

// Close stops the keeper's background work: no refresh starts after it,
// one in flight is cancelled, and Close returns once none of them can
// write to the Store any more. Run returns. A token already held is still
// served by AccessToken until it turns stale; after that, callers get
// ErrClosed. Close is safe to call more than once.
func (w *Wechat) Close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.stop()
	w.work.Wait()
}

// track registers one refresh that may write to the Store; it returns
// false once Close was called. The caller calls w.work.Done when finished.
func (w *Wechat) track() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	w.work.Add(1)
	return true
}

// AppID returns the AppID the keeper was built with.
func (w *Wechat) AppID() string { return w.opts.AppID }

// APIBase returns the WeChat API base the keeper fetches from
// (Options.APIBase, without a trailing slash). A Client whose Source is the
// keeper calls the same base unless told otherwise.
func (w *Wechat) APIBase() string { return w.opts.APIBase }

// AccessToken returns a valid access token. A fresh token comes from memory
// without I/O or allocation; a stale one is returned at once while one
// background refresh runs; without a valid token it waits for a refresh,
// at most until ctx is done.
func (w *Wechat) AccessToken(ctx context.Context) (string, error) {
	if h := w.tok.Load(); h != nil {
		now := w.clock.Now()
		if now.Before(h.staleAt) {
			return h.Value, nil
		}
		if now.Before(h.ExpiresAt) {
			w.refreshInBackground(now)
			return h.Value, nil
		}
	}
	c, err := w.refresh(ctx, triggerStale, "", false)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoToken, err)
	}
	return c.Value, nil
}

// Token is AccessToken with the token's expiry and fetch time.
func (w *Wechat) Token(ctx context.Context) (Credential, error) {
	if _, err := w.AccessToken(ctx); err != nil {
		return Credential{}, err
	}
	return w.tok.Load().Credential, nil
}

// Refresh is the passive refresh (see TokenSource): stale is the token
// WeChat rejected. A new token is fetched only if the Store still holds
// exactly stale; otherwise the current valid token is returned. An empty
// or unknown stale token never causes a fetch while a valid token exists.
func (w *Wechat) Refresh(ctx context.Context, stale string) (string, error) {
	c, err := w.refresh(ctx, triggerPassive, stale, false)
	if err != nil {
		return "", err
	}
	return c.Value, nil
}

// ForceRefresh fetches a new token whatever the Store holds, for an
// administrator who knows the token leaked or was killed from outside. With
// TokenAPIStable it uses force_refresh, which WeChat allows 20 times a day
// at least 30 s apart (counted in the Store); with TokenAPIClassic it is an
// ordinary fetch. The quota guards apply either way.
func (w *Wechat) ForceRefresh(ctx context.Context) (Credential, error) {
	return w.refresh(ctx, triggerForced, "", true)
}

// refreshInBackground starts one background refresh unless one is running
// or the last one failed very recently (to keep a failing store or WeChat
// from being called on every AccessToken).
func (w *Wechat) refreshInBackground(now time.Time) {
	if last := w.bgFailedAt.Load(); last != 0 {
		if now.Sub(time.Unix(0, last)) < w.bgRetryDelay() {
			return
		}
	}
	w.inBackground(&w.bgBusy, func(ctx context.Context) {
		if _, err := w.refresh(ctx, triggerStale, "", false); err != nil {
			w.bgFailedAt.Store(w.clock.Now().UnixNano())
		} else {
			w.bgFailedAt.Store(0)
		}
	})
}

// inBackground runs fn in a goroutine, with a context that ends after
// RefreshTimeout or at Close, unless one guarded by busy is still running
// or the keeper is closed.
func (w *Wechat) inBackground(busy *atomic.Bool, fn func(ctx context.Context)) {
	if !busy.CompareAndSwap(false, true) {
		return
	}
	if !w.track() {
		busy.Store(false)
		return
	}
	go func() {
		defer w.work.Done()
		defer busy.Store(false)
		ctx, cancel := context.WithTimeout(w.life, w.opts.RefreshTimeout)
		defer cancel()
		fn(ctx)
	}()
}

// startWork returns the context of a refresh shared by every caller that
// waits on it: it outlives the caller that started it (so a fetch is not
// wasted when that caller gives up), but not RefreshTimeout or Close. done
// must be called when the refresh is over; ok is false after Close.
func (w *Wechat) startWork(ctx context.Context) (fctx context.Context, done func(), ok bool) {
	if !w.track() {
		return nil, nil, false
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opts.RefreshTimeout)
	stop := context.AfterFunc(w.life, cancel)
	return fctx, func() { stop(); cancel(); w.work.Done() }, true
}

// bgRetryDelay is the pause after a failed background refresh: a tenth of
// RefreshBefore, at most 1 s, so a stale token is retried many times before
// it expires.
func (w *Wechat) bgRetryDelay() time.Duration {
	return min(time.Second, w.opts.RefreshBefore/10)
}

// refresh runs the refresh protocol once per process at a time: callers
// that arrive while one runs share its result. Each caller waits at most
// until its own ctx is done; the refresh itself runs to completion (bounded
// by RefreshTimeout) so that a caller giving up does not waste a fetch.
func (w *Wechat) refresh(ctx context.Context, trig trigger, stale string, force bool) (Credential, error) {
	key := "token"
	if force {
		key = "force"
	}
	if w.life.Err() != nil {
		// Closed: do not join a refresh that Close cancelled but whose
		// result has not been handed out yet.
		return Credential{}, ErrClosed
	}
	ch := w.flight.DoChan(key, func() (any, error) {
		fctx, done, ok := w.startWork(ctx)
		if !ok {
			return Credential{}, ErrClosed
		}
		defer done()
		c, err := w.refreshLocked(fctx, trig, stale, force)
		if err != nil && w.life.Err() != nil {
			err = fmt.Errorf("%w: the refresh in flight was cancelled: %w", ErrClosed, err)
		}
		w.noteResult(err)
		return c, err
	})
	return await(ctx, ch, "token")
}

// await returns the result of a shared refresh, or gives up when ctx is
// done (the refresh goes on for the other callers).
func await(ctx context.Context, ch <-chan singleflight.Result, what string) (Credential, error) {
	select {
	case r := <-ch:
		if r.Err != nil {
			return Credential{}, r.Err
		}
		return r.Val.(Credential), nil
	case <-ctx.Done():
		return Credential{}, fmt.Errorf("wechat: waiting for a %s refresh: %w", what, ctx.Err())
	}
}

// refreshLocked is one refresh under the Store's lock. The back-off left
// by an earlier failed fetch (see noteFailure) is waited before the lock is
// taken, so that other processes and hosts, and ticket refreshes, are not
// kept from the Store meanwhile; only the retries of this refresh wait
// under the lock.
func (w *Wechat) refreshLocked(ctx context.Context, trig trigger, stale string, force bool) (Credential, error) {
	if d := w.attemptWait(); d > 0 {
		if err := w.sleep(ctx, d); err != nil {
			w.stats.refresh(trig, outcomeFailed)
			return Credential{}, fmt.Errorf("wechat: waiting to retry a failed token fetch: %w", err)
		}
	}
	unlock, err := w.lockStore(ctx)
	if err != nil {
		w.stats.refresh(trig, outcomeFailed)
		return Credential{}, fmt.Errorf("wechat: refresh: %w", err)
	}
	defer unlock()

	stored, err := w.store.Load(ctx, KindAccessToken)
	if err != nil {
		w.stats.refresh(trig, outcomeFailed)
		return Credential{}, fmt.Errorf("wechat: refresh: reading the store: %w", err)
	}
	now := w.clock.Now()
	if h := w.tok.Load(); h != nil && h.ValidAt(now) && !stored.ValidAt(now) {
		// The store lost the token this process holds (a deleted or garbled
		// file, a flushed Redis): save it back rather than fetch, which
		// would kill it for every other process. A store that cannot keep
		// it comes here on every refresh: logged at most once a minute.
		w.warnRepeat("reseed", "wechat: the store has lost the valid access token this process holds; saving it back",
			"store", describeStore(w.store), "expires_at", h.ExpiresAt.UTC().Format(time.RFC3339))
		switch err := w.store.Save(ctx, KindAccessToken, h.Credential); {
		case err == nil:
			stored = h.Credential
		case errors.Is(err, ErrSuperseded):
			if stored, err = w.store.Load(ctx, KindAccessToken); err != nil {
				w.stats.refresh(trig, outcomeFailed)
				return Credential{}, fmt.Errorf("wechat: refresh: reading the store: %w", err)
			}
		default:
			w.logRepeat(slog.LevelError, "reseed:save", "wechat: cannot save the held token back", "err", err)
			stored = h.Credential // judge by what is held
		}
	}
	rejected := ""
	switch {
	case force:
		// fetch below
	case trig == triggerPassive && stale != "" && stored.Value == stale:
		// The store holds the very token WeChat rejected: fetch.
		rejected = stale
	case trig == triggerPassive && stored.ValidAt(now):
		// Someone refreshed meanwhile, or the caller's token is unknown.
		return w.adopt(trig, stored), nil
	case w.freshAt(stored, now):
		return w.adopt(trig, stored), nil
	}

	c, err := w.fetchToken(ctx, stored, force, rejected)
	if err != nil {
		w.stats.refresh(trig, outcomeFailed)
		w.warnRepeat("refresh:"+errClass(err), "wechat: token refresh failed", "trigger", trig.String(), "err", err)
		return Credential{}, err
	}
	w.endRepeats("refresh:", "wechat: token refreshes succeed again")
	switch newer, adopted, err := w.saveOrAdopt(ctx, KindAccessToken, c, now); {
	case adopted:
		w.log.Info("wechat: a newer token was saved meanwhile; adopting it", "trigger", trig.String())
		return w.adopt(trig, newer), nil
	case err != nil:
		// The token is good; other processes will not see it, though.
		w.log.Error("wechat: cannot save the new token; other processes will fetch their own", "err", err)
	}
	w.tok.Store(w.hold(c))
	w.stats.refresh(trig, outcomeFetched)
	w.log.Info("wechat: fetched a new access token", "trigger", trig.String(),
		"expires_at", c.ExpiresAt.UTC().Format(time.RFC3339))
	return c, nil
}

// saveOrAdopt saves c, just fetched, as kind. When the Store refuses it as
// superseded (another process saved a newer one meanwhile) and the newer
// one is valid at now, it returns that one, and adopted. A failed save is
// err: c is still good, but other processes will not see it.
func (w *Wechat) saveOrAdopt(ctx context.Context, kind Kind, c Credential, now time.Time) (_ Credential, adopted bool, err error) {
	err = w.store.Save(ctx, kind, c)
	if errors.Is(err, ErrSuperseded) {
		if newer, lerr := w.store.Load(ctx, kind); lerr == nil && newer.ValidAt(now) {
			return newer, true, nil
		}
		return c, false, nil
	}
	return c, false, err
}

// adopt makes c, read from the store, the token served from memory.
func (w *Wechat) adopt(trig trigger, c Credential) Credential {
	if old := w.tok.Load(); old == nil || old.Value != c.Value {
		w.log.Debug("wechat: adopted the stored access token", "trigger", trig.String(),
			"expires_at", c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	w.tok.Store(w.hold(c))
	w.stats.refresh(trig, outcomeAdopted)
	return c
}

// noteResult records the last refresh error for Status.
func (w *Wechat) noteResult(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.clock.Now()
	if err != nil {
		w.lastErr, w.lastErrAt = err, now
		return
	}
	w.lastErr = nil
	w.lastRefresh = now
}

// fetchToken fetches a token from WeChat, checking the guards (see guard;
// rejected is the token WeChat rejected, if that is why it fetches) before
// every attempt and waiting the back-off of noteFailure after a failed one
// (the back-off of an earlier refresh was waited before the lock). The
// caller holds the Store's lock.
func (w *Wechat) fetchToken(ctx context.Context, stored Credential, force bool, rejected string) (Credential, error) {
	api, stableForce := w.tokenAPIName(), w.stableForce(force)
	var lastErr error
	for attempt := 0; ; attempt++ {
		if d := w.attemptWait(); d > 0 && attempt > 0 {
			if err := w.sleep(ctx, d); err != nil {
				if lastErr != nil {
					return Credential{}, fmt.Errorf("%w (gave up retrying: %w)", lastErr, err)
				}
				return Credential{}, fmt.Errorf("wechat: waiting to retry a failed token fetch: %w", err)
			}
		}
		now := w.clock.Now()
		day, err := w.guard(ctx, api, stored, now, stableForce, rejected)
		if err != nil {
			if lastErr != nil {
				return Credential{}, fmt.Errorf("%w (and no retry: %w)", lastErr, err)
			}
			return Credential{}, err
		}
		// Count before calling: a call whose reply is lost still costs quota.
		used, err := w.addCount(ctx, DayCounter(api, now), 1)
		if err != nil {
			return Credential{}, fmt.Errorf("wechat: counting the fetch: %w", err)
		}
		w.noteQuota(day, used)
		if stableForce {
			if _, err := w.addCount(ctx, DayCounter(APIStableForce, now), 1); err != nil {
				return Credential{}, fmt.Errorf("wechat: counting the fetch: %w", err)
			}
		}

		method, u, path, body := w.tokenRequest(force)
		res, err := call(ctx, w.opts.HTTPClient, method, u, path, body)
		if err == nil {
			c, clamped, perr := parseCredential(res, "access_token", path, w.clock.Now())
			if perr != nil {
				w.stats.fetch(fetchError)
				w.noteFailure()
				return Credential{}, perr
			}
			w.stats.fetch(fetchOK)
			w.noteSuccess()
			w.clearCooldown(ctx, now)
			// The hourly cap counts tokens issued: those are what kill each
			// other in a fight with another program.
			if _, err := w.addCount(ctx, HourCounter(api, now), 1); err != nil {
				w.log.Error("wechat: cannot count the issued token", "err", err)
			}
			w.noteLife(path, c, clamped)
			return c, nil
		}
		lastErr = err
		var apiErr *APIError
		switch {
		case errors.As(err, &apiErr) && apiErr.Code == 45009:
			w.stats.fetch(fetchQuota)
			// Tell every process: the budget is spent for today.
			if used < w.opts.DailyBudget {
				if used, err = w.addCount(ctx, DayCounter(api, now), w.opts.DailyBudget-used); err == nil {
					w.noteQuota(day, used)
				}
			}
			w.log.Error("wechat: WeChat says the daily token quota is exhausted; no more fetches today", "day", day)
			return Credential{}, fmt.Errorf("%w: %w", ErrQuotaExhausted, apiErr)
		case errors.As(err, &apiErr) && isCredentialError(apiErr.Code):
			w.stats.fetch(fetchRejected)
			until := w.startCooldown(ctx, now, apiErr)
			w.log.Error("wechat: WeChat rejected the credentials; pausing fetches", "errcode", apiErr.Code,
				"hint", apiErr.Hint(), "until", until.UTC().Format(time.RFC3339))
			return Credential{}, err
		case isTransient(err) && attempt+1 < w.opts.MaxAttempts:
			w.stats.fetch(fetchRetry)
			w.noteFailure()
			w.warnRepeat("retry:"+errClass(err), "wechat: token fetch failed; retrying", "attempt", attempt+1,
				"in", w.attemptWait().String(), "err", err)
		default:
			w.stats.fetch(fetchError)
			w.noteFailure()
			if isTransient(err) {
				return Credential{}, fmt.Errorf("wechat: token fetch failed %d times, last: %w", attempt+1, err)
			}
			return Credential{}, err
		}
	}
}

// noteLife logs a lifetime WeChat would not give: one above 7200 s (which
// parseCredential clamped) or one below a minute.
func (w *Wechat) noteLife(api string, c Credential, clamped int64) {
	if clamped > 0 {
		w.log.Warn("wechat: expires_in above WeChat's 7200 s; clamped to 7200 s", "api", api, "expires_in", clamped)
	}
	if life := c.ExpiresAt.Sub(c.FetchedAt); life < shortExpiresIn*time.Second {
		w.warnRepeat("life:"+api, "wechat: suspiciously short expires_in; fetches stay bounded by MinFetchInterval (or a quarter of the life) and MaxFetchesPerHour",
			"api", api, "life", life.String())
	}
}

// WeChat's limits on stable_token force_refresh.
const (
	stableForceDaily   = 20
	stableForceSpacing = 30 * time.Second
)

func (w *Wechat) noteQuota(day string, used int) {
	w.mu.Lock()
	w.quotaDay, w.quotaUsed = day, used
	w.mu.Unlock()
}

// Run refreshes the token ahead of expiry until ctx is done, and returns
// ctx's error. It wakes when the token turns stale, plus a random delay of
// at most RefreshBefore/10 so that processes do not all wake at once (the
// first refresh fetches, the others adopt), and every SyncInterval to adopt
// a token fetched out of turn by another process. One Run per process is
// enough; a process that serves AccessToken calls refreshes without it too.
func (w *Wechat) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(w.life, cancel)()
	failures := 0
	for {
		now := w.clock.Now()
		h := w.tok.Load()
		var wait time.Duration
		if h == nil || !now.Before(h.staleAt) {
			if _, err := w.refresh(ctx, triggerBackground, "", false); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				failures++
				wait = max(time.Millisecond, min(w.bgRetryDelay()<<min(failures-1, 6), w.opts.SyncInterval))
			} else {
				failures = 0
				continue
			}
		} else {
			rb := h.ExpiresAt.Sub(h.staleAt)
			wait = h.staleAt.Sub(now) + rand.N(rb/10+1)
			if wait > w.opts.SyncInterval {
				wait = w.opts.SyncInterval
			}
		}
		if err := w.sleep(ctx, wait); err != nil {
			return err
		}
		w.sync(ctx)
	}
}

// sync adopts a valid stored token that differs from, and was fetched
// after, the one in memory. It takes no lock: it only reads.
func (w *Wechat) sync(ctx context.Context) {
	stored, err := w.store.Load(ctx, KindAccessToken)
	if err != nil {
		return
	}
	h := w.tok.Load()
	now := w.clock.Now()
	if !stored.ValidAt(now) || (h != nil && h.Value == stored.Value) {
		return
	}
	if h != nil && h.ValidAt(now) && !stored.FetchedAt.After(h.FetchedAt) {
		return
	}
	w.adopt(triggerBackground, stored)
}
