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

	"github.com/tidwall/gjson"
	"golang.org/x/sync/singleflight"
)

// A Wechat keeps one official account's access token (and tickets) fresh,
// shared through a Store with every other process of the app. It is safe
// for concurrent use; build it with New.
//
// A credential (the token, a ticket) is fresh until RefreshBefore its
// expiry (AccessToken and Ticket serve it from memory), then stale (still
// served; one background refresh starts), then invalid (callers wait for a
// refresh). Every refresh of every credential — at start-up, in the
// background, on a stale credential, passive, forced — follows one
// protocol, written once (refresher.run, in refresher.go): read the
// store and adopt a fresher credential someone else saved, without taking
// the Store's lock (adoption never waits on the lock); only otherwise take
// the lock, re-read the store and adopt one saved meanwhile, and only
// otherwise check the quota guards, fetch, and save. A forced refresh
// skips the adoption. A ticket is fetched with the access token, had
// before the lock is taken. A background or stale refresh, while the
// credential held is valid, only tries the lock (on a Store that is a
// TryLocker): when another process holds it, that one is refreshing, and
// this one serves what it holds and adopts what the other saves a moment
// later. So the processes that see a credential turn stale at once take
// the lock about once between them, however many they are.
//
// How fast other processes switch to a new token: all processes read the
// same stored expiry, so they all see the token turn stale at the same
// instant; the first refresh after that fetches, and every other process
// adopts the new token on its first AccessToken call once it is saved
// (at most a second, or a tenth of the stale window, after it found the
// lock taken), or, if idle, when Run wakes, at most RefreshBefore/10 later. WeChat
// keeps the old token working 5 minutes after a fetch, so adoption is well
// within the grace. A token fetched out of turn (passive or forced refresh,
// another program) is adopted by the next passive refresh of a caller whose
// call WeChat rejected, or by Run within SyncInterval. A store that lost
// the token this process holds (a deleted file, a flushed Redis) gets it
// saved back instead of a fetch.
//
// The guards (the guards type, in guards.go), checked under the lock
// before every fetch attempt (retries included) of the token and of the
// tickets alike, each prevent one thing:
//
//   - The credential cooldown (CredentialCooldown) stops calling WeChat
//     with credentials it rejected (40125, 40164, …) until a person fixes
//     them (token fetches only: getticket does not send the AppSecret).
//     It is kept in the Store (KindCooldown), so every process and host
//     honours it, and a restart does not end it.
//   - The minimum interval (MinFetchInterval, or a quarter of the
//     credential's life if less) stops a storm of passive refreshes: no
//     fetch that soon after the stored credential was fetched.
//   - The hourly cap (MaxFetchesPerHour) bounds a token war with another
//     program using the same AppSecret: it counts tokens issued (successful
//     fetches), which are what kill each other, not failed attempts. While
//     no valid token is held (or only one WeChat rejected: a passive
//     refresh with the token the Store holds) there is nothing to lose, and
//     a fetch passes the cap once per 5 minutes (logged once an hour), so
//     the cap never keeps a server without a token for long. Tickets
//     issued are capped the same way, on their own count.
//   - The daily budget (DailyBudget; TicketDailyBudget for getticket, all
//     ticket types together; WeChat's 45009 spends it for the rest of the
//     day) protects the day's quota: it counts every call that may have
//     reached WeChat, failed or not.
//   - Failed attempts (errcode -1, HTTP 5xx, network errors, malformed
//     answers) are spaced by a back-off with jitter, RetryBackoff doubling
//     up to 16 times, kept for each credential, that carries over from one
//     refresh to the next until a fetch succeeds (the next refresh waits
//     it before it takes the Store's lock); one refresh makes at most
//     MaxAttempts attempts, and a failed background refresh is not
//     followed by another for a tenth of RefreshBefore (at most 1 s).
//
// Every upstream call refuses redirects (see RedirectError), never quotes
// an upstream body in an error, and rejects a token longer than 2048
// characters; an expires_in above WeChat's 7200 s is clamped to it.
type Wechat struct {
	opts   Options
	up     *Upstream // where calls to WeChat go
	store  Store
	clock  Clock
	log    *slog.Logger
	guards *guards

	token   *refresher    // the access token
	tickets [2]*refresher // by ticketIndex

	life context.Context // done once Close is called
	stop context.CancelFunc
	work sync.WaitGroup // refreshes that may still write to the Store

	sleep         func(ctx context.Context, d time.Duration) error // waits d; tests replace it
	jitter        func(n time.Duration) time.Duration              // Run's random delay in [0, n); nil: rand.N; tests replace it
	lockWarnAfter time.Duration                                    // see lockStore

	mu          sync.Mutex // guards the fields below
	closed      bool
	lockWaits   map[uint64]time.Time // the start of each long wait on the Store's lock, by lockWaitN
	lockWaitN   uint64
	lastErr     error
	lastErrAt   time.Time
	lastRefresh time.Time

	logMu   sync.Mutex
	repeats map[string]repeat // by warnRepeat key

	stats counters
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
	if w.token.cur.Load() != nil {
		return w, nil
	}
	if _, err := w.token.refresh(ctx, request{trig: triggerStartup}); err != nil {
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
	up, err := upstreamOf(o)
	if err != nil {
		return nil, err
	}
	w := &Wechat{opts: o, up: up, store: o.Store, clock: o.Clock, log: o.Logger,
		guards: newGuards(o.Store, o.Logger, o.CredentialCooldown),
		sleep:  sleepCtx, lockWarnAfter: lockWarnAfter, repeats: map[string]repeat{}}
	w.life, w.stop = context.WithCancel(context.Background())
	w.token = w.newTokenRefresher()
	for i := range ticketKinds {
		w.tickets[i] = w.newTicketRefresher(i)
	}
	c, err := w.store.Load(ctx, KindAccessToken)
	if err != nil {
		w.log.Warn("wechat: cannot read the token store at start-up", "err", err)
	}
	if err == nil && c.ValidAt(w.clock.Now()) {
		w.token.cur.Store(c)
		w.stats.refresh(triggerStartup, outcomeAdopted)
		w.stats.history.add(w.clock.Now(), outcomeAdopted)
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

// EndCooldown ends the credential cooldown in force, if any (see
// Options.CredentialCooldown), in memory and in the Store, so that every
// process sharing the Store may fetch again at once, and reports whether
// one was in force. Call it once the AppSecret WeChat rejected has been
// corrected: a server does when a reload changes an app's secret. It
// fetches nothing.
func (w *Wechat) EndCooldown(ctx context.Context) bool {
	if !w.guards.endCooldown(ctx, w.clock.Now()) {
		return false
	}
	w.log.Info("wechat: the credential cooldown is ended (the AppSecret was changed)")
	return true
}

// AppID returns the AppID the keeper was built with.
func (w *Wechat) AppID() string { return w.opts.AppID }

// APIBase returns the WeChat API base the keeper fetches from now
// (Options.APIBase, without a trailing slash, or the Upstream's base in
// use). A Client whose Source is the
// keeper calls the same base unless told otherwise.
func (w *Wechat) APIBase() string { return w.up.Base() }

// Upstream returns where the keeper's calls go (Options.Upstream, or one
// of Options.APIBase alone).
func (w *Wechat) Upstream() *Upstream { return w.up }

// AccessToken returns a valid access token. A fresh token comes from memory
// without I/O or allocation; a stale one is returned at once while one
// background refresh runs; without a valid token it waits for a refresh,
// at most until ctx is done.
func (w *Wechat) AccessToken(ctx context.Context) (string, error) {
	c, err := w.Token(ctx)
	return c.Value, err
}

// Token is AccessToken with the token's expiry and fetch time (see
// CredentialSource): the very credential AccessToken would return.
func (w *Wechat) Token(ctx context.Context) (Credential, error) {
	c, err := w.token.get(ctx, triggerStale)
	if err != nil {
		return Credential{}, fmt.Errorf("%w: %w", ErrNoToken, err)
	}
	return c, nil
}

// Refresh is the passive refresh (see TokenSource): stale is the token
// WeChat rejected. A new token is fetched only if the Store still holds
// exactly stale; otherwise the current valid token is returned. An empty
// or unknown stale token never causes a fetch while a valid token exists.
func (w *Wechat) Refresh(ctx context.Context, stale string) (string, error) {
	c, err := w.token.refresh(ctx, request{trig: triggerPassive, stale: stale})
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
	return w.token.refresh(ctx, request{trig: triggerForced, force: true})
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

// noteResult records the last refresh error for Status.
func (w *Wechat) noteResult(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.clock.Now()
	if err != nil {
		w.lastErr, w.lastErrAt = err, now
		w.stats.history.failed(now, err)
		return
	}
	w.lastErr = nil
	w.lastRefresh = now
}

// spread is the credCache spread of kind: its spreadFraction with
// Options.SpreadRefresh, else 0.
func (w *Wechat) spread(kind Kind) float64 {
	if !w.opts.SpreadRefresh {
		return 0
	}
	return spreadFraction(w.opts.AppID, kind)
}

// newTokenRefresher is the refresher of the access token.
func (w *Wechat) newTokenRefresher() *refresher {
	return &refresher{w: w, kind: KindAccessToken, what: "token", name: "access token", field: "access_token",
		cur: credCache{early: w.opts.RefreshBefore, spread: w.spread(KindAccessToken)},
		lim: limits{API: w.tokenAPIName(), Calls: "fetches", DailyBudget: w.opts.DailyBudget,
			MinInterval: w.opts.MinFetchInterval, HourlyCap: w.opts.MaxFetchesPerHour,
			Cooldown: true, Refused: &w.stats.refusals},
		fetch: w.fetchToken, primary: true, fetches: &w.stats.fetches,
		retry: retryState{base: w.opts.RetryBackoff}}
}

// fetchToken calls the configured token endpoint once (see tokenRequest).
func (w *Wechat) fetchToken(ctx context.Context, req request) (gjson.Result, string, error) {
	method, u, path, body := w.tokenRequest(req.force)
	// Never repeated at another base once it may have reached WeChat: a
	// second fetch would kill the first one's token (see fetchGuarded).
	res, err := call(ctx, w.up, method, u, path, body, false)
	return res, path, err
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
	p, jitter := w.schedParams(), w.jitter
	if jitter == nil {
		jitter = rand.N[time.Duration]
	}
	failures := 0 // background refreshes failed in a row
	backoff := 0  // failures, until the back-off after the last one is waited
	for {
		wait := nextWake(w.clock.Now(), w.token.cur.Load(), backoff, p, jitter)
		if wait == 0 {
			if _, err := w.token.refresh(ctx, request{trig: triggerBackground}); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				failures++
				backoff = failures
			} else {
				failures = 0
			}
			continue
		}
		backoff = 0
		if err := w.sleep(ctx, wait); err != nil {
			return err
		}
		w.token.sync(ctx, triggerBackground)
	}
}
