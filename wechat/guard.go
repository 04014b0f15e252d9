package wechat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// The parts of the guards that belong to the keeper rather than to the
// guards type (guards.go): the Store's lock and the repeated warnings.

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

// lockStore takes the Store's lock; every refresh that waits for it takes
// it through here, whatever the Store (one in no hurry only tries it: see
// refresher.lock). A wait longer than lockWarnAfter is shown by
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
