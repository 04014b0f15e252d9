package wechat

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// outage is a proxy in front of a fake WeChat that fails every call while
// the fake's clock is in [from, until): in turn errcode -1, HTTP 502 and a
// reset connection; or, built by newPathOutage, errcode -1 to the calls of
// one path alone.
type outage struct {
	srv         *httptest.Server
	path        string // "": every call
	errcodeOnly bool   // errcode -1 every time
	mu          sync.Mutex
	from, until time.Time
	failed      atomic.Int64
}

func newOutage(t *testing.T, fake *wechattest.Server) *outage {
	t.Helper()
	o := &outage{}
	target, _ := url.Parse(fake.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := fake.Now()
		o.mu.Lock()
		down := (o.path == "" || r.URL.Path == o.path) && !now.Before(o.from) && now.Before(o.until)
		o.mu.Unlock()
		if !down {
			proxy.ServeHTTP(w, r)
			return
		}
		n := o.failed.Add(1)
		switch {
		case o.errcodeOnly || n%3 == 0:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"errcode":-1,"errmsg":"system error"}`)
		case n%3 == 1:
			http.Error(w, "bad gateway", http.StatusBadGateway)
		default:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// newPathOutage is an outage that answers errcode -1 to the calls of path.
func newPathOutage(t *testing.T, fake *wechattest.Server, path string) *outage {
	t.Helper()
	o := newOutage(t, fake)
	o.mu.Lock()
	o.path, o.errcodeOnly = path, true
	o.mu.Unlock()
	return o
}

func (o *outage) set(from time.Time, d time.Duration) {
	o.mu.Lock()
	o.from, o.until = from, from.Add(d)
	o.mu.Unlock()
}

// retryBackoffs are the RetryBackoff values the outage tests run with: a
// tiny one, with which many failed attempts are made (none may count
// toward the hourly cap), and the default, whose back-off keeps them few.
var retryBackoffs = []struct {
	name        string
	d           time.Duration
	maxAttempts int64 // failed attempts allowed during the outage; 0: any
}{
	{"1ms back-off", time.Millisecond, 0},
	{"default back-off", 0, 40},
}

// A 20 s run of -1, 5xx and resets at refresh time, with callers hammering
// (as in the adversarial run that left a server an hour without a token):
// failed attempts do not count toward the hourly cap, so a new token is
// fetched within seconds of the recovery, and the old one is served until
// then.
func TestOutageAtRefreshTime(t *testing.T) {
	for _, bo := range retryBackoffs {
		t.Run(bo.name, func(t *testing.T) {
			e := newEnv(t, newFake(t))
			o := newOutage(t, e.srv)
			e.opts.APIBase = o.srv.URL
			e.opts.RetryBackoff = bo.d
			w := openKeeper(t, e)
			t1, err := w.AccessToken(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			e.srv.Advance(7200*time.Second - 5*time.Minute) // stale now
			start := e.srv.Now()
			o.set(start, 20*time.Second)
			recovered := time.Time{}
			for e.srv.Now().Before(start.Add(40 * time.Second)) {
				for range 5 {
					tok, err := w.AccessToken(t.Context())
					if err != nil {
						t.Fatalf("at +%v: AccessToken: %v; want the old token while it is valid", e.srv.Now().Sub(start), err)
					}
					if tok != t1 && recovered.IsZero() {
						recovered = e.srv.Now()
					}
					// A caller whose token WeChat rejected (it did not: WeChat is down).
					w.Refresh(t.Context(), "some-unknown-token")
				}
				settle(t, w)
				e.srv.Advance(100 * time.Millisecond)
			}
			if recovered.IsZero() {
				t.Fatalf("no new token within 20 s of the recovery; %d attempts failed during the outage", o.failed.Load())
			}
			if after := recovered.Sub(start.Add(20 * time.Second)); after > 5*time.Second {
				t.Errorf("new token %v after the recovery, want within 5 s", after)
			}
			if n := o.failed.Load(); bo.maxAttempts > 0 && n > bo.maxAttempts {
				t.Errorf("%d attempts during the 20 s outage, want at most %d", n, bo.maxAttempts)
			}
			t.Logf("%d failed attempts during the outage; new token %v after the recovery", o.failed.Load(), recovered.Sub(start.Add(20*time.Second)))
		})
	}
}

// The same outage lasting past the token's expiry: no token can be had
// while WeChat is down, but once it is up again every caller gets a token
// within seconds: no guard keeps the server without one.
func TestOutagePastExpiry(t *testing.T) {
	for _, bo := range retryBackoffs {
		t.Run(bo.name, func(t *testing.T) {
			e := newEnv(t, newFake(t))
			o := newOutage(t, e.srv)
			e.opts.APIBase = o.srv.URL
			e.opts.RetryBackoff = bo.d
			e.opts.RefreshBefore = 10 * time.Second
			w := openKeeper(t, e)
			if _, err := w.AccessToken(t.Context()); err != nil {
				t.Fatal(err)
			}
			e.srv.Advance(7200*time.Second - 10*time.Second)
			start := e.srv.Now()
			o.set(start, 30*time.Second) // the token expires 10 s into it
			up := start.Add(30 * time.Second)
			var firstOK time.Time
			for e.srv.Now().Before(start.Add(2 * time.Minute)) {
				for range 5 {
					_, err := w.AccessToken(t.Context())
					now := e.srv.Now()
					switch {
					case err == nil && firstOK.IsZero() && !now.Before(up):
						firstOK = now
					case err != nil && !firstOK.IsZero():
						t.Fatalf("at +%v, after a token was had again: %v", now.Sub(start), err)
					case err != nil && !errors.Is(err, ErrNoToken):
						t.Fatalf("err = %v, want ErrNoToken", err)
					}
				}
				settle(t, w)
				e.srv.Advance(100 * time.Millisecond)
			}
			if firstOK.IsZero() {
				t.Fatalf("no token within 90 s of the recovery; %d attempts failed during the outage", o.failed.Load())
			}
			if firstOK.Sub(up) > 5*time.Second {
				t.Errorf("first token %v after the recovery, want within 5 s", firstOK.Sub(up))
			}
			if n := o.failed.Load(); bo.maxAttempts > 0 && n > bo.maxAttempts {
				t.Errorf("%d attempts during the 30 s outage, want at most %d", n, bo.maxAttempts)
			}
		})
	}
}

// A caller that loops passive refreshes of the current token (a bug, or
// WeChat rejecting every token): fetches stay bounded by the minimum
// interval and the hourly cap (past which one per 5 min goes, the held
// token being rejected), and the token is served throughout.
func TestPassiveRefreshLoopBounded(t *testing.T) {
	e := newEnv(t, newFake(t))
	w := openKeeper(t, e)
	for range 3600 { // 18:00 to 19:00 Beijing time
		tok, err := w.AccessToken(t.Context())
		if err != nil {
			t.Fatalf("AccessToken: %v", err)
		}
		if _, err := w.Refresh(t.Context(), tok); err != nil && !errors.Is(err, ErrRateLimited) {
			t.Fatalf("Refresh: %v", err)
		}
		settle(t, w)
		e.srv.Advance(time.Second)
	}
	// 30 issued, then (the held token being the one WeChat rejected) one
	// past the cap per 5 min.
	if got := e.rt.count(wechattest.PathToken); got <= 30 || got > 30+60/5 {
		t.Errorf("fetches in the hour = %d, want the cap 30 plus at most one per 5 min", got)
	}
}

// reachCap makes 30 tokens issued in 5.5 min (a token war: each passive
// refresh carries the token WeChat rejected) and returns the last one.
func reachCap(t *testing.T, e *env, w *Wechat) string {
	t.Helper()
	tok, err := w.AccessToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for range 29 {
		e.srv.Advance(11 * time.Second)
		if tok, err = w.Refresh(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.rt.count(wechattest.PathToken); got != 30 {
		t.Fatalf("fetches = %d, want 30", got)
	}
	return tok
}

// Once the hourly cap of issued tokens is reached, a fetch is allowed past
// the cap at most once per 5 min while no usable token is held: when the
// held token was rejected by WeChat (a passive refresh with it), and when
// it has expired.
func TestCapPassedWithoutValidToken(t *testing.T) {
	e := newEnv(t, newFake(t, wechattest.WithTokenLifetime(10*time.Minute)))
	w := openKeeper(t, e)
	tok := reachCap(t, e, w)
	e.srv.Advance(11 * time.Second)
	tok, err := w.Refresh(t.Context(), tok)
	if err != nil {
		t.Fatalf("31st fetch in the hour, WeChat rejected the held token: %v, want a fetch past the cap", err)
	}
	e.srv.Advance(11 * time.Second)
	if _, err := w.Refresh(t.Context(), tok); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("32nd fetch 11 s after the pass: err = %v, want ErrRateLimited", err)
	}
	if got := e.rt.count(wechattest.PathToken); got != 31 {
		t.Fatalf("fetches = %d, want 31 (one past the cap)", got)
	}
	e.srv.Advance(10 * time.Minute) // the token expired; still 18:xx Beijing time
	e.srv.Fail(wechattest.PathToken, wechattest.Fault{Errcode: -1})
	if _, err := w.AccessToken(t.Context()); !errors.Is(err, ErrNoToken) || !errors.Is(err, ErrRateLimited) {
		t.Fatalf("err = %v, want ErrNoToken: the pass failed (-1) and its retry is refused", err)
	}
	if got := e.rt.count(wechattest.PathToken); got != 32 {
		t.Fatalf("fetches = %d, want 32 (two past the cap)", got)
	}
	e.srv.Advance(time.Minute)
	if _, err := w.AccessToken(t.Context()); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("a minute later: err = %v, want ErrRateLimited", err)
	}
	e.srv.Advance(4 * time.Minute)
	if _, err := w.AccessToken(t.Context()); err != nil {
		t.Fatalf("5 min after the last pass: %v, want a token", err)
	}
	if got := e.rt.count(wechattest.PathToken); got != 33 {
		t.Errorf("fetches = %d, want 33", got)
	}
	if n := countLines(e.logs.String(), "fetching anyway"); n != 1 {
		t.Errorf("the pass was logged %d times, want once", n)
	}
}

// With the cap reached, a caller whose every call WeChat rejects (a token
// war) refreshes passively with the current token once a second: one
// fetch passes the cap at once and then one per 5 min, not one per call,
// and a token is served throughout.
func TestCapPassedForRejectedToken(t *testing.T) {
	e := newEnv(t, newFake(t))
	w := openKeeper(t, e)
	tok := reachCap(t, e, w)
	// Past the minimum interval, then 10 min within the hour 18:00-19:00
	// Beijing time.
	e.srv.Advance(10 * time.Second)
	for i := range 600 {
		e.srv.Advance(time.Second)
		got, err := w.Refresh(t.Context(), tok)
		switch {
		case err == nil:
			tok = got
		case !errors.Is(err, ErrRateLimited):
			t.Fatalf("Refresh: %v", err)
		}
		if _, err := w.AccessToken(t.Context()); err != nil {
			t.Fatalf("AccessToken: %v", err)
		}
		want := 31 + i/300 // one at once, one 5 min later
		if got := e.rt.count(wechattest.PathToken); got != want {
			t.Fatalf("after %d s past the cap: fetches = %d, want %d", i+1, got, want)
		}
	}
}

// A store that loses the token while this process holds it (wechat.txt
// deleted) is re-seeded from memory: an unknown stale token fetches
// nothing, and the day's count is not reset.
func TestLostStoreReseeded(t *testing.T) {
	e := newEnv(t, newFake(t))
	w := openKeeper(t, e)
	t1, err := w.AccessToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Lose everything the store keeps (wechat.txt and any file next to
	// it), but not the lock file.
	ents, err := os.ReadDir(filepath.Dir(e.path))
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if !strings.HasSuffix(ent.Name(), ".lock") {
			if err := os.Remove(filepath.Join(filepath.Dir(e.path), ent.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.srv.Advance(time.Minute)
	if tok, err := w.Refresh(t.Context(), "random-stale-token"); err != nil || tok != t1 {
		t.Fatalf("Refresh = %q, %v; want the held %q", tok, err, t1)
	}
	if got := e.rt.count(wechattest.PathToken); got != 1 {
		t.Errorf("fetches = %d, want 1: a lost store must not cost a fetch", got)
	}
	if c, _ := NewFileStore(e.path, nil).Load(t.Context(), KindAccessToken); c.Value != t1 {
		t.Errorf("the store holds %q, want the held token saved back", c.Value)
	}
	// The next real fetch counts on top of what the store lost.
	if _, err := w.Refresh(t.Context(), t1); err != nil {
		t.Fatal(err)
	}
	day := QuotaDay(e.srv.Now())
	if n, _ := e.store.Count(t.Context(), Counter{API: APIToken, Day: day}); n != 2 {
		t.Errorf("the day's count = %d, want 2 (the lost 1 added back)", n)
	}
	if n, _ := e.store.Count(t.Context(), HourCounter(APIToken, e.srv.Now())); n != 2 {
		t.Errorf("the hour's issued count = %d, want 2", n)
	}
}

// WeChat rejecting the IP (40164) pauses fetches for every keeper on the
// store: another process, and a keeper built anew after the rejection.
func TestCooldownSharedThroughStore(t *testing.T) {
	e := newEnv(t, newFake(t))
	e.srv.Fail(wechattest.PathToken, wechattest.Fault{Errcode: 40164, Errmsg: "invalid ip 203.0.113.9 ipv6 ::ffff:203.0.113.9, not in whitelist rid: 1", Times: 2})
	w := openKeeper(t, e)
	var apiErr *APIError
	if _, err := w.AccessToken(t.Context()); !errors.As(err, &apiErr) || apiErr.Code != 40164 {
		t.Fatalf("err = %v, want 40164", err)
	}
	other := *e
	other.opts.Store = NewFileStore(e.path, nil) // another process on the same file
	w2 := openKeeper(t, &other)
	rebuilt := openKeeper(t, e)
	for _, k := range []*Wechat{w2, rebuilt, w} {
		_, err := k.AccessToken(t.Context())
		if !errors.Is(err, ErrCooldown) || !errors.As(err, &apiErr) || apiErr.Code != 40164 || !strings.Contains(err.Error(), "add 203.0.113.9") {
			t.Errorf("err = %v, want ErrCooldown after 40164, with its hint", err)
		}
		if st := k.Status(t.Context()); st.CooldownUntil.IsZero() {
			t.Errorf("Status.CooldownUntil is zero during the cooldown")
		}
	}
	if got := e.rt.count(wechattest.PathToken); got != 1 {
		t.Errorf("calls = %d, want 1: the others honour the stored cooldown", got)
	}
	// After the minute, one keeper tries again; the second rejection
	// doubles the cooldown for all.
	e.srv.Advance(61 * time.Second)
	w2.AccessToken(t.Context())
	e.srv.Advance(61 * time.Second)
	for _, k := range []*Wechat{w, rebuilt} {
		if _, err := k.AccessToken(t.Context()); !errors.Is(err, ErrCooldown) {
			t.Errorf("err = %v, want ErrCooldown (2 min after the second rejection)", err)
		}
	}
	if got := e.rt.count(wechattest.PathToken); got != 2 {
		t.Errorf("calls = %d, want 2", got)
	}
	// Fixed; after the doubled pause a fetch succeeds and ends it for all.
	e.srv.Advance(time.Minute)
	tok, err := rebuilt.AccessToken(t.Context())
	if err != nil {
		t.Fatalf("after the cooldown: %v", err)
	}
	if tok2, err := w.AccessToken(t.Context()); err != nil || tok2 != tok {
		t.Errorf("the first keeper: %q, %v; want the adopted %q", tok2, err, tok)
	}
	if st := w.Status(t.Context()); !st.CooldownUntil.IsZero() {
		t.Errorf("Status.CooldownUntil = %v after a success", st.CooldownUntil)
	}
}

// A refresh blocked on the Store's lock logs it once and Status says so.
func TestLockWaitReported(t *testing.T) {
	e := newEnv(t, newFake(t))
	w := openKeeper(t, e)
	w.lockWarnAfter = time.Millisecond
	unlock, err := NewFileStore(e.path, nil).Lock(t.Context()) // another process holds it
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := w.AccessToken(t.Context())
		done <- err
	}()
	eventually(t, "the wait to be logged", func() bool {
		return strings.Contains(e.logs.String(), "waiting for the store's lock")
	})
	if st := w.Status(t.Context()); st.LockWaitSince.IsZero() {
		t.Error("Status.LockWaitSince is zero while a refresh waits on the lock")
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := w.Status(t.Context()); !st.LockWaitSince.IsZero() {
		t.Errorf("Status.LockWaitSince = %v after the lock was taken", st.LockWaitSince)
	}
	logs := e.logs.String()
	if n := countLines(logs, "waiting for the store's lock", "store="+e.path, "waited="); n != 1 {
		t.Errorf("%d lines about the wait, want 1 naming the store and the wait:\n%s", n, logs)
	}
	if n := countLines(logs, "got the store's lock", "waited="); n != 1 {
		t.Errorf("%d lines about the end of the wait, want 1", n)
	}
}

// Callers hammering a keeper that cannot fetch (in cooldown, the token
// expired) do not flood the log: a repeated warning is logged once a
// minute with the count of those suppressed.
func TestNoLogFlood(t *testing.T) {
	e := newEnv(t, newFake(t))
	e.opts.CredentialCooldown = time.Hour
	w := openKeeper(t, e)
	if _, err := w.AccessToken(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.srv.Fail(wechattest.PathToken, wechattest.Fault{Errcode: 40125, Times: 1000})
	e.srv.Advance(3 * time.Hour)
	for range 100 {
		if _, err := w.AccessToken(t.Context()); err == nil {
			t.Fatal("got a token")
		}
	}
	logs := e.logs.String()
	if n := countLines(logs, "level=WARN") + countLines(logs, "level=ERROR"); n > 3 {
		t.Errorf("%d warning lines for 100 failing calls, want at most 3:\n%s", n, logs)
	}
	e.srv.Advance(2 * time.Minute)
	w.AccessToken(t.Context())
	if n := countLines(e.logs.String(), "token refresh failed", "repeats_suppressed=98"); n != 1 {
		t.Errorf("want one line counting the 98 suppressed repeats:\n%s", e.logs)
	}
}

// A Client takes its API base from the keeper: one that forgets APIBase
// calls the keeper's (fake) WeChat, not the real one.
func TestClientTakesAPIBaseFromSource(t *testing.T) {
	e := newEnv(t, newFake(t))
	w := openKeeper(t, e)
	c := &Client{Source: w, HTTPClient: e.opts.HTTPClient}
	if _, err := c.Get(t.Context(), wechattest.PathAPIDomainIP, nil); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got := e.rt.count(wechattest.PathAPIDomainIP); got != 1 {
		t.Errorf("calls to the fake = %d, want 1", got)
	}
	// An explicit APIBase still wins.
	r := newRedirector(t, http.StatusFound, wechattest.PathAPIDomainIP)
	c.APIBase = r.first.URL
	if _, err := c.Get(t.Context(), wechattest.PathAPIDomainIP, nil); err == nil {
		t.Error("Get on the explicit APIBase (which redirects) succeeded")
	}
	if got := e.rt.count(wechattest.PathAPIDomainIP); got != 2 { // through the same counting client
		t.Errorf("calls = %d, want 2", got)
	}
}

// lockWatch is a Store that knows whether its lock is held.
type lockWatch struct {
	*FileStore
	held atomic.Bool
}

func (s *lockWatch) Lock(ctx context.Context) (func(), error) {
	unlock, err := s.FileStore.Lock(ctx)
	if err != nil {
		return nil, err
	}
	s.held.Store(true)
	return func() { s.held.Store(false); unlock() }, nil
}

// The back-off left by a failed refresh is waited before the next refresh
// takes the Store's lock, not under it: other processes, hosts and the
// ticket refreshes are not kept from the Store meanwhile.
func TestCarriedBackoffWaitedWithoutLock(t *testing.T) {
	e := newEnv(t, newFake(t))
	store := &lockWatch{FileStore: e.store}
	e.opts.Store, e.opts.MaxAttempts = store, 1
	e.srv.Fail(wechattest.PathToken, wechattest.Fault{Errcode: -1, Times: 1})
	w := openKeeper(t, e)
	var waits, underLock int
	w.sleep = func(ctx context.Context, d time.Duration) error {
		waits++
		if store.held.Load() {
			underLock++
		}
		e.srv.Advance(d)
		return ctx.Err()
	}
	if _, err := w.AccessToken(t.Context()); err == nil {
		t.Fatal("the first refresh got a token through a -1")
	}
	if waits != 0 {
		t.Fatalf("waits = %d before any back-off", waits)
	}
	if _, err := w.AccessToken(t.Context()); err != nil {
		t.Fatal(err)
	}
	if waits != 1 || underLock != 0 {
		t.Errorf("the carried-over back-off: %d waits, %d of them holding the Store's lock; want 1 and 0", waits, underLock)
	}
}

// forgetful is a Store that cannot keep the access token: it never loads
// one, and saving one fails.
type forgetful struct{ *FileStore }

func (s forgetful) Load(ctx context.Context, kind Kind) (Credential, error) {
	if kind == KindAccessToken {
		return Credential{}, nil
	}
	return s.FileStore.Load(ctx, kind)
}

func (s forgetful) Save(ctx context.Context, kind Kind, c Credential) error {
	if kind == KindAccessToken {
		return errors.New("disk full")
	}
	return s.FileStore.Save(ctx, kind, c)
}

// A store that cannot keep the token makes every refresh re-seed it: that
// is logged at most once a minute, not twice per refresh.
func TestReseedNotFlooding(t *testing.T) {
	e := newEnv(t, newFake(t))
	e.opts.Store = forgetful{e.store}
	w := openKeeper(t, e)
	tok, err := w.AccessToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		e.srv.Advance(time.Second)
		if got, err := w.Refresh(t.Context(), "unknown-stale-token"); err != nil || got != tok {
			t.Fatalf("Refresh = %q, %v; want the held token", got, err)
		}
	}
	logs := e.logs.String()
	if n := countLines(logs, "level=WARN", "has lost the valid access token"); n != 2 {
		t.Errorf("%d lines about the lost token in 100 s, want 2 (one a minute):\n%s", n, logs)
	}
	if n := countLines(logs, "level=ERROR", "cannot save the held token back", "disk full"); n != 2 {
		t.Errorf("%d lines about the failed save in 100 s, want 2 (one a minute)", n)
	}
	if n := countLines(logs, "cannot save the held token back", "repeats_suppressed=59"); n != 1 {
		t.Errorf("want the second line to count the 59 suppressed:\n%s", logs)
	}
	if got := e.rt.count(wechattest.PathToken); got != 1 {
		t.Errorf("fetches = %d, want 1", got)
	}
}

// gatedLock is a Store whose Lock waits for a release (another process
// holding the lock) before taking the real one.
type gatedLock struct {
	*FileStore
	release chan struct{}
}

func (s *gatedLock) Lock(ctx context.Context) (func(), error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.FileStore.Lock(ctx)
}

// Two refreshes wait long on the lock at once: Status.LockWaitSince stays
// set until the last of them has the lock, not only the first.
func TestLockWaitSinceSharedByWaits(t *testing.T) {
	e := newEnv(t, newFake(t))
	store := &gatedLock{FileStore: e.store, release: make(chan struct{})}
	e.opts.Store = store
	w := openKeeper(t, e)
	w.lockWarnAfter = time.Millisecond
	done := make(chan error, 2)
	go func() { _, err := w.AccessToken(t.Context()); done <- err }()
	go func() { _, err := w.ForceRefresh(t.Context()); done <- err }()
	eventually(t, "both waits to be long", func() bool {
		w.logMu.Lock()
		defer w.logMu.Unlock()
		r := w.repeats["lock"]
		return r.n == 1 && r.suppressed == 1 // one logged, one counted
	})
	store.release <- struct{}{} // one of them takes the lock and ends
	<-done
	if st := w.Status(t.Context()); st.LockWaitSince.IsZero() {
		t.Error("Status.LockWaitSince is zero while the second refresh still waits on the lock")
	}
	store.release <- struct{}{}
	<-done
	if st := w.Status(t.Context()); !st.LockWaitSince.IsZero() {
		t.Errorf("Status.LockWaitSince = %v after both refreshes took the lock", st.LockWaitSince)
	}
}

// EndCooldown ends a stored cooldown for every process on the store, at
// once and without a fetch: a keeper built with the corrected secret (as
// a server's reload builds it) fetches on its next call, and another
// process on the store sees the pause gone.
func TestEndCooldown(t *testing.T) {
	e := newEnv(t, newFake(t))
	e.srv.Fail(wechattest.PathToken, wechattest.Fault{Errcode: 40125, Times: 1})
	w := openKeeper(t, e)
	if _, err := w.AccessToken(t.Context()); err == nil {
		t.Fatal("the rejected secret got a token")
	}
	other := *e
	other.opts.Store = NewFileStore(e.path, nil)
	w2 := openKeeper(t, &other)
	if _, err := w2.AccessToken(t.Context()); !errors.Is(err, ErrCooldown) {
		t.Fatalf("another process: err = %v, want ErrCooldown", err)
	}
	fixed := openKeeper(t, e) // the corrected secret, as after a reload
	calls := e.rt.count(wechattest.PathToken)
	if !fixed.EndCooldown(t.Context()) {
		t.Fatal("EndCooldown found no cooldown in force")
	}
	if got := e.rt.count(wechattest.PathToken); got != calls {
		t.Errorf("EndCooldown made %d calls, want none", got-calls)
	}
	if fixed.EndCooldown(t.Context()) {
		t.Error("EndCooldown found a cooldown after ending it")
	}
	tok, err := fixed.AccessToken(t.Context())
	if err != nil {
		t.Fatalf("after EndCooldown: %v", err)
	}
	if got, err := w2.AccessToken(t.Context()); err != nil || got != tok {
		t.Errorf("the other process: %q, %v; want the new token %q", got, err, tok)
	}
}
