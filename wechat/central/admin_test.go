package central

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

const (
	testAppID  = "wx0123456789abcdef"
	testSecret = "S3CRET-must-never-leak-0123456789"
	testKey    = "admin-key-0123456789abcdef"
)

type adminEnv struct {
	fake   *wechattest.Server
	keeper *wechat.Wechat
	admin  *Admin
	srv    *httptest.Server
}

func newAdminEnv(t testing.TB) *adminEnv {
	t.Helper()
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret),
		wechattest.WithClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)))
	t.Cleanup(fake.Close)
	store := wechat.NewFileStore(filepath.Join(t.TempDir(), "wechat.txt"), nil)
	k, err := wechat.New(context.Background(), wechat.Options{
		AppID: testAppID, AppSecret: testSecret, APIBase: fake.URL, Clock: fake, Store: store,
		RetryBackoff: time.Millisecond, MaxAttempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	a := NewAdmin(k, AdminOptions{Key: testKey, Clock: fake, Store: store})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &adminEnv{fake: fake, keeper: k, admin: a, srv: srv}
}

// do sends a request with the key (unless key is "-") and returns the
// status and the decoded JSON body.
func (e *adminEnv) do(t testing.TB, method, path, key, contentType, body string) (int, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if key != "-" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, string(raw)
}

func TestAdminRoutes(t *testing.T) {
	e := newAdminEnv(t)
	tok, _ := e.keeper.AccessToken(context.Background())
	page := url.QueryEscape("https://example.com/page?id=7#top")
	tests := []struct {
		name, method, path, key, ctype, body string
		status                               int
		keys                                 []string // in the JSON answer
	}{
		{"token", "GET", "/v1/token", testKey, "", "", 200, []string{"access_token", "expires_at", "expires_in"}},
		{"no key", "GET", "/v1/token", "-", "", "", 401, []string{"error"}},
		{"wrong key", "GET", "/v1/token", "admin-key-0123456789abcdeX", "", "", 401, []string{"error"}},
		{"ticket", "GET", "/v1/ticket/jsapi", testKey, "", "", 200, []string{"ticket", "expires_at", "expires_in"}},
		{"ticket no key", "GET", "/v1/ticket/jsapi", "-", "", "", 401, []string{"error"}},
		{"jssdk", "GET", "/v1/jssdk/config?url=" + page, testKey, "", "", 200, []string{"appId", "timestamp", "nonceStr", "signature"}},
		{"jssdk no url", "GET", "/v1/jssdk/config", testKey, "", "", 400, []string{"error"}},
		{"jssdk relative url", "GET", "/v1/jssdk/config?url=%2Fpage", testKey, "", "", 400, []string{"error"}},
		{"refresh outdated stale (json)", "POST", "/v1/token/refresh", testKey, "application/json", `{"stale":"outdated"}`, 200, []string{"access_token", "expires_at", "expires_in"}},
		{"refresh outdated stale (form)", "POST", "/v1/token/refresh", testKey, "application/x-www-form-urlencoded", "stale=outdated", 200, []string{"access_token"}},
		{"refresh without stale", "POST", "/v1/token/refresh", testKey, "application/json", `{}`, 400, []string{"error"}},
		{"refresh bad json", "POST", "/v1/token/refresh", testKey, "application/json", `{"stale":`, 400, []string{"error"}},
		{"refresh bad type", "POST", "/v1/token/refresh", testKey, "text/plain", `outdated`, 400, []string{"error"}},
		{"refresh no key", "POST", "/v1/token/refresh", "-", "application/json", `{"stale":"x"}`, 401, []string{"error"}},
		{"refresh by GET", "GET", "/v1/token/refresh", testKey, "", "", 405, []string{"error"}},
		{"healthz open", "GET", "/healthz", "-", "", "", 200, []string{"status", "state", "expires_in"}},
		{"unknown", "GET", "/v2/token", testKey, "", "", 404, []string{"error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, m, raw := e.do(t, tt.method, tt.path, tt.key, tt.ctype, tt.body)
			if code != tt.status {
				t.Fatalf("status %d, want %d: %s", code, tt.status, raw)
			}
			for _, k := range tt.keys {
				if _, ok := m[k]; !ok {
					t.Errorf("answer %s lacks %q", raw, k)
				}
			}
			if strings.Contains(raw, testSecret) || strings.Contains(raw, testKey) {
				t.Errorf("answer shows a secret: %s", raw)
			}
			if code == 200 && m["access_token"] != nil && m["access_token"] != tok {
				t.Errorf("access_token is not the keeper's")
			}
		})
	}
	// The shapes' values.
	_, m, _ := e.do(t, "GET", "/v1/token", testKey, "", "")
	if in := m["expires_in"].(float64); in < 7190 || in > 7200 {
		t.Errorf("expires_in = %v, want about 7200", in)
	}
	if at, err := time.Parse(time.RFC3339, m["expires_at"].(string)); err != nil || !at.Equal(e.fake.Now().Add(7200*time.Second).Truncate(time.Second)) {
		t.Errorf("expires_at = %v (%v)", m["expires_at"], err)
	}
	_, m, _ = e.do(t, "GET", "/v1/jssdk/config?url="+page, testKey, "", "")
	ticket, _ := e.keeper.JSAPITicket(context.Background())
	want := wechat.JSSDKSignature(ticket.Value, m["nonceStr"].(string), int64(m["timestamp"].(float64)), "https://example.com/page?id=7")
	if m["signature"] != want || m["appId"] != testAppID {
		t.Errorf("jssdk config %v does not verify", m)
	}
}

func TestAdminPassiveRefresh(t *testing.T) {
	e := newAdminEnv(t)
	ctx := context.Background()
	old, _ := e.keeper.AccessToken(ctx)
	e.fake.Advance(time.Minute) // past the minimum interval between fetches
	fetches := func() int { return e.fake.Stats().Fetches[wechattest.PathToken] }

	before := fetches()
	code, m, raw := e.do(t, "POST", "/v1/token/refresh", testKey, "application/json", fmt.Sprintf(`{"stale":%q}`, old))
	if code != 200 || m["access_token"] == old {
		t.Fatalf("refresh of the current token: %d %s", code, raw)
	}
	if fetches() != before+1 {
		t.Errorf("refresh of the current token made %d fetches, want 1", fetches()-before)
	}
	fresh := m["access_token"]

	// The same stale token again (another business server saw it rejected):
	// the store holds another one, so no fetch.
	code, m, raw = e.do(t, "POST", "/v1/token/refresh", testKey, "application/x-www-form-urlencoded", "stale="+url.QueryEscape(old))
	if code != 200 || m["access_token"] != fresh {
		t.Fatalf("refresh of an outdated token: %d %s", code, raw)
	}
	if fetches() != before+1 {
		t.Error("refresh of an outdated token fetched")
	}
}

func TestAdminUpstreamErrors(t *testing.T) {
	tests := []struct {
		name    string
		fault   wechattest.Fault
		status  int
		errcode int
	}{
		{"whitelist", wechattest.Fault{Errcode: 40164, Errmsg: "invalid ip 1.2.3.4 ipv6 ::ffff:1.2.3.4, not in whitelist"}, 502, 40164},
		{"quota", wechattest.Fault{Errcode: 45009}, 503, 45009},
		{"gateway", wechattest.Fault{Status: 502}, 502, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAdminEnv(t)
			old, _ := e.keeper.AccessToken(context.Background())
			e.fake.Advance(time.Minute)
			e.fake.Fail(wechattest.PathToken, tt.fault)
			code, m, raw := e.do(t, "POST", "/v1/token/refresh", testKey, "application/json", fmt.Sprintf(`{"stale":%q}`, old))
			if code != tt.status {
				t.Fatalf("status %d, want %d: %s", code, tt.status, raw)
			}
			if got, _ := m["errcode"].(float64); int(got) != tt.errcode {
				t.Errorf("errcode %v, want %d", m["errcode"], tt.errcode)
			}
			if strings.Contains(raw, old) || strings.Contains(raw, testSecret) {
				t.Errorf("the error shows a secret: %s", raw)
			}
		})
	}
}

// TestStatusOf covers every sentinel and reason. A cooldown is 503 with
// its end as Retry-After, whatever WeChat error started it: it ends by
// itself (it used to be 502, the *APIError it wraps winning, which left
// the doc's "503 when fetches are paused" dead).
func TestStatusOf(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	api := &wechat.APIError{Code: 40125, Msg: "invalid appsecret", API: "/cgi-bin/token"}
	cooldown := &wechat.CooldownError{Until: now.Add(90*time.Second + time.Millisecond), Err: api}
	tests := []struct {
		name       string
		err        error
		status     int
		errcode    int
		reason     string
		retryAfter string
	}{
		{"quota, no token", fmt.Errorf("%w: %w", wechat.ErrNoToken, wechat.ErrQuotaExhausted), 503, 0, wechat.ReasonQuotaExhausted, ""},
		{"quota 45009", fmt.Errorf("%w: %w", wechat.ErrQuotaExhausted, &wechat.APIError{Code: 45009}), 503, 45009, wechat.ReasonQuotaExhausted, ""},
		{"rate limited", fmt.Errorf("x: %w", wechat.ErrRateLimited), 503, 0, wechat.ReasonRateLimited, ""},
		{"cooldown", cooldown, 503, 40125, wechat.ReasonCooldown, "91"},
		{"cooldown, no token", fmt.Errorf("%w: %w", wechat.ErrNoToken, cooldown), 503, 40125, wechat.ReasonCooldown, "91"},
		{"cooldown without its end", &wechat.CooldownError{Err: api}, 503, 40125, wechat.ReasonCooldown, ""},
		{"cooldown ended", &wechat.CooldownError{Until: now.Add(-time.Second), Err: api}, 503, 40125, wechat.ReasonCooldown, ""},
		{"credential error", fmt.Errorf("%w: %w", wechat.ErrNoToken, api), 502, 40125, wechat.ReasonNoToken, ""},
		{"closed", fmt.Errorf("x: %w", wechat.ErrClosed), 503, 0, wechat.ReasonClosed, ""},
		{"shutting down", fmt.Errorf("%w: x", ErrShuttingDown), 503, 0, ReasonShuttingDown, ""},
		{"deadline", fmt.Errorf("waiting: %w", context.DeadlineExceeded), 503, 0, wechat.ReasonTimeout, ""},
		{"cancelled", fmt.Errorf("waiting: %w", context.Canceled), 503, 0, wechat.ReasonTimeout, ""},
		{"upstream", &wechat.APIError{Code: 40013, API: "/cgi-bin/token"}, 502, 40013, wechat.ReasonUpstream, ""},
		{"internal", errors.New("wechat: /cgi-bin/token: HTTP 502 Bad Gateway from WeChat"), 502, 0, wechat.ReasonInternal, ""},
		// WeChat busy: no token now, retry later (a start-up during an outage).
		{"busy -1", fmt.Errorf("%w: fetch failed 4 times, last: %w", wechat.ErrNoToken, &wechat.APIError{Code: -1}), 503, -1, wechat.ReasonNoToken, ""},
		{"busy -1000", fmt.Errorf("%w: %w", wechat.ErrNoToken, &wechat.APIError{Code: -1000}), 503, -1000, wechat.ReasonNoToken, ""},
	}
	for _, tt := range tests {
		if s, c := StatusOf(tt.err); s != tt.status || c != tt.errcode {
			t.Errorf("%s: StatusOf(%v) = %d, %d; want %d, %d", tt.name, tt.err, s, c, tt.status, tt.errcode)
		}
		if r := ErrorReason(tt.err); r != tt.reason {
			t.Errorf("%s: ErrorReason = %q, want %q", tt.name, r, tt.reason)
		}
		if ra := retryAfter(tt.err, now); ra != tt.retryAfter {
			t.Errorf("%s: Retry-After %q, want %q", tt.name, ra, tt.retryAfter)
		}
	}
}

// TestAdminErrorReasons checks the reason of each refusal and of keeper
// failures in the body, and the Retry-After of a cooldown, over HTTP.
func TestAdminErrorReasons(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	clock := util.ClockFunc(func() time.Time { return now })
	k := &stubKeeper{now: clock.Now}
	a := NewAdmin(k, AdminOptions{Key: testKey, Clock: clock})
	keyless := NewAdmin(k, AdminOptions{Clock: clock})
	api := &wechat.APIError{Code: 40164, Msg: "invalid ip 1.2.3.4, not in whitelist", API: "/cgi-bin/token"}
	check := func(name string, h http.Handler, method, host, path, key string, err error, status int, reason, retryAfter string) {
		t.Helper()
		k.setErr(err)
		rec := serveHTTP(h, method, host, path, key)
		var body struct {
			Error   string `json:"error"`
			Reason  string `json:"reason"`
			Errcode int    `json:"errcode"`
		}
		if e := json.Unmarshal(rec.Body.Bytes(), &body); e != nil {
			t.Fatalf("%s: %v: %s", name, e, rec.Body)
		}
		if rec.Code != status || body.Reason != reason || body.Error == "" {
			t.Errorf("%s: %d %s; want %d with reason %q", name, rec.Code, rec.Body, status, reason)
		}
		if got := rec.Header().Get("Retry-After"); got != retryAfter {
			t.Errorf("%s: Retry-After %q, want %q", name, got, retryAfter)
		}
	}
	check("no key", a, "GET", "localhost", "/v1/token", "", nil, 401, ReasonUnauthorized, "")
	check("wrong key", a, "GET", "localhost", "/v1/token", "nope", nil, 401, ReasonUnauthorized, "")
	check("foreign host", keyless, "GET", "evil.example", "/v1/token", "", nil, 403, ReasonForbiddenHost, "")
	check("no route", a, "GET", "localhost", "/v2/nothing", testKey, nil, 404, ReasonNotFound, "")
	check("method", a, "DELETE", "localhost", "/v1/token", testKey, nil, 405, ReasonMethodNotAllowed, "")
	check("bad url", a, "GET", "localhost", "/v1/jssdk/config?url=ftp://x", testKey, nil, 400, ReasonBadRequest, "")
	check("cooldown", a, "GET", "localhost", "/v1/token", testKey,
		fmt.Errorf("%w: %w", wechat.ErrNoToken, &wechat.CooldownError{Until: now.Add(10 * time.Minute), Err: api}),
		503, wechat.ReasonCooldown, "600")
	check("quota", a, "GET", "localhost", "/v1/token", testKey, fmt.Errorf("%w: %w", wechat.ErrNoToken, wechat.ErrQuotaExhausted), 503, wechat.ReasonQuotaExhausted, "")
	check("rate", a, "GET", "localhost", "/v1/token", testKey, fmt.Errorf("%w: %w", wechat.ErrNoToken, wechat.ErrRateLimited), 503, wechat.ReasonRateLimited, "")
	check("upstream", a, "GET", "localhost", "/v1/token", testKey, api, 502, wechat.ReasonUpstream, "")
	check("internal", a, "GET", "localhost", "/v1/token", testKey, errors.New("the disk is on fire"), 502, wechat.ReasonInternal, "")
	notYet := NewAdmin(nil, AdminOptions{Clock: clock})
	check("starting", notYet, "GET", "localhost", "/v1/token", "", nil, 503, wechat.ReasonNoToken, "")
}

func TestAdminNoKeeperYet(t *testing.T) {
	a := NewAdmin(nil, AdminOptions{})
	srv := httptest.NewServer(a)
	defer srv.Close()
	for _, path := range []string{"/healthz", "/v1/token"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.Contains(string(b), "starting") {
			t.Errorf("%s before the keeper: %d %s", path, resp.StatusCode, b)
		}
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "wxcentral_keeper_up 0") {
		t.Errorf("metrics before the keeper lack wxcentral_keeper_up 0")
	}
}

func TestHealthzGoesUnhealthy(t *testing.T) {
	e := newAdminEnv(t)
	if code, _, raw := e.do(t, "GET", "/healthz", "-", "", ""); code != 200 {
		t.Fatalf("healthz %d %s", code, raw)
	}
	// The token expires and WeChat refuses new ones.
	e.fake.Fail(wechattest.PathToken, wechattest.Fault{Errcode: 40164, Times: 100})
	e.fake.Advance(2 * time.Hour)
	_, _, _ = e.do(t, "GET", "/v1/token", testKey, "", "")
	code, m, raw := e.do(t, "GET", "/healthz", "-", "", "")
	if code != 503 || m["state"] != "invalid" || !strings.Contains(raw, "40164") {
		t.Errorf("healthz without a valid token: %d %s", code, raw)
	}
}

func TestMetrics(t *testing.T) {
	e := newAdminEnv(t)
	// A callback check through the middleware, counted by outcome.
	for _, sig := range []string{util.Signature("cb-token", "1", "2"), "bad"} {
		r := httptest.NewRequest("GET", "/?signature="+sig+"&timestamp=1&nonce=2&echostr=e", nil)
		middleware.Verify("cb-token", middleware.WithTimestampWindow(0), middleware.WithResultFunc(e.admin.CallbackResult))(http.NotFoundHandler()).
			ServeHTTP(httptest.NewRecorder(), r)
	}
	e.do(t, "GET", "/v1/token", testKey, "", "")
	e.do(t, "GET", "/v1/token", "-", "", "")

	_, _, text := e.do(t, "GET", "/metrics", "-", "", "")
	for _, want := range []string{
		`wxcentral_token_fetches_total{app_id="wx0123456789abcdef",result="ok"} 1`,
		`wxcentral_token_refreshes_total{app_id="wx0123456789abcdef",kind="startup",outcome="fetched"} 1`,
		`wxcentral_token_fetches_refused_total{app_id="wx0123456789abcdef",reason="quota"} 0`,
		`wxcentral_token_quota_used{app_id="wx0123456789abcdef"} 1`,
		`wxcentral_token_quota_left{app_id="wx0123456789abcdef"} 1999`,
		`wxcentral_token_expiry_seconds{app_id="wx0123456789abcdef"} 7200`,
		`wxcentral_callback_checks_total{app_id="wx0123456789abcdef",outcome="echo"} 1`,
		`wxcentral_callback_checks_total{app_id="wx0123456789abcdef",outcome="bad_signature"} 1`,
		`wxcentral_admin_request_duration_seconds_count{code="200",route="/v1/token"} 1`,
		`wxcentral_admin_request_duration_seconds_count{code="401",route="/v1/token"} 1`,
		`wxcentral_keeper_up 1`,
		`wxcentral_app_info{app_id="wx0123456789abcdef",kind="official_account",name="wx0123456789abcdef"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// They move: a passive refresh fetches.
	old, _ := e.keeper.AccessToken(context.Background())
	e.fake.Advance(time.Minute)
	e.do(t, "POST", "/v1/token/refresh", testKey, "application/json", fmt.Sprintf(`{"stale":%q}`, old))
	_, _, text = e.do(t, "GET", "/metrics", "-", "", "")
	for _, want := range []string{
		`wxcentral_token_fetches_total{app_id="wx0123456789abcdef",result="ok"} 2`,
		`wxcentral_token_refreshes_total{app_id="wx0123456789abcdef",kind="passive",outcome="fetched"} 1`,
		`wxcentral_token_quota_used{app_id="wx0123456789abcdef"} 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics after a refresh lack %s", want)
		}
	}
}

func BenchmarkAdminToken(b *testing.B) {
	e := newAdminEnv(b)
	req := httptest.NewRequest("GET", "/v1/token", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		e.admin.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
