package wechat

import (
	"context"
	"time"
)

// A Kind names one credential a Store keeps. A Store keeps any non-empty
// Kind, not only the constants below, each fenced by FetchedAt like the
// access token (package storetest checks it).
type Kind string

// The credentials wxcentral keeps for an app.
const (
	KindAccessToken Kind = "access_token"
	KindJSAPITicket Kind = "jsapi_ticket"
	KindCardTicket  Kind = "wx_card_ticket"

	// KindCooldown is not a credential but the pause of token fetches
	// after WeChat rejected the credentials (40125, 40164, …), kept in the
	// Store so that every process and host honours it and a restart does
	// not end it: Value says why (an errcode and how many rejections in a
	// row, never a secret), ExpiresAt is the end of the pause and
	// FetchedAt when it was decided. An ended pause is saved with
	// ExpiresAt at or before FetchedAt.
	KindCooldown Kind = "fetch_cooldown"
)

// Upstream APIs whose fetches a Store counts against a daily quota.
const (
	APIToken       = "token"        // GET /cgi-bin/token, 2000 a day
	APIStableToken = "stable_token" // POST /cgi-bin/stable_token
	APIStableForce = "stable_force" // stable_token with force_refresh, 20 a day
	APITicket      = "getticket"    // GET /cgi-bin/ticket/getticket
)

// A Credential is one stored access token or ticket.
type Credential struct {
	Value     string
	ExpiresAt time.Time // absolute expiry as WeChat gave it
	FetchedAt time.Time // when it was fetched; orders saves from different hosts
}

// IsZero reports whether c holds nothing.
func (c Credential) IsZero() bool { return c.Value == "" }

// ValidAt reports whether c holds a value that has not expired at t.
func (c Credential) ValidAt(t time.Time) bool {
	return c.Value != "" && t.Before(c.ExpiresAt)
}

// A Store keeps the credentials of one app where every process that serves
// the app can read them: wechat.txt for the processes of one host
// (FileStore), Redis for many hosts (package redisstore).
//
// All refreshes go through the same steps: Lock, Load (someone may have
// refreshed already: adopt their credential), fetch, Save, unlock. The
// store's lock is the one thing that keeps two processes from fetching at
// once, which on WeChat means killing each other's tokens.
type Store interface {
	// Load returns the stored credential of kind. A missing, empty or
	// unreadable entry is the zero Credential with a nil error (the store
	// logs a corrupt one); an error means the store itself failed (a
	// permission, a network error) and the caller keeps what it has.
	Load(ctx context.Context, kind Kind) (Credential, error)

	// Save stores c as the credential of kind, unless the store already
	// holds one of that kind fetched later, in which case it stores nothing
	// and returns ErrSuperseded: a slow fetch must never overwrite a newer
	// token.
	//
	// Save and AddFetches are safe for concurrent use through one Store
	// value. Across processes (or two Store values on the same backing)
	// they are exact only while the caller holds Lock, as the refresh
	// protocol does: a FileStore rewrites the whole file. A Store that can
	// do better (Redis updates atomically) documents it.
	Save(ctx context.Context, kind Kind, c Credential) error

	// Lock takes the store's cross-process lock, waiting until it is free
	// or ctx is done. There is one lock per store (per app); the caller
	// holds it around one refresh and must not call Lock again before
	// calling unlock. A lock whose holder dies is released (by the OS for a
	// file lock, by expiry for a Redis lock).
	Lock(ctx context.Context) (unlock func(), err error)

	// AddFetches adds n to the count of upstream fetches of api on day
	// (see QuotaDay) and returns the new count; n == 0 only reads it.
	// Counts are kept at least until the day is over.
	AddFetches(ctx context.Context, api, day string, n int) (int, error)
}
