package wechat

import "time"

// maxBackoffShift bounds the doubling of Run's pause after failed
// background refreshes: the seventh failure in a row and every later one
// wait bgRetryDelay<<6 (64 s at the default RefreshBefore, so SyncInterval
// caps it first).
const maxBackoffShift = 6

// schedParams are what Run's schedule depends on besides the token.
type schedParams struct {
	SyncInterval time.Duration // the longest wait: Run re-reads the Store at least this often
	RetryDelay   time.Duration // the pause after one failed background refresh (bgRetryDelay)
}

// schedParams returns the parameters of w's schedule. With
// Options.SpreadRefresh the SyncInterval is shortened by a stable per-app
// share of up to a tenth of it, so that the keepers of a server's many
// apps, started together, do not all re-read their stores in the same
// instant every SyncInterval: their periods differ, and they drift apart.
func (w *Wechat) schedParams() schedParams {
	sync := w.opts.SyncInterval
	if w.opts.SpreadRefresh {
		share := spreadFraction(w.opts.AppID, "sync") / maxSpread // [0, 1)
		sync -= time.Duration(share * float64(sync) / 10)
	}
	return schedParams{SyncInterval: sync, RetryDelay: w.bgRetryDelay()}
}

// nextWake is Run's schedule: how long Run waits, at now, holding h (nil:
// no token), before it next looks at the token; 0 means refresh now.
// failures is the number of background refreshes failed in a row when the
// last one just failed and its back-off is still to be waited, and 0
// otherwise. jitter(n) returns a random duration in [0, n) (rand.N).
//
//   - After a failure: RetryDelay doubled for each earlier failure in the
//     row (at most maxBackoffShift times), at least 1 ms, at most
//     SyncInterval, whatever h is.
//   - No token, or a stale or expired one: 0.
//   - A fresh token: until it turns stale, plus a jitter of up to a tenth
//     of its RefreshBefore (so that the processes sharing it do not all
//     wake at once: the first one fetches, the others adopt), at most
//     SyncInterval (so that a token fetched out of turn elsewhere is
//     adopted within SyncInterval).
//
// A positive result is never above SyncInterval, so Run re-reads the
// Store (refresher.sync) at least that often.
func nextWake(now time.Time, h *cached, failures int, p schedParams, jitter func(n time.Duration) time.Duration) time.Duration {
	if failures > 0 {
		return max(time.Millisecond, min(p.RetryDelay<<min(failures-1, maxBackoffShift), p.SyncInterval))
	}
	if h == nil || !now.Before(h.staleAt) {
		return 0
	}
	refreshBefore := h.ExpiresAt.Sub(h.staleAt)
	return min(h.staleAt.Sub(now)+jitter(refreshBefore/10+1), p.SyncInterval)
}
