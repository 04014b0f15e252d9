package wechat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"golang.org/x/sync/singleflight"
)

// A refresher keeps one credential of a keeper fresh: the access token,
// or one of the tickets. It is the one place where the refresh protocol
// (see the Wechat doc comment) is written: every refresh of every kind —
// at start-up, in the background, on a stale or invalid credential,
// passive, forced — goes through refresh, run and locked. What differs between
// kinds is a fetch function (one upstream call) and the guards' limits;
// another credential (another account, a component token) is another
// refresher with its own fetch function.
type refresher struct {
	w     *Wechat
	kind  Kind
	what  string // "token" or "ticket", in errors and log lines
	name  string // "access token", "jsapi_ticket", in log lines
	field string // the JSON field of the credential in the fetch's answer
	lim   limits
	fetch fetchFunc
	// needsToken says that the fetch is made with the access token
	// (request.token): it is had before the Store's lock is taken (a token
	// refresh takes the lock too), and an answer rejecting it makes a
	// passive refresh of the token and one retry.
	needsToken bool
	// primary says that this is the keeper's access token: its refreshes
	// show in Stats.Refreshes and in Status.
	primary bool
	fetches *[numFetchResults]atomic.Int64 // the Stats counters of the fetch's results

	flight     singleflight.Group // one refresh (and one forced refresh) at a time
	cur        credCache          // the credential served from memory; stale RefreshBefore before expiry
	busy       atomic.Bool        // a background refresh runs
	bgFailedAt atomic.Int64       // clock UnixNano of the last failed background refresh
	retry      retryState         // the failure back-off, carried over between refreshes
	// replaced is the credential held before cur's, and when it was
	// replaced (see Wechat.Replaced).
	replaced atomic.Pointer[replacedCred]
}

// A replacedCred is a credential a refresher held, and when it stopped.
type replacedCred struct {
	Credential
	at time.Time
}

// hold makes c the credential served from memory, remembering the one it
// replaces.
func (r *refresher) hold(c Credential) {
	if old := r.cur.Load(); old != nil && old.Value != c.Value {
		r.replaced.Store(&replacedCred{old.Credential, r.w.clock.Now()})
	}
	r.cur.Store(c)
}

// A fetchFunc makes one upstream call for a credential, for req; it
// returns the answer (whose errcode was 0) and the path called.
type fetchFunc func(ctx context.Context, req request) (res gjson.Result, path string, err error)

// request says why and how a refresh runs.
type request struct {
	trig  trigger
	stale string // for triggerPassive: the credential WeChat rejected
	force bool   // fetch whatever the Store holds
	token string // the access token a needsToken fetch is made with
}

// flightKey is the singleflight key of req: forced and passive refreshes
// do not join background or stale ones.
func (req request) flightKey() string {
	switch {
	case req.force:
		return "force"
	case req.trig == triggerPassive:
		// Not with a background refresh, which may end with the held
		// credential (another process holds the lock; see lock): a
		// passive refresh must not get back the one WeChat rejected.
		return "passive"
	}
	return "refresh"
}

// repeatKey is the warnRepeat key k of this credential.
func (r *refresher) repeatKey(k string) string {
	if r.primary {
		return k
	}
	return k + "@" + string(r.kind)
}

// get returns a valid credential: a fresh one from memory; a stale one at
// once, starting one background refresh; without a valid one it waits for
// a refresh, at most until ctx is done.
func (r *refresher) get(ctx context.Context, trig trigger) (Credential, error) {
	h := r.cur.Load()
	now := r.w.clock.Now()
	switch h.stateAt(now) {
	case cacheFresh:
		return h.Credential, nil
	case cacheStale:
		r.inBackground(now)
		return h.Credential, nil
	}
	return r.refresh(ctx, request{trig: trig})
}

// inBackground starts one background refresh unless one is running or the
// last one failed very recently (to keep a failing store or WeChat from
// being called on every call).
func (r *refresher) inBackground(now time.Time) {
	if last := r.bgFailedAt.Load(); last != 0 {
		if now.Sub(time.Unix(0, last)) < r.w.bgRetryDelay() {
			return
		}
	}
	r.w.inBackground(&r.busy, func(ctx context.Context) {
		if _, err := r.refresh(ctx, request{trig: triggerStale}); err != nil {
			r.bgFailedAt.Store(r.w.clock.Now().UnixNano())
		} else {
			r.bgFailedAt.Store(0)
		}
	})
}

// refresh runs the refresh protocol once per process at a time: callers
// that arrive while one runs share its result. Each caller waits at most
// until its own ctx is done; the refresh itself runs to completion (bounded
// by RefreshTimeout) so that a caller giving up does not waste a fetch.
func (r *refresher) refresh(ctx context.Context, req request) (Credential, error) {
	w := r.w
	if w.life.Err() != nil {
		// Closed: do not join a refresh that Close cancelled but whose
		// result has not been handed out yet.
		return Credential{}, ErrClosed
	}
	ch := r.flight.DoChan(req.flightKey(), func() (any, error) {
		fctx, done, ok := w.startWork(ctx)
		if !ok {
			return Credential{}, ErrClosed
		}
		defer done()
		c, err := r.run(fctx, req)
		if err != nil && w.life.Err() != nil {
			err = fmt.Errorf("%w: the refresh in flight was cancelled: %w", ErrClosed, err)
		}
		if r.primary {
			w.noteResult(err)
		}
		return c, err
	})
	return await(ctx, ch, r.what)
}

// run is one refresh: adopt a credential someone else saved, read without
// the Store's lock (adoption never waits on the lock, nor on the back-off,
// nor on the access token); only otherwise locked, after getting the
// access token first if the fetch needs it (and, when WeChat rejects that
// token, refreshing it passively and trying once more).
func (r *refresher) run(ctx context.Context, req request) (Credential, error) {
	if c, ok := r.adoptUnlocked(ctx, req); ok {
		return c, nil
	}
	if !r.needsToken {
		return r.locked(ctx, req)
	}
	w := r.w
	for attempt := 0; ; attempt++ {
		tok, err := w.AccessToken(ctx)
		if err != nil {
			return Credential{}, err
		}
		req.token = tok
		c, err := r.locked(ctx, req)
		var apiErr *APIError
		if errors.As(err, &apiErr) && isTokenError(apiErr.Code) {
			if attempt == 0 {
				w.log.Info("wechat: "+r.fetchPath()+" rejected the access token; refreshing it", "kind", string(r.kind), "errcode", apiErr.Code)
				if _, rerr := w.Refresh(ctx, tok); rerr != nil {
					return Credential{}, fmt.Errorf("%w (and the token refresh failed: %w)", err, rerr)
				}
				continue
			}
			r.warnFailed(req, err)
		}
		return c, err
	}
}

// fetchPath names the upstream call in a log line.
func (r *refresher) fetchPath() string {
	if r.lim.API == APITicket {
		return "getticket"
	}
	return r.lim.API
}

// warnFailed logs a failed refresh (at most once a minute for each kind of
// failure).
func (r *refresher) warnFailed(req request, err error) {
	if r.primary {
		r.w.warnRepeat("refresh:"+errClass(err), "wechat: token refresh failed", "trigger", req.trig.String(), "err", err)
		return
	}
	r.w.warnRepeat(r.what+":"+string(r.kind)+":"+errClass(err), "wechat: "+r.what+" refresh failed",
		"kind", string(r.kind), "err", err)
}

// succeeded ends the repeats of warnFailed.
func (r *refresher) succeeded() {
	if r.primary {
		r.w.endRepeats("refresh:", "wechat: token refreshes succeed again")
		return
	}
	r.w.endRepeats(r.what+":"+string(r.kind)+":", "wechat: "+r.what+" refreshes succeed again")
}

// note counts a refresh that ended with o.
func (r *refresher) note(trig trigger, o outcome) {
	if r.primary {
		r.w.stats.refresh(trig, o)
		r.w.stats.history.add(r.w.clock.Now(), o)
	}
}

// locked is the part of a refresh (see run) that must fetch unless the
// store changed: take the Store's lock, re-read the store, adopt a
// fresher credential saved meanwhile (or save back the one held, if the
// store lost it), and only otherwise fetch under the guards and save.
// The back-off left by an earlier failed fetch is waited before the lock
// is taken, so that other processes and hosts, and the refreshes of the
// other credentials, are not kept from the Store meanwhile; only the
// retries of this refresh wait under the lock. A refresh in no hurry does
// not wait for the lock at all when another holds it (see lock).
func (r *refresher) locked(ctx context.Context, req request) (Credential, error) {
	w := r.w
	prefix := "wechat: refresh"
	if !r.primary {
		prefix = "wechat: " + r.what + " refresh"
	}
	if d := r.retry.wait(w.clock.Now()); d > 0 {
		if err := w.sleep(ctx, d); err != nil {
			r.note(req.trig, outcomeFailed)
			return Credential{}, fmt.Errorf("wechat: waiting to retry a failed %s fetch: %w", r.what, err)
		}
		r.retry.waited()
	}
	unlock, held, err := r.lock(ctx, req)
	if err != nil {
		r.note(req.trig, outcomeFailed)
		return Credential{}, fmt.Errorf("%s: %w", prefix, err)
	}
	if unlock == nil {
		return held, nil // another process is refreshing: adopt later
	}
	defer unlock()

	stored, err := w.store.Load(ctx, r.kind)
	if err != nil {
		r.note(req.trig, outcomeFailed)
		return Credential{}, fmt.Errorf("%s: reading the store: %w", prefix, err)
	}
	now := w.clock.Now()
	if h := r.cur.Load(); h != nil && h.ValidAt(now) && !stored.ValidAt(now) {
		// The store lost the credential this process holds (a deleted or
		// garbled file, a flushed Redis): save it back rather than fetch,
		// which for the token would kill it for every other process. A
		// store that cannot keep it comes here on every refresh: logged at
		// most once a minute.
		w.warnRepeat(r.repeatKey("reseed"), "wechat: the store has lost the valid "+r.name+" this process holds; saving it back",
			"store", describeStore(w.store), "expires_at", h.ExpiresAt.UTC().Format(time.RFC3339))
		switch err := w.store.Save(ctx, r.kind, h.Credential); {
		case err == nil:
			stored = h.Credential
		case errors.Is(err, ErrSuperseded):
			if stored, err = w.store.Load(ctx, r.kind); err != nil {
				r.note(req.trig, outcomeFailed)
				return Credential{}, fmt.Errorf("%s: reading the store: %w", prefix, err)
			}
		default:
			w.logRepeat(slog.LevelError, r.repeatKey("reseed:save"), "wechat: cannot save the held "+r.what+" back", "err", err)
			stored = h.Credential // judge by what is held
		}
	}
	rejected := ""
	switch {
	case req.force:
		// fetch below
	case req.trig == triggerPassive && req.stale != "" && stored.Value == req.stale:
		// The store holds the very credential WeChat rejected: fetch.
		rejected = req.stale
	case req.trig == triggerPassive && stored.ValidAt(now):
		// Someone refreshed meanwhile, or the caller's credential is unknown.
		return r.adopt(req.trig, stored), nil
	case r.cur.FreshAt(stored, now):
		return r.adopt(req.trig, stored), nil
	}

	c, meanwhile, err := r.fetchGuarded(ctx, req, stored, rejected)
	if meanwhile {
		w.log.Info("wechat: a "+r.what+" fetch may have reached WeChat and failed; adopting the one saved meanwhile",
			"kind", string(r.kind), "trigger", req.trig.String())
		return r.adopt(req.trig, c), nil
	}
	if err != nil {
		r.note(req.trig, outcomeFailed)
		var apiErr *APIError
		if !r.needsToken || !errors.As(err, &apiErr) || !isTokenError(apiErr.Code) {
			r.warnFailed(req, err) // run logs a rejected token it cannot fix
		}
		return Credential{}, err
	}
	r.succeeded()
	switch newer, adopted, err := w.saveOrAdopt(ctx, r.kind, c, now); {
	case adopted:
		w.log.Info("wechat: a newer "+r.what+" was saved meanwhile; adopting it", "kind", string(r.kind), "trigger", req.trig.String())
		return r.adopt(req.trig, newer), nil
	case err != nil:
		// The credential is good; other processes will not see it, though.
		w.log.Error("wechat: cannot save the new "+r.what+"; other processes will fetch their own", "kind", string(r.kind), "err", err)
	}
	r.hold(c)
	r.note(req.trig, outcomeFetched)
	w.log.Info("wechat: fetched a new "+r.name, "trigger", req.trig.String(),
		"expires_at", c.ExpiresAt.UTC().Format(time.RFC3339))
	return c, nil
}

// lock takes the Store's lock for locked. A refresh in no hurry — a
// background or stale one while the credential held is valid, and served
// meanwhile — only tries it, if the Store is a TryLocker. When another
// process or host holds it, that one is refreshing and will save what it
// gets: lock returns a nil unlock and the credential held, which is
// treated as fresh for a retry delay more (bgRetryDelay, or a tenth of the
// credential's stale window if less; at most until it expires), so
// that neither callers nor Run start another refresh at once; the next
// one, that long after, reads the store without the lock (run) and adopts
// the saved credential, or tries the lock again. So the processes that all
// see a credential turn stale at once take the lock about once between
// them, however many they are.
func (r *refresher) lock(ctx context.Context, req request) (unlock func(), held Credential, err error) {
	w := r.w
	tl, ok := w.store.(TryLocker)
	h := r.cur.Load()
	now := w.clock.Now()
	if !ok || req.force || (req.trig != triggerBackground && req.trig != triggerStale) || h == nil || !h.ValidAt(now) {
		unlock, err := w.lockStore(ctx)
		return unlock, Credential{}, err
	}
	unlock, ok, err = tl.TryLock(ctx)
	if err != nil || ok {
		return unlock, Credential{}, err
	}
	// A tenth of the credential's stale window, like bgRetryDelay (which
	// is of RefreshBefore, longer than the window of a short-lived one).
	delay := min(w.bgRetryDelay(), window(h.Credential, r.cur.early)/10)
	// The one place that holds a credential stale later than credCache's
	// rule says: for the retry delay only, and unless another was stored
	// meanwhile (sync).
	r.cur.Postpone(h, now.Add(delay))
	w.log.Debug("wechat: the store's lock is held elsewhere; serving the held "+r.name+" and adopting what the holder saves",
		"kind", string(r.kind), "trigger", req.trig.String(), "retry_in", delay.String())
	return nil, h.Credential, nil
}

// adoptUnlocked reads the store without the lock and adopts what it holds
// if req would adopt it under the lock (see locked): a fresh credential,
// or for a passive refresh a valid one other than the one WeChat rejected.
// A forced refresh, or a store that fails, goes to the lock.
func (r *refresher) adoptUnlocked(ctx context.Context, req request) (Credential, bool) {
	if req.force {
		return Credential{}, false
	}
	stored, err := r.w.store.Load(ctx, r.kind)
	if err != nil {
		return Credential{}, false
	}
	now := r.w.clock.Now()
	adopt := r.cur.FreshAt(stored, now)
	if req.trig == triggerPassive {
		adopt = stored.ValidAt(now) && (req.stale == "" || stored.Value != req.stale)
	}
	if !adopt {
		return Credential{}, false
	}
	return r.adopt(req.trig, stored), true
}

// adopt makes c, read from the store, the credential served from memory.
func (r *refresher) adopt(trig trigger, c Credential) Credential {
	if old := r.cur.Load(); old == nil || old.Value != c.Value {
		r.w.log.Debug("wechat: adopted the stored "+r.name, "trigger", trig.String(),
			"expires_at", c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	r.hold(c)
	r.note(trig, outcomeAdopted)
	return c
}

// holdsValid reports whether a credential that has not expired, and is not
// rejected (one WeChat rejected; "" for none), is held in memory or in the
// store. One WeChat rejected is worth nothing, however long it would last:
// a keeper holding only that one holds none (in a token war, say), and the
// hourly cap must not keep it there for the rest of the hour.
func (r *refresher) holdsValid(stored Credential, now time.Time, rejected string) bool {
	usable := func(c Credential) bool { return c.ValidAt(now) && (rejected == "" || c.Value != rejected) }
	if h := r.cur.Load(); h != nil && usable(h.Credential) {
		return true
	}
	return usable(stored)
}

// fetchGuarded fetches the credential, checking the guards before every
// attempt (rejected is the credential WeChat rejected, if that is why it
// fetches) and waiting the failure back-off before every attempt. The
// caller holds the Store's lock.
//
// A token fetch that failed after its request may have reached WeChat (a
// timeout, an HTTP 5xx) is not simply repeated: WeChat may have issued a
// token, and another process may hold and have saved it (a lock whose
// lease ran out). The store is read again first, and a valid token there
// that is not the one held or rejected is returned with meanwhile true, to
// be adopted rather than killed by a second fetch.
func (r *refresher) fetchGuarded(ctx context.Context, req request, stored Credential, rejected string) (_ Credential, meanwhile bool, _ error) {
	w := r.w
	g := w.guards
	stableForce := r.primary && w.stableForce(req.force)
	var lastErr error
	for attempt := 0; ; attempt++ {
		if d := r.retry.wait(w.clock.Now()); d > 0 {
			if err := w.sleep(ctx, d); err != nil {
				if lastErr != nil {
					return Credential{}, false, fmt.Errorf("%w (gave up retrying: %w)", lastErr, err)
				}
				return Credential{}, false, fmt.Errorf("wechat: waiting to retry a failed %s fetch: %w", r.what, err)
			}
			r.retry.waited()
		}
		if r.primary && lastErr != nil && maySent(lastErr) {
			now := w.clock.Now()
			switch again, err := w.store.Load(ctx, r.kind); {
			case err != nil:
				return Credential{}, false, fmt.Errorf("%w (and re-reading the store before a retry: %w)", lastErr, err)
			case again.ValidAt(now) && again.Value != stored.Value && again.Value != rejected:
				return again, true, nil
			}
		}
		now := w.clock.Now()
		a := check{Stored: stored, HoldsValid: r.holdsValid(stored, now, rejected), StableForce: stableForce, Retry: &r.retry}
		day, err := g.check(ctx, r.lim, a, now)
		if err != nil {
			if lastErr != nil {
				return Credential{}, false, fmt.Errorf("%w (and no retry: %w)", lastErr, err)
			}
			return Credential{}, false, err
		}
		used, err := g.count(ctx, r.lim, now, stableForce)
		if err != nil {
			return Credential{}, false, fmt.Errorf("wechat: counting the %s fetch: %w", r.what, err)
		}
		res, path, err := r.fetch(ctx, req)
		if err == nil {
			c, clamped, perr := parseCredential(res, r.field, path, w.clock.Now())
			if perr != nil {
				r.fetches[fetchError].Add(1)
				r.retry.fail(w.clock.Now())
				return Credential{}, false, perr
			}
			r.fetches[fetchOK].Add(1)
			r.retry.succeed()
			g.issued(ctx, r.lim, now)
			w.noteLife(path, c, clamped)
			return c, false, nil
		}
		lastErr = err
		var apiErr *APIError
		switch {
		case errors.As(err, &apiErr) && apiErr.Code == 45009:
			r.fetches[fetchQuota].Add(1)
			// Tell every process: the budget is spent for today.
			g.exhausted(ctx, r.lim, now, used)
			w.log.Error("wechat: WeChat says the daily "+r.what+" quota is exhausted; no more fetches today", "api", r.lim.API, "day", day)
			return Credential{}, false, fmt.Errorf("%w: %w", ErrQuotaExhausted, apiErr)
		case r.lim.Cooldown && errors.As(err, &apiErr) && isCredentialError(apiErr.Code):
			r.fetches[fetchRejected].Add(1)
			until := g.startCooldown(ctx, now, apiErr)
			w.log.Error("wechat: WeChat rejected the credentials; pausing fetches", "errcode", apiErr.Code,
				"hint", apiErr.Hint(), "until", until.UTC().Format(time.RFC3339))
			return Credential{}, false, err
		case r.needsToken && errors.As(err, &apiErr) && isTokenError(apiErr.Code):
			// Not a failure of this endpoint: run refreshes the token.
			r.fetches[fetchError].Add(1)
			return Credential{}, false, err
		case isTransient(err) && attempt+1 < w.opts.MaxAttempts:
			r.fetches[fetchRetry].Add(1)
			r.retry.fail(w.clock.Now())
			w.warnRepeat(r.repeatKey("retry:"+errClass(err)), "wechat: "+r.what+" fetch failed; retrying", "attempt", attempt+1,
				"in", r.retry.wait(w.clock.Now()).String(), "err", err)
		default:
			r.fetches[fetchError].Add(1)
			r.retry.fail(w.clock.Now())
			if isTransient(err) {
				return Credential{}, false, fmt.Errorf("wechat: %s fetch failed %d times, last: %w", r.what, attempt+1, err)
			}
			return Credential{}, false, err
		}
	}
}

// sync adopts a valid stored credential that differs from, and was
// fetched after, the one in memory. It takes no lock: it only reads.
func (r *refresher) sync(ctx context.Context, trig trigger) {
	stored, err := r.w.store.Load(ctx, r.kind)
	if err != nil {
		return
	}
	h := r.cur.Load()
	now := r.w.clock.Now()
	if !stored.ValidAt(now) || (h != nil && h.Value == stored.Value) {
		return
	}
	if h != nil && h.ValidAt(now) && !stored.FetchedAt.After(h.FetchedAt) {
		return
	}
	r.adopt(trig, stored)
}
