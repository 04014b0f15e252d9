package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

func TestColdStart(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, e *env) []string
	}{
		{"64 AccessToken after expiry", func(t *testing.T, e *env) []string {
			w, err := newKeeper(t, e.opts)
			if err != nil {
				t.Fatal(err)
			}
			e.srv.Advance(3 * time.Hour) // the token is invalid now
			e.srv.ResetStats()
			return concurrently(64, func() (string, error) { return w.AccessToken(t.Context()) })
		}},
		{"64 New on one wechat.txt", func(t *testing.T, e *env) []string {
			return concurrently(64, func() (string, error) {
				o := e.opts
				o.Store = NewFileStore(e.path, nil) // separate instances: the flock decides
				w, err := newKeeper(t, o)
				if err != nil {
					return "", err
				}
				return w.AccessToken(t.Context())
			})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, newFake(t))
			toks := tc.run(t, e)
			if got := e.srv.Stats().Fetches[wechattest.PathToken]; got != 1 {
				t.Errorf("fetches = %d, want 1", got)
			}
			for _, tok := range toks {
				if tok != toks[0] {
					t.Fatalf("callers got different tokens: %q and %q", toks[0], tok)
				}
			}
			if cur, _ := e.srv.Token(testAppID); toks[0] != cur {
				t.Errorf("token = %q, want the platform's current %q", toks[0], cur)
			}
		})
	}
}

// concurrently runs f n times at once and returns the results.
func concurrently(n int, f func() (string, error)) []string {
	out := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			out[i], errs[i] = f()
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			out[i] = "error: " + err.Error()
		}
	}
	return out
}

func TestPassiveRefresh(t *testing.T) {
	e := newEnv(t, newFake(t))
	w, err := newKeeper(t, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t1, _ := w.AccessToken(t.Context())
	e.srv.Advance(time.Minute) // past MinFetchInterval

	// 50 callers report the same rejected token: one fetch.
	toks := concurrently(50, func() (string, error) { return w.Refresh(t.Context(), t1) })
	if got := e.srv.Stats().Fetches[wechattest.PathToken]; got != 2 {
		t.Fatalf("fetches after 50 passive refreshes = %d, want 2", got)
	}
	t2 := toks[0]
	for _, tok := range toks {
		if tok != t2 || tok == t1 {
			t.Fatalf("passive refresh returned %q; want one new token (old %q)", tok, t1)
		}
	}
	e.srv.Advance(time.Minute)

	// An outdated, an unknown or an empty stale token: no fetch, the current token.
	for _, stale := range []string{t1, "never-issued", ""} {
		tok, err := w.Refresh(t.Context(), stale)
		if err != nil || tok != t2 {
			t.Errorf("Refresh(%q) = %q, %v; want %q", stale, tok, err, t2)
		}
	}
	if got := e.srv.Stats().Fetches[wechattest.PathToken]; got != 2 {
		t.Errorf("fetches after outdated refreshes = %d, want still 2", got)
	}
	// A passive refresh right after a fetch is rate limited, and the
	// guard is checked against the store, so another process is bound too.
	if _, err := w.Refresh(t.Context(), t2); err != nil {
		t.Fatal(err)
	}
	t3, _ := w.AccessToken(t.Context())
	o := e.opts
	o.Store = NewFileStore(e.path, nil)
	w2, err := newKeeper(t, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Refresh(t.Context(), t3); !errors.Is(err, ErrRateLimited) {
		t.Errorf("second passive refresh within MinFetchInterval: err = %v, want ErrRateLimited", err)
	}
	if got := e.srv.Stats().Fetches[wechattest.PathToken]; got != 3 {
		t.Errorf("fetches = %d, want 3", got)
	}
}

func TestStaleServedWhileRefreshing(t *testing.T) {
	e := newEnv(t, newFake(t))
	w, err := newKeeper(t, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t1, _ := w.AccessToken(t.Context())
	e.srv.Advance(7200*time.Second - 4*time.Minute) // within RefreshBefore (5 min)
	for range 10 {
		if tok, err := w.AccessToken(t.Context()); err != nil || tok != t1 {
			t.Fatalf("stale AccessToken = %q, %v; want the old token at once", tok, err)
		}
	}
	eventually(t, "the background refresh", func() bool {
		tok, _ := w.AccessToken(t.Context())
		return tok != t1
	})
	if got := e.srv.Stats().Fetches[wechattest.PathToken]; got != 2 {
		t.Errorf("fetches = %d, want 2 (one background refresh)", got)
	}
	if got := w.Stats().Refreshes["stale"]["fetched"]; got != 1 {
		t.Errorf("Stats stale/fetched = %d, want 1", got)
	}
}

func TestInterop(t *testing.T) {
	e := newEnv(t, newFake(t))
	exp := epoch.Add(time.Hour)
	// The file exactly as the original Koa app writes it, plus a key of
	// someone else's.
	orig := fmt.Sprintf(`{"access_token":"FROM-NODE","expires_in":%d,"note":{"keep":"me"}}`, exp.UnixMilli())
	if err := os.WriteFile(e.path, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := newKeeper(t, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.Token(t.Context())
	if err != nil || c.Value != "FROM-NODE" || !c.ExpiresAt.Equal(exp) {
		t.Fatalf("Token = %+v, %v; want FROM-NODE expiring %v", c, err, exp)
	}
	if n := e.rt.count(wechattest.PathToken); n != 0 {
		t.Errorf("%d fetches with a valid token in wechat.txt, want 0", n)
	}

	e.srv.Advance(2 * time.Hour)
	tok, err := w.AccessToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), `{"access_token":"`+tok+`","expires_in":`) {
		t.Errorf("wechat.txt = %s; want it to start with the original's two keys", data)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	wantExp := e.srv.Now().Add(7200 * time.Second).UnixMilli()
	if got := int64(m["expires_in"].(float64)); got != wantExp {
		t.Errorf("expires_in = %d, want epoch milliseconds %d", got, wantExp)
	}
	if gjson.GetBytes(data, "note.keep").String() != "me" {
		t.Errorf("an unknown key was lost: %s", data)
	}
	if fi, _ := os.Stat(e.path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestFileStore(t *testing.T) {
	ctx := context.Background()
	t.Run("corrupt files are empty, logged once, overwritten", func(t *testing.T) {
		for _, content := range []string{"", "  \n", "{garbage", "[1,2]", `"str"`} {
			logs := &syncBuffer{}
			path := filepath.Join(t.TempDir(), "wechat.txt")
			os.WriteFile(path, []byte(content), 0o600)
			s := NewFileStore(path, slogTo(logs))
			for range 3 {
				if c, err := s.Load(ctx, KindAccessToken); err != nil || !c.IsZero() {
					t.Fatalf("%q: Load = %+v, %v; want zero, nil", content, c, err)
				}
			}
			if n := strings.Count(logs.String(), "no valid JSON"); n != 1 {
				t.Errorf("%q: logged %d times, want once:\n%s", content, n, logs)
			}
			c := Credential{Value: "T", FetchedAt: epoch, ExpiresAt: epoch.Add(time.Hour)}
			if err := s.Save(ctx, KindAccessToken, c); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.Load(ctx, KindAccessToken); got.Value != "T" || !got.ExpiresAt.Equal(c.ExpiresAt) {
				t.Errorf("%q: after Save, Load = %+v", content, got)
			}
		}
	})
	t.Run("unwritable path names the path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "no-such-dir", "wechat.txt")
		err := NewFileStore(path, nil).Save(ctx, KindAccessToken, Credential{Value: "T", FetchedAt: epoch})
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Save = %v; want an error naming %s", err, path)
		}
	})
	t.Run("save is fenced by fetched_at", func(t *testing.T) {
		s := NewFileStore(filepath.Join(t.TempDir(), "wechat.txt"), nil)
		newer := Credential{Value: "NEW", FetchedAt: epoch.Add(time.Second), ExpiresAt: epoch.Add(time.Hour)}
		older := Credential{Value: "OLD", FetchedAt: epoch, ExpiresAt: epoch.Add(time.Hour)}
		for _, k := range []Kind{KindAccessToken, KindJSAPITicket, KindCardTicket} {
			if err := s.Save(ctx, k, newer); err != nil {
				t.Fatal(err)
			}
			if err := s.Save(ctx, k, older); !errors.Is(err, ErrSuperseded) {
				t.Errorf("%s: saving an older credential: %v, want ErrSuperseded", k, err)
			}
			if got, _ := s.Load(ctx, k); got.Value != "NEW" {
				t.Errorf("%s: Load = %q, want NEW", k, got.Value)
			}
		}
	})
	t.Run("fetch counters", func(t *testing.T) {
		s := NewFileStore(filepath.Join(t.TempDir(), "wechat.txt"), nil)
		days := []string{"2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"}
		for i, d := range days {
			for j := range i + 1 {
				if n, err := s.AddCount(ctx, Counter{API: APIToken, Day: d}, 1); err != nil || n != j+1 {
					t.Fatalf("AddCount(%s) = %d, %v; want %d", d, n, err, j+1)
				}
			}
		}
		if n, _ := s.Count(ctx, Counter{API: APIToken, Day: "2026-03-04"}); n != 4 {
			t.Errorf("count = %d, want 4", n)
		}
		if n, _ := s.Count(ctx, Counter{API: APITicket, Day: "2026-03-04"}); n != 0 {
			t.Errorf("another api's count = %d, want 0", n)
		}
		if n, _ := s.Count(ctx, Counter{API: APIToken, Day: "2026-03-01"}); n != 0 {
			t.Errorf("the oldest day was kept (count %d); want only %d days", n, keepDays)
		}
	})
}

func slogTo(b *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name      string
		faults    []wechattest.Fault
		opts      func(*Options)
		wantErr   error // errors.Is; nil: New succeeds
		wantCode  int   // an *APIError with this code
		wantCalls int   // requests to /cgi-bin/token
		wantText  string
		// wantTimeout: the error is a net.Error whose Timeout is true
		wantTimeout bool
	}{
		{name: "-1 then success", faults: []wechattest.Fault{{Errcode: -1}}, wantCalls: 2},
		{name: "-1000 twice then success", faults: []wechattest.Fault{{Errcode: -1000, Times: 2}}, wantCalls: 3},
		{name: "repeated 502", faults: []wechattest.Fault{{Status: 502, Times: 10}}, wantCalls: 4, wantText: "HTTP 502"},
		{name: "dropped connections", faults: []wechattest.Fault{{Drop: true, Times: 10}}, wantCalls: 4, wantText: "failed 4 times"},
		{name: "timeouts", faults: []wechattest.Fault{{Delay: time.Second, Times: 10}},
			opts: func(o *Options) { o.HTTPClient.Timeout = 50 * time.Millisecond }, wantCalls: 4, wantText: "failed 4 times", wantTimeout: true},
		{name: "html body", faults: []wechattest.Fault{{Body: "<html><body>502 Bad Gateway</body></html>"}},
			wantCalls: 1, wantText: "not a JSON object"},
		{name: "wrong secret", opts: func(o *Options) { o.AppSecret = "WRONG-secret-also-secret" },
			wantCode: 40125, wantCalls: 1, wantText: "WECHAT_APP_SECRET"},
		{name: "ip not whitelisted", faults: []wechattest.Fault{{Errcode: 40164, Errmsg: "invalid ip 203.0.113.9 ipv6 ::ffff:203.0.113.9, not in whitelist rid: 1"}},
			wantCode: 40164, wantCalls: 1, wantText: "add 203.0.113.9"},
		{name: "45009", faults: []wechattest.Fault{{Errcode: 45009}}, wantErr: ErrQuotaExhausted, wantCode: 45009, wantCalls: 1},
		{name: "budget", opts: func(o *Options) { o.DailyBudget = 1 }, wantCalls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, newFake(t))
			for _, f := range tc.faults {
				e.srv.Fail(wechattest.PathToken, f)
			}
			if tc.opts != nil {
				tc.opts(&e.opts)
			}
			w, err := newKeeper(t, e.opts)
			if got := e.rt.count(wechattest.PathToken); got != tc.wantCalls {
				t.Errorf("calls = %d, want %d", got, tc.wantCalls)
			}
			if tc.wantCode == 0 && tc.wantText == "" && tc.wantErr == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if _, err := w.AccessToken(t.Context()); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("New succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			var apiErr *APIError
			if tc.wantCode != 0 && (!errors.As(err, &apiErr) || apiErr.Code != tc.wantCode) {
				t.Errorf("err = %v, want an *APIError %d", err, tc.wantCode)
			}
			var ne net.Error
			if tc.wantTimeout && (!errors.As(err, &ne) || !ne.Timeout()) {
				t.Errorf("err = %v, want a timeout", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("err = %q, want it to mention %q", err, tc.wantText)
			}
			assertNoSecret(t, err.Error()+e.logs.String(), testSecret, e.opts.AppSecret)
		})
	}
}

func assertNoSecret(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("a secret (%.4s…) leaked into:\n%s", s, text)
		}
	}
}

func TestWrongSecretCooldown(t *testing.T) {
	e := newEnv(t, newFake(t))
	w, err := newKeeper(t, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	// The secret is reset on the platform by someone: our fetches fail.
	e.srv.Fail(wechattest.PathToken, wechattest.Fault{Errcode: 40125, Times: 1000})
	e.srv.Advance(3 * time.Hour)
	for i := range 20 {
		_, err := w.AccessToken(t.Context())
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Code != 40125 || !errors.Is(err, ErrNoToken) {
			t.Fatalf("call %d: err = %v; want ErrNoToken and *APIError 40125", i, err)
		}
		if i > 0 && !errors.Is(err, ErrCooldown) {
			t.Errorf("call %d: err = %v, want ErrCooldown", i, err)
		}
	}
	if got := e.rt.count(wechattest.PathToken); got != 2 {
		t.Errorf("calls = %d, want 2 (start-up and one rejected fetch, then the cooldown)", got)
	}
	e.srv.Advance(61 * time.Second)
	w.AccessToken(t.Context())
	if got := e.rt.count(wechattest.PathToken); got != 3 {
		t.Errorf("calls after the cooldown = %d, want 3", got)
	}
	if st := w.Status(t.Context()); st.Healthy || st.CooldownUntil.IsZero() || !strings.Contains(st.LastError, "40125") {
		t.Errorf("Status = %+v; want unhealthy, in cooldown, with the 40125 error", st)
	}
}

func TestQuotaExhaustedServesValidToken(t *testing.T) {
	e := newEnv(t, newFake(t))
	w, err := newKeeper(t, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t1, _ := w.AccessToken(t.Context())
	e.srv.Fail(wechattest.PathToken, wechattest.Fault{Errcode: 45009})
	e.srv.Advance(time.Minute)
	if _, err := w.Refresh(t.Context(), t1); !errors.Is(err, ErrQuotaExhausted) {
		t.Fatalf("Refresh = %v, want ErrQuotaExhausted", err)
	}
	// Another process sharing the store makes no fetch either.
	o := e.opts
	o.Store = NewFileStore(e.path, nil)
	w2, err := newKeeper(t, o)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		e.srv.Advance(10 * time.Minute) // into the stale window and beyond
		for _, k := range []*Wechat{w, w2} {
			if tok, err := k.AccessToken(t.Context()); err != nil || tok != t1 {
				t.Fatalf("AccessToken = %q, %v; want the still valid %q", tok, err, t1)
			}
			if _, err := k.Refresh(t.Context(), t1); !errors.Is(err, ErrQuotaExhausted) {
				t.Errorf("Refresh = %v, want ErrQuotaExhausted", err)
			}
		}
	}
	time.Sleep(10 * time.Millisecond) // let background refreshes, if any were started, reach the network
	if got := e.rt.count(wechattest.PathToken); got != 2 {
		t.Errorf("calls = %d, want 2 (start-up and the 45009)", got)
	}
	if st := w.Stats(); st.QuotaUsed != st.QuotaBudget || st.Refused["quota"] == 0 {
		t.Errorf("Stats = %+v; want the quota marked used up and refusals counted", st)
	}
	// The next quota day, fetching resumes.
	e.srv.Advance(NextQuotaDay(e.srv.Now()).Sub(e.srv.Now()) + time.Minute)
	if tok, err := w.AccessToken(t.Context()); err != nil || tok == t1 {
		t.Errorf("next day: AccessToken = %q, %v; want a new token", tok, err)
	}
}

func TestRedaction(t *testing.T) {
	t.Run("transport error", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		e := newEnv(t, newFake(t))
		e.opts.APIBase = "http://" + addr
		e.opts.MaxAttempts = 2
		_, err = newKeeper(t, e.opts)
		if err == nil {
			t.Fatal("New succeeded against a closed port")
		}
		if !strings.Contains(err.Error(), "/cgi-bin/token") {
			t.Errorf("err = %q; want it to name the API", err)
		}
		assertNoSecret(t, err.Error()+e.logs.String(), testSecret)
	})
	t.Run("business call with a dead server", func(t *testing.T) {
		e := newEnv(t, newFake(t))
		w, err := newKeeper(t, e.opts)
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := w.AccessToken(t.Context())
		e.srv.Fail(wechattest.PathAPIDomainIP, wechattest.Fault{Drop: true, Times: 5}) // net/http retries a GET once itself
		c := &Client{Source: w, APIBase: e.srv.URL, HTTPClient: e.opts.HTTPClient}
		_, err = c.Get(t.Context(), wechattest.PathAPIDomainIP, nil)
		if err == nil {
			t.Fatal("Get succeeded on a dropped connection")
		}
		assertNoSecret(t, err.Error()+e.logs.String(), tok, testSecret)
	})
	t.Run("credential error", func(t *testing.T) {
		e := newEnv(t, newFake(t))
		e.opts.AppSecret = "another-S3CRET-wrong"
		_, err := newKeeper(t, e.opts)
		if err == nil {
			t.Fatal("New succeeded with a wrong secret")
		}
		assertNoSecret(t, err.Error()+e.logs.String(), e.opts.AppSecret, testSecret)
	})
}

func TestClient(t *testing.T) {
	e := newEnv(t, newFake(t))
	w, err := newKeeper(t, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{Source: w, APIBase: e.srv.URL, HTTPClient: e.opts.HTTPClient}
	res, err := c.Get(t.Context(), wechattest.PathAPIDomainIP, nil)
	if err != nil || !res.Get("ip_list").IsArray() {
		t.Fatalf("Get = %s, %v", res.Raw, err)
	}
	// Another program fetches a token: ours dies after the grace.
	e.srv.IssueToken(testAppID)
	e.srv.Advance(301 * time.Second)
	res, err = c.Get(t.Context(), wechattest.PathCallbackIP, nil)
	if err != nil || !res.Get("ip_list").IsArray() {
		t.Fatalf("Get after the token was killed = %s, %v; want a passive refresh and a retry", res.Raw, err)
	}
	st := e.srv.Stats()
	if st.Rejected[40001] != 1 || e.rt.count(wechattest.PathToken) != 2 {
		t.Errorf("platform stats %+v, %d fetches; want one 40001 and one more fetch", st, e.rt.count(wechattest.PathToken))
	}
	res, err = c.PostJSON(t.Context(), wechattest.PathQuotaGet, map[string]string{"cgi_path": "/cgi-bin/token"})
	if err != nil || !res.Get("quota.daily_limit").Exists() {
		t.Errorf("PostJSON = %s, %v", res.Raw, err)
	}
	_, err = c.PostJSON(t.Context(), wechattest.PathQuotaGet, map[string]string{"cgi_path": "no-slash"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 76003 || apiErr.API != wechattest.PathQuotaGet {
		t.Errorf("err = %v, want *APIError 76003", err)
	}
}

func TestOptions(t *testing.T) {
	_, err := newKeeper(t, Options{APIBase: "ftp://x", TokenAPI: "weird", RefreshBefore: -1, DailyBudget: -5})
	if err == nil {
		t.Fatal("New accepted bad options")
	}
	for _, want := range []string{"AppID", "AppSecret", "APIBase", "TokenAPI", "RefreshBefore", "DailyBudget"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestStableToken(t *testing.T) {
	e := newEnv(t, newFake(t))
	e.opts.TokenAPI = TokenAPIStable
	var body string
	e.rt.base = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == wechattest.PathStableToken {
			if strings.Contains(r.URL.RawQuery, testSecret) {
				t.Errorf("the secret is in the URL: %s", r.URL)
			}
			b, _ := r.GetBody()
			buf := new(strings.Builder)
			fmt.Fprint(buf, readAll(b))
			body = buf.String()
		}
		return e.srv.Client().Transport.RoundTrip(r)
	})
	w, err := newKeeper(t, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	if gjson.Get(body, "force_refresh").Bool() || gjson.Get(body, "secret").String() != testSecret {
		t.Errorf("stable_token body = %s", body)
	}
	t1, _ := w.AccessToken(t.Context())
	if cur, _ := e.srv.StableToken(testAppID); cur != t1 {
		t.Fatalf("token %q, want the platform's stable token %q", t1, cur)
	}
	// Force: immediately after a fetch it is refused (30 s spacing).
	if _, err := w.ForceRefresh(t.Context()); !errors.Is(err, ErrRateLimited) {
		t.Errorf("ForceRefresh right after a fetch: %v, want ErrRateLimited", err)
	}
	e.srv.Advance(31 * time.Second)
	c, err := w.ForceRefresh(t.Context())
	if err != nil || c.Value == t1 || !gjson.Get(body, "force_refresh").Bool() {
		t.Fatalf("ForceRefresh = %+v, %v (body %s); want a new token", c, err, body)
	}
	if n, _ := e.store.Count(t.Context(), DayCounter(APIStableForce, e.srv.Now())); n != 1 {
		t.Errorf("force count in the store = %d, want 1", n)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func readAll(r io.Reader) string {
	b, _ := io.ReadAll(r)
	return string(b)
}

// Close cancels a refresh in flight and returns only when nothing more can
// be written to the store; afterwards nothing refreshes, a held token is
// still served, and Run returns at once.
func TestClose(t *testing.T) {
	e := newEnv(t, newFake(t))
	w, err := newKeeper(t, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t1, _ := w.AccessToken(t.Context())
	before, err := e.store.Load(t.Context(), KindAccessToken)
	if err != nil {
		t.Fatal(err)
	}
	// The next fetch hangs in WeChat until its request is cancelled.
	e.srv.Fail(wechattest.PathToken, wechattest.Fault{Delay: time.Hour})
	e.srv.Advance(7200*time.Second - 4*time.Minute) // stale: a background refresh starts
	if tok, err := w.AccessToken(t.Context()); err != nil || tok != t1 {
		t.Fatalf("stale AccessToken = %q, %v; want the held token", tok, err)
	}
	eventually(t, "the background fetch to reach WeChat", func() bool { return e.rt.count(wechattest.PathToken) == 2 })

	w.Close() // must not wait out the hour
	w.Close()

	// (The fetch was counted against the quota before it was sent, as
	// every fetch is: a lost reply still costs one.)
	after, err := e.store.Load(t.Context(), KindAccessToken)
	if err != nil || after != before {
		t.Errorf("stored token changed by a refresh cancelled by Close: %v", err)
	}
	if tok, err := w.AccessToken(t.Context()); err != nil || tok != t1 {
		t.Errorf("AccessToken after Close = %q, %v; want the held token while it is valid", tok, err)
	}
	if _, err := w.Refresh(t.Context(), t1); !errors.Is(err, ErrClosed) {
		t.Errorf("Refresh after Close: err = %v, want ErrClosed", err)
	}
	if err := w.Run(t.Context()); !errors.Is(err, context.Canceled) {
		t.Errorf("Run after Close = %v, want context.Canceled at once", err)
	}
	if n := e.rt.count(wechattest.PathToken); n != 2 {
		t.Errorf("token fetches = %d, want 2: nothing may fetch after Close", n)
	}
}

// Another program with the same AppSecret keeps fetching, and so kills our
// token every few seconds. Each business call that WeChat then rejects makes
// a passive refresh, but the per-hour cap stops the fight from burning the
// daily quota: no more than MaxFetchesPerHour of our fetches in a clock hour
// (Beijing time), then ErrRateLimited but for one fetch per 5 min (the held
// token is dead, so one is let past the cap), and fetching resumes the
// next hour.
func TestFightWithOutsideProgramIsCapped(t *testing.T) {
	e := newEnv(t, newFake(t, wechattest.WithGrace(time.Second)))
	const perHour = 30 // the default
	w, err := newKeeper(t, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{Source: w, APIBase: e.srv.URL, HTTPClient: e.opts.HTTPClient}
	var served, refused int
	for range 60 { // 60 rounds of 11 s: all within the hour 18:00-19:00 Beijing time
		e.srv.IssueToken(testAppID)     // the outside program fetches…
		e.srv.Advance(11 * time.Second) // …and our token dies after the 1 s grace
		_, err := c.Get(t.Context(), wechattest.PathAPIDomainIP, nil)
		switch {
		case err == nil:
			served++
		case errors.Is(err, ErrRateLimited):
			refused++
		default:
			t.Fatalf("business call: %v", err)
		}
	}
	// The cap is reached after 5.5 min; in the 5.5 min left, two passes.
	const passes = 2
	if got := e.rt.count(wechattest.PathToken); got != perHour+passes {
		t.Errorf("our token fetches in the hour = %d, want the cap %d and %d passes", got, perHour, passes)
	}
	if served != perHour-1+passes || refused != 60-served {
		t.Errorf("business calls served after a refresh = %d, refused = %d; want %d and %d", served, refused, perHour-1+passes, 60-(perHour-1+passes))
	}
	if n := w.Stats().Refused["rate"]; n == 0 {
		t.Error("Stats does not count the refused fetches")
	}

	e.srv.Advance(time.Hour) // the next clock hour
	if _, err := c.Get(t.Context(), wechattest.PathAPIDomainIP, nil); err != nil {
		t.Errorf("business call in the next hour: %v, want a passive refresh to fetch again", err)
	}
	if got := e.rt.count(wechattest.PathToken); got != perHour+passes+1 {
		t.Errorf("token fetches after the hour = %d, want %d", got, perHour+passes+1)
	}
}

// overtaken is a Store on which another process always saves a newer
// credential of kind just before this one saves its own.
type overtaken struct {
	*FileStore
	kind Kind
}

func (s overtaken) Save(ctx context.Context, kind Kind, c Credential) error {
	if kind == s.kind {
		newer := Credential{Value: "NEWER-" + string(kind), FetchedAt: c.FetchedAt.Add(time.Millisecond), ExpiresAt: c.ExpiresAt}
		if err := s.FileStore.Save(ctx, kind, newer); err != nil {
			return err
		}
	}
	return s.FileStore.Save(ctx, kind, c)
}

// A fetched token or ticket whose save is superseded by a newer valid one
// gives way to it: that one is served.
func TestSupersededFetchAdoptsNewer(t *testing.T) {
	t.Run("token", func(t *testing.T) {
		e := newEnv(t, newFake(t))
		e.opts.Store = overtaken{e.store, KindAccessToken}
		w := openKeeper(t, e)
		if tok, err := w.AccessToken(t.Context()); err != nil || tok != "NEWER-"+string(KindAccessToken) {
			t.Errorf("AccessToken = %q, %v; want the newer token saved meanwhile", tok, err)
		}
		if n := countLines(e.logs.String(), "a newer token was saved meanwhile"); n != 1 {
			t.Errorf("the adoption was logged %d times, want once", n)
		}
	})
	t.Run("ticket", func(t *testing.T) {
		e := newEnv(t, newFake(t))
		e.opts.Store = overtaken{e.store, KindJSAPITicket}
		w := openKeeper(t, e)
		if c, err := w.JSAPITicket(t.Context()); err != nil || c.Value != "NEWER-"+string(KindJSAPITicket) {
			t.Errorf("JSAPITicket = %q, %v; want the newer ticket saved meanwhile", c.Value, err)
		}
	})
}
