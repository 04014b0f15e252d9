package central

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
)

// stubKeeper is a Keeper whose answers the test sets.
type stubKeeper struct {
	mu     sync.Mutex
	err    error // of Token
	status wechat.Status
	now    func() time.Time
}

func (k *stubKeeper) Token(context.Context) (wechat.Credential, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err != nil {
		return wechat.Credential{}, k.err
	}
	return wechat.Credential{Value: "stub-token", ExpiresAt: k.now().Add(time.Hour), FetchedAt: k.now()}, nil
}

func (k *stubKeeper) Refresh(context.Context, string) (string, error) { return "stub-token", nil }

func (k *stubKeeper) JSAPITicket(context.Context) (wechat.Credential, error) {
	return wechat.Credential{}, errors.New("no tickets here")
}

func (k *stubKeeper) JSSDKConfig(context.Context, string) (wechat.JSSDKConfig, error) {
	return wechat.JSSDKConfig{}, errors.New("no tickets here")
}

func (k *stubKeeper) Status(context.Context) wechat.Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.status
}

func (k *stubKeeper) Stats() wechat.Stats { return wechat.Stats{} }

func (k *stubKeeper) setErr(err error) {
	k.mu.Lock()
	k.err = err
	k.mu.Unlock()
}

// fakeClock is a Clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// serveHTTP runs one request with the given Host through h.
func serveHTTP(h http.Handler, method, host, path, key string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	r.Host = host
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// Without a key the admin API answers loopback Host names and the allowed
// ones only: a DNS rebinding name that resolves to 127.0.0.1 gets nothing.
func TestAdminHostCheckWithoutKey(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	k := &stubKeeper{now: clock.Now, status: wechat.Status{Healthy: true, State: wechat.StateFresh, StoreReachable: true}}
	a := NewAdmin(k, AdminOptions{Clock: clock, AllowedHosts: []string{"WXCentral.internal"}})
	for _, host := range []string{"localhost", "localhost:3101", "LOCALHOST.:3101", "127.0.0.1:3101", "127.3.4.5",
		"[::1]:3101", "[::ffff:127.0.0.1]:80", "wxcentral.internal", "wxcentral.internal:8080"} {
		for _, path := range []string{"/v1/token", "/healthz"} {
			if w := serveHTTP(a, "GET", host, path, ""); w.Code != 200 {
				t.Errorf("Host %q %s: %d %s, want 200", host, path, w.Code, w.Body)
			}
		}
	}
	for _, host := range []string{"rebind.attacker.example:3101", "rebind.attacker.example", "localhost.attacker.example",
		"10.0.0.1:3101", "[::2]:3101", "wxcentral.internal.attacker.example", ""} {
		for _, path := range []string{"/v1/token", "/v1/ticket/jsapi", "/healthz", "/metrics"} {
			w := serveHTTP(a, "GET", host, path, "")
			if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "WECHAT_ADMIN_HOSTS") ||
				strings.Contains(w.Body.String(), "stub-token") {
				t.Errorf("Host %q %s: %d %s, want 403 naming WECHAT_ADMIN_HOSTS", host, path, w.Code, w.Body)
			}
		}
	}
	// With a key any Host is answered: a browser does not send the key.
	keyed := NewAdmin(k, AdminOptions{Clock: clock, Key: testKey})
	if w := serveHTTP(keyed, "GET", "rebind.attacker.example:3101", "/v1/token", testKey); w.Code != 200 {
		t.Errorf("with a key: %d %s, want 200", w.Code, w.Body)
	}
}

// A business server looping on GET /v1/token while no token can be had
// makes one WARN line, then one a minute with the count, and one line when
// requests succeed again.
func TestAdminFailureLogRateLimited(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	k := &stubKeeper{now: clock.Now}
	var logs bytes.Buffer
	a := NewAdmin(k, AdminOptions{Clock: clock, Key: testKey, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	warns := func() []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "level=WARN") {
				out = append(out, l)
			}
		}
		return out
	}
	k.setErr(fmt.Errorf("%w: wechat: fetches paused after errcode 40164", wechat.ErrNoToken))
	for range 50 {
		if w := serveHTTP(a, "GET", "localhost", "/v1/token", testKey); w.Code != 502 && w.Code != 503 {
			t.Fatalf("failing keeper: %d", w.Code)
		}
		clock.Advance(time.Second / 2)
	}
	if got := warns(); len(got) != 1 {
		t.Fatalf("50 failed requests in 25 s wrote %d WARN lines, want 1:\n%s", len(got), logs.String())
	}
	clock.Advance(time.Minute)
	serveHTTP(a, "GET", "localhost", "/v1/token", testKey)
	got := warns()
	if len(got) != 2 || !strings.Contains(got[1], "repeated=49") {
		t.Fatalf("a minute later: want a second WARN line with repeated=49:\n%s", logs.String())
	}
	// Another failure is a state change: logged at once.
	k.setErr(fmt.Errorf("%w: the store is unreachable", wechat.ErrNoToken))
	serveHTTP(a, "GET", "localhost", "/v1/token", testKey)
	if got := warns(); len(got) != 3 || !strings.Contains(got[2], "unreachable") {
		t.Fatalf("a new failure: want a third WARN line naming it:\n%s", logs.String())
	}
	// Recovery is logged once.
	k.setErr(nil)
	for range 3 {
		if w := serveHTTP(a, "GET", "localhost", "/v1/token", testKey); w.Code != 200 {
			t.Fatalf("recovered keeper: %d", w.Code)
		}
	}
	if n := strings.Count(logs.String(), "succeed again"); n != 1 || !strings.Contains(logs.String(), "failed_requests=52") {
		t.Errorf("recovery logged %d times (want 1, with failed_requests=52):\n%s", n, logs.String())
	}
}

// The limiter keys on the kind of failure, not its text: WeChat's errmsg
// carries a request id that differs on every call, and a rebinding page
// looping on a foreign Host names a new port or name each time.
func TestAdminFailureLogKeys(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	k := &stubKeeper{now: clock.Now}
	var logs bytes.Buffer
	a := NewAdmin(k, AdminOptions{Clock: clock, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	lines := func(msg string) []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, msg) {
				out = append(out, l)
			}
		}
		return out
	}
	for i := range 50 {
		k.setErr(fmt.Errorf("%w: %w", wechat.ErrNoToken, &wechat.APIError{API: "/cgi-bin/token", Code: 40164,
			Msg: fmt.Sprintf("invalid ip 203.0.113.9 ipv6 ::ffff:203.0.113.9, not in whitelist rid: 69b2c1d4-%08x", i)}))
		if w := serveHTTP(a, "GET", "localhost", "/v1/token", ""); w.Code != 502 {
			t.Fatalf("failing keeper: %d", w.Code)
		}
		if w := serveHTTP(a, "GET", fmt.Sprintf("rebind-%d.attacker.example:%d", i, 3101+i), "/v1/token", ""); w.Code != 403 {
			t.Fatalf("foreign Host: %d", w.Code)
		}
		clock.Advance(time.Second / 2)
	}
	if got := lines("admin request failed"); len(got) != 1 {
		t.Errorf("50 WeChat failures with distinct rids wrote %d lines, want 1:\n%s", len(got), logs.String())
	}
	if got := lines("admin request refused"); len(got) != 1 || !strings.Contains(got[0], "rebind-0.attacker.example") || !strings.Contains(got[0], "level=INFO") {
		t.Errorf("50 foreign Hosts wrote %d lines, want 1 at INFO naming the first Host:\n%s", len(got), logs.String())
	}
	clock.Advance(time.Minute)
	k.setErr(fmt.Errorf("%w: %w", wechat.ErrNoToken, &wechat.APIError{API: "/cgi-bin/token", Code: 40164, Msg: "not in whitelist rid: 1"}))
	serveHTTP(a, "GET", "localhost", "/v1/token", "")
	serveHTTP(a, "GET", "evil.example", "/v1/token", "")
	if got := lines("admin request failed"); len(got) != 2 || !strings.Contains(got[1], "repeated=49") {
		t.Errorf("a minute later: want a second failure line with repeated=49:\n%s", logs.String())
	}
	if got := lines("admin request refused"); len(got) != 2 || !strings.Contains(got[1], "repeated=49") || !strings.Contains(got[1], "evil.example") {
		t.Errorf("a minute later: want a second refusal line with repeated=49:\n%s", logs.String())
	}
	// Another errcode is another failure.
	k.setErr(fmt.Errorf("%w: %w", wechat.ErrNoToken, &wechat.APIError{API: "/cgi-bin/token", Code: 40125, Msg: "invalid appsecret rid: 2"}))
	serveHTTP(a, "GET", "localhost", "/v1/token", "")
	if got := lines("admin request failed"); len(got) != 3 || !strings.Contains(got[2], "40125") {
		t.Errorf("another errcode: want a third failure line:\n%s", logs.String())
	}
}

// /healthz says when refreshes wait for the store's lock held elsewhere.
func TestHealthzLockWait(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	k := &stubKeeper{now: clock.Now}
	a := NewAdmin(k, AdminOptions{Clock: clock})
	for _, healthy := range []bool{true, false} {
		k.mu.Lock()
		k.status = wechat.Status{Healthy: healthy, State: wechat.StateStale, StoreReachable: true,
			LockWaitSince: clock.Now().Add(-12 * time.Second)}
		k.mu.Unlock()
		w := serveHTTP(a, "GET", "127.0.0.1", "/healthz", "")
		var h map[string]any
		json.Unmarshal(w.Body.Bytes(), &h)
		wantCode := 200
		if !healthy {
			wantCode = 503
		}
		if w.Code != wantCode || h["lock_wait_seconds"] != 12.0 || h["lock_wait_since"] != "2026-03-01T09:59:48Z" ||
			!strings.Contains(fmt.Sprint(h["error"]), "waiting 12s for the store's lock") {
			t.Errorf("healthy=%v: %d %s, want %d with the lock wait", healthy, w.Code, w.Body, wantCode)
		}
	}
	k.mu.Lock()
	k.status = wechat.Status{Healthy: true, State: wechat.StateFresh, StoreReachable: true}
	k.mu.Unlock()
	if w := serveHTTP(a, "GET", "127.0.0.1", "/healthz", ""); w.Code != 200 || strings.Contains(w.Body.String(), "lock") {
		t.Errorf("without a lock wait: %d %s", w.Code, w.Body)
	}
}
