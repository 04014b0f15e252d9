package wechat

import (
	"context"
	"fmt"
	"strings"
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
// All refreshes go through the same steps: Load (someone may have
// refreshed already: adopt their credential, without the lock), and only
// otherwise Lock, Load again, fetch, Save, unlock. The store's lock is the
// one thing that keeps two processes from fetching at once, which on
// WeChat means killing each other's tokens.
//
// A Store whose lock can be tried without waiting implements TryLocker
// too, as both stores of this module do: then a refresh that need not
// wait does not queue behind another process's refresh (see TryLocker),
// and the lock is taken about once per refresh cycle however many
// processes and hosts share the store.
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
	// Save and AddCount are safe for concurrent use through one Store
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

	// Count returns the count c names: 0 if nothing was counted.
	Count(ctx context.Context, c Counter) (int, error)

	// AddCount adds n (> 0) to the count c names and returns the new
	// count. Counts are kept at least until their day is over.
	AddCount(ctx context.Context, c Counter, n int) (int, error)
}

// A TryLocker is a Store whose lock can be tried without waiting. The
// keeper tries it, rather than waiting for it, in a refresh that is in no
// hurry: a background refresh, or one of a stale credential, while the
// credential held is still valid (and served meanwhile). When another
// process or host holds the lock it is refreshing, and will save what it
// fetches: the keeper goes on serving its credential and, a retry delay
// later (a tenth of RefreshBefore or of the credential's stale window, at
// most 1 s), reads the store again without the lock and adopts the saved
// one. So all the processes that see a credential turn stale at the same
// instant take the lock about once between them, not once each.
//
// A Store that wraps another and changes what its Lock does must give
// TryLock the same change, or not implement TryLock: embedding a store
// that has one promotes it, and the keeper would take the lock by it.
type TryLocker interface {
	// TryLock takes the store's lock (the one Lock takes) if it is free,
	// at once: it never waits for another holder. It returns ok false,
	// with a nil unlock and a nil error, when the lock is held, by
	// another process, host or Store value, or by another caller through
	// this one. An error means the store failed (or ctx is done). With ok,
	// unlock releases the lock as Lock's does.
	TryLock(ctx context.Context) (unlock func(), ok bool, err error)
}

// A Counter names one count of upstream fetches a Store keeps: the fetches
// of one API on one Beijing day (DayCounter) or in one Beijing hour of it
// (HourCounter). The zero Hour of a Counter with Hourly false means the
// whole day.
type Counter struct {
	API    string // an API constant, such as APIToken
	Day    string // the Beijing day, as QuotaDay gives it
	Hourly bool   // whether the count is of one hour of Day
	Hour   int    // the Beijing hour (0–23) of an hourly count
}

// DayCounter is the count of fetches of api on the Beijing day of t.
func DayCounter(api string, t time.Time) Counter {
	return Counter{API: api, Day: QuotaDay(t)}
}

// HourCounter is the count of fetches of api in the Beijing hour of t.
func HourCounter(api string, t time.Time) Counter {
	return Counter{API: api, Day: QuotaDay(t), Hourly: true, Hour: t.In(shanghai).Hour()}
}

// Check reports whether c names a count a Store can keep: a non-empty API
// without "@", a Day in the form 2006-01-02 and an Hour of 0–23.
func (c Counter) Check() error {
	switch {
	case c.API == "":
		return fmt.Errorf("wechat: counter %v: empty API name", c)
	case strings.Contains(c.API, "@"):
		return fmt.Errorf("wechat: counter %v: the API name has an @", c)
	case c.Hour < 0 || c.Hour > 23 || (!c.Hourly && c.Hour != 0):
		return fmt.Errorf("wechat: counter %v: hour %d out of range", c, c.Hour)
	}
	if _, err := time.Parse(time.DateOnly, c.Day); err != nil {
		return fmt.Errorf("wechat: counter %v: day %q is not a quota day (2006-01-02)", c, c.Day)
	}
	return nil
}

// Bucket is the name under which the stores of this module keep c's
// count with its Day: the API, and "@HH" for an hour ("token@13"). It is
// the layout of wechat.txt.state and of Redis keys since the first
// version, which both stores keep reading and writing.
func (c Counter) Bucket() string {
	if c.Hourly {
		return fmt.Sprintf("%s@%02d", c.API, c.Hour)
	}
	return c.API
}

// String describes c, as "token on 2026-03-04" or "token on 2026-03-04,
// hour 13".
func (c Counter) String() string {
	if c.Hourly {
		return fmt.Sprintf("%s on %s, hour %02d", c.API, c.Day, c.Hour)
	}
	return c.API + " on " + c.Day
}
