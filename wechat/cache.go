package wechat

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync/atomic"
	"time"
)

// A CredentialSource hands out a credential with its expiry, as
// oauth2.TokenSource hands out a token: what a cache needs to know when to
// ask again. It is the small interface beside TokenSource, which business
// code keeps using for a bare string; both *Wechat (the local keeper) and
// *Remote (a central server's admin API) implement the two.
type CredentialSource interface {
	// Token returns a credential that is valid now, with its ExpiresAt
	// and, when known, its FetchedAt.
	Token(ctx context.Context) (Credential, error)
}

// Both token sources give the credential with its expiry.
var (
	_ interface {
		TokenSource
		CredentialSource
	} = (*Wechat)(nil)
	_ interface {
		TokenSource
		CredentialSource
	} = (*Remote)(nil)
)

// A cacheState is how usable a cached credential is at an instant.
type cacheState int

// The cache states, from the worst. What a holder does in each is its own
// business: the keeper serves a stale credential while one background
// refresh runs, a Remote asks its server again.
const (
	cacheInvalid cacheState = iota // none held, or expired: it must not be used
	cacheStale                     // valid, but the time to get a new one has come
	cacheFresh                     // valid and not yet stale: served from memory
)

// String names the state as Status does.
func (s cacheState) String() string {
	switch s {
	case cacheFresh:
		return string(StateFresh)
	case cacheStale:
		return string(StateStale)
	}
	return string(StateInvalid)
}

// defaultLifetime is assumed for a credential whose fetch time is unknown
// (a token stored by the original Koa app).
const defaultLifetime = 7200 * time.Second

// staleAt is the one early-expiry rule of every cached credential: c turns
// stale early before its expiry, but no sooner than half of its life after
// it was fetched (life = ExpiresAt − FetchedAt, or defaultLifetime when
// FetchedAt is unknown), so that a short-lived credential is still served
// from memory for a while.
func staleAt(c Credential, early time.Duration) time.Time {
	return c.ExpiresAt.Add(-window(c, early))
}

// window is the early-expiry window of c: early, but at most half of its
// life (see staleAt).
func window(c Credential, early time.Duration) time.Duration {
	life := c.ExpiresAt.Sub(c.FetchedAt)
	if c.FetchedAt.IsZero() || life <= 0 {
		life = defaultLifetime
	}
	return min(early, life/2)
}

// spreadFraction is the share of the early-expiry window by which a
// keeper with Options.SpreadRefresh holds a credential of kind fresh
// beyond staleAt: a stable value in [0, maxSpread) from a hash of the
// AppID and the kind, the same in every process of the app and different
// from app to app.
func spreadFraction(appID string, kind Kind) float64 {
	sum := sha256.Sum256([]byte(appID + "\x00" + string(kind)))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53) * maxSpread
}

// maxSpread bounds the spread: a credential held by a keeper with
// Options.SpreadRefresh still turns stale at least half its early-expiry
// window before it expires, leaving that half for retries.
const maxSpread = 0.5

// A cached is a credential a credCache holds, with the instant it turns
// stale. It is never changed once made, so a reader needs no lock.
type cached struct {
	Credential
	staleAt time.Time
}

// stateAt is the state of h at t; a nil h is invalid.
func (h *cached) stateAt(t time.Time) cacheState {
	switch {
	case h == nil || !h.ValidAt(t):
		return cacheInvalid
	case t.Before(h.staleAt):
		return cacheFresh
	}
	return cacheStale
}

// A credCache holds one credential in memory, stale by the staleAt rule
// with its early. It is the one cache of the package: the keeper's
// refreshers (early = Options.RefreshBefore) and a Remote (early =
// RemoteOptions.EarlyExpiry) both hold their credential in one. It is safe for
// concurrent use; Load takes no lock and allocates nothing. Set early
// before first use and never change it; the zero value holds nothing.
type credCache struct {
	early time.Duration
	// spread, in [0, 1), moves the stale instant that share of the
	// early-expiry window later (see Options.SpreadRefresh); 0 for none.
	spread float64
	cur    atomic.Pointer[cached]
}

// Load returns the credential held, or nil if none was ever stored.
func (c *credCache) Load() *cached { return c.cur.Load() }

// Store holds cr from now on, whatever was held before, and returns it
// with the instant it turns stale.
func (c *credCache) Store(cr Credential) *cached {
	h := c.hold(cr)
	c.cur.Store(h)
	return h
}

// hold is cr with the instant it turns stale by c's rule.
func (c *credCache) hold(cr Credential) *cached {
	return &cached{Credential: cr, staleAt: c.staleAt(cr)}
}

// staleAt is when cr turns stale by c's rule: staleAt's, moved later by
// c's spread.
func (c *credCache) staleAt(cr Credential) time.Time {
	w := window(cr, c.early)
	return cr.ExpiresAt.Add(-w + time.Duration(c.spread*float64(w)))
}

// Postpone keeps h, if it is still what c holds, fresh until until (at
// most its expiry) although c's rule says it is stale: a refresh that
// found another process refreshing waits for what that one saves. It
// reports whether h was still held.
func (c *credCache) Postpone(h *cached, until time.Time) bool {
	if until.After(h.ExpiresAt) {
		until = h.ExpiresAt
	}
	return c.cur.CompareAndSwap(h, &cached{Credential: h.Credential, staleAt: until})
}

// State is the state at t of the credential held.
func (c *credCache) State(t time.Time) cacheState { return c.cur.Load().stateAt(t) }

// FreshAt reports whether cr, held or not, would be fresh at t by c's
// rule (the keeper judges a stored credential by it before adopting it).
func (c *credCache) FreshAt(cr Credential, t time.Time) bool {
	return cr.ValidAt(t) && t.Before(c.staleAt(cr))
}
