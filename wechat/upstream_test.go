package wechat

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// redirector is a fake upstream that redirects the paths of redirect to a
// second listener, which counts what reaches it (it must be nothing), and
// answers a token itself on /cgi-bin/token otherwise.
type redirector struct {
	first, second *httptest.Server
	reached       atomic.Int64
}

func newRedirector(t *testing.T, status int, redirect ...string) *redirector {
	t.Helper()
	r := &redirector{}
	r.second = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.reached.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"EVIL-token","ticket":"EVIL-ticket","expires_in":7200,"errcode":0}`)
	}))
	t.Cleanup(r.second.Close)
	r.first = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		for _, p := range redirect {
			if req.URL.Path == p {
				http.Redirect(w, req, r.second.URL+req.URL.RequestURI(), status)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"GOOD-token","expires_in":7200}`)
	}))
	t.Cleanup(r.first.Close)
	return r
}

func (r *redirector) secondHost() string {
	u, _ := url.Parse(r.second.URL)
	return u.Host
}

// checkRedirect asserts that err is a refused redirect naming status and
// the second listener, without a secret, and that nothing reached it.
func (r *redirector) check(t *testing.T, err error, api string, status int, secrets ...string) {
	t.Helper()
	var re *RedirectError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a *RedirectError", err)
	}
	if re.Status != status || re.Host != r.secondHost() || re.API != api {
		t.Errorf("RedirectError = %+v, want status %d, host %s, API %s", re, status, r.secondHost(), api)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(status)) || !strings.Contains(err.Error(), r.secondHost()) {
		t.Errorf("err = %q, want it to name HTTP %d and host %s", err, status, r.secondHost())
	}
	if strings.Contains(err.Error(), "?") && strings.Contains(err.Error(), "secret=") {
		t.Errorf("err = %q carries a query", err)
	}
	assertNoSecret(t, err.Error(), append(secrets, testSecret)...)
	if n := r.reached.Load(); n != 0 {
		t.Errorf("the redirect target received %d requests, want none", n)
	}
}

func TestRedirectsRefused(t *testing.T) {
	for _, tc := range []struct {
		api    TokenAPI
		path   string
		status int
	}{
		{TokenAPIClassic, "/cgi-bin/token", http.StatusFound},
		{TokenAPIClassic, "/cgi-bin/token", http.StatusTemporaryRedirect},
		{TokenAPIClassic, "/cgi-bin/token", http.StatusPermanentRedirect},
		{TokenAPIStable, "/cgi-bin/stable_token", http.StatusFound},
		{TokenAPIStable, "/cgi-bin/stable_token", http.StatusTemporaryRedirect},
		{TokenAPIStable, "/cgi-bin/stable_token", http.StatusPermanentRedirect},
	} {
		for _, own := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/%d/own client %v", tc.api, tc.status, own), func(t *testing.T) {
				r := newRedirector(t, tc.status, tc.path)
				e := newEnv(t, newFake(t))
				e.opts.APIBase, e.opts.TokenAPI = r.first.URL, tc.api
				var hc *http.Client
				if own {
					hc = &http.Client{Timeout: 2 * time.Second}
					e.opts.HTTPClient = hc
				} else {
					e.opts.HTTPClient = nil
				}
				w := openKeeper(t, e)
				tok, err := w.AccessToken(t.Context())
				if tok != "" {
					t.Errorf("served %q after a redirect", tok)
				}
				r.check(t, err, tc.path, tc.status)
				assertNoSecret(t, e.logs.String(), testSecret)
				if c, _ := e.store.Load(t.Context(), KindAccessToken); !c.IsZero() {
					t.Errorf("stored %+v after a redirect", c)
				}
				if own && hc.CheckRedirect != nil {
					t.Error("the caller's HTTPClient was changed")
				}
			})
		}
	}
}

func TestRedirectsRefusedByEveryUpstreamClient(t *testing.T) {
	t.Run("getticket", func(t *testing.T) {
		r := newRedirector(t, http.StatusFound, wechattest.PathTicket)
		e := newEnv(t, newFake(t))
		e.opts.APIBase, e.opts.HTTPClient = r.first.URL, nil
		w := openKeeper(t, e)
		tok, err := w.AccessToken(t.Context())
		if err != nil || tok != "GOOD-token" {
			t.Fatalf("AccessToken = %q, %v", tok, err)
		}
		c, err := w.JSAPITicket(t.Context())
		if !c.IsZero() {
			t.Errorf("served ticket %+v after a redirect", c)
		}
		r.check(t, err, wechattest.PathTicket, http.StatusFound, tok)
	})
	t.Run("Client", func(t *testing.T) {
		r := newRedirector(t, http.StatusTemporaryRedirect, wechattest.PathAPIDomainIP)
		e := newEnv(t, newFake(t))
		e.opts.APIBase, e.opts.HTTPClient = r.first.URL, nil
		w := openKeeper(t, e)
		for _, hc := range []*http.Client{nil, {Timeout: time.Second}} {
			c := &Client{Source: w, HTTPClient: hc}
			_, err := c.PostJSON(t.Context(), wechattest.PathAPIDomainIP, map[string]string{"a": "b"})
			r.check(t, err, wechattest.PathAPIDomainIP, http.StatusTemporaryRedirect, "GOOD-token")
			if hc != nil && hc.CheckRedirect != nil {
				t.Error("the caller's HTTPClient was changed")
			}
		}
	})
	t.Run("Remote", func(t *testing.T) {
		r := newRedirector(t, http.StatusPermanentRedirect, "/v1/token")
		own := &http.Client{Timeout: time.Second}
		for _, opts := range []RemoteOptions{{}, {HTTPClient: own}} {
			rem, err := NewRemote(r.first.URL, "admin-key-secret", opts)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := rem.AccessToken(t.Context())
			if tok != "" {
				t.Errorf("served %q after a redirect", tok)
			}
			r.check(t, err, "/v1/token", http.StatusPermanentRedirect, "admin-key-secret")
		}
		if own.CheckRedirect != nil {
			t.Error("the caller's HTTPClient was changed")
		}
	})
}

// An upstream body is never echoed into an error or a log line, whatever
// is wrong with it: it may hold a token.
func TestUpstreamBodyNeverEchoed(t *testing.T) {
	const tokenish = "PARTOFATOKEN0123456789abcdefghij"
	for _, tc := range []struct {
		name, body, want string
		contentType      bool // the error names the Content-Type
	}{
		{"html", "<html><body>" + tokenish + "</body></html>", "not JSON at all (58 bytes)", true},
		{"not an object", `["` + tokenish + `"]`, "JSON of another type", true},
		{"truncated", `{"access_token":"` + tokenish, "not JSON at all", true},
		{"too long a token", `{"access_token":"` + tokenish + strings.Repeat("x", 2048) + `","expires_in":7200}`, "2080 characters long, more than 2048", false},
		{"no token", `{"acess_token":"` + tokenish + `","expires_in":7200}`, "lacks access_token", false},
		{"no expiry", `{"access_token":"` + tokenish + `"}`, "positive expires_in", false},
		{"larger than 1 MiB", `{"access_token":"` + tokenish + strings.Repeat(" ", maxBody) + `"}`, "larger than", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, newFake(t))
			e.srv.Fail(wechattest.PathToken, wechattest.Fault{Body: tc.body})
			w := openKeeper(t, e)
			_, err := w.AccessToken(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if tc.contentType && !strings.Contains(err.Error(), "Content-Type") {
				t.Errorf("err = %q, want the Content-Type", err)
			}
			st := w.Status(t.Context())
			assertNoSecret(t, err.Error()+st.LastError+e.logs.String(), tokenish[:12], testSecret)
			if got := e.rt.count(wechattest.PathToken); got != 1 {
				t.Errorf("calls = %d, want 1 (a malformed answer is not retried)", got)
			}
		})
	}
}

func TestExpiresInClamped(t *testing.T) {
	e := newEnv(t, newFake(t))
	e.srv.Fail(wechattest.PathToken, wechattest.Fault{Body: `{"access_token":"tok-long-life","expires_in":99999999}`})
	w := openKeeper(t, e)
	c, err := w.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := e.srv.Now().Add(7200 * time.Second); !c.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %v, want %v (clamped to 7200 s)", c.ExpiresAt, want)
	}
	if countLines(e.logs.String(), "clamped", "expires_in=99999999") != 1 {
		t.Errorf("the clamp was not logged once:\n%s", e.logs)
	}
}

// A very short lifetime (10 s, as a broken upstream gave) is logged, and
// the fetches it causes are bounded: by the minimum interval (a quarter of
// the life for a life under 4·MinFetchInterval, so one fetch per half-life
// as the token turns stale), by MaxFetchesPerHour issued tokens, and past
// that cap by one fetch per 5 min while no valid token is held.
func TestShortLifeBounded(t *testing.T) {
	e := newEnv(t, newFake(t, wechattest.WithTokenLifetime(10*time.Second)))
	w := openKeeper(t, e)
	var at []time.Duration // since the start, of each fetch
	last := 0
	for i := range 3600 { // one hour, 18:00 to 19:00 Beijing time, 1 s steps
		w.AccessToken(t.Context())
		settle(t, w)
		n := e.rt.count(wechattest.PathToken)
		for range n - last {
			at = append(at, time.Duration(i)*time.Second)
		}
		last = n
		e.srv.Advance(time.Second)
	}
	t.Logf("%d fetches in the hour, the 30th after %v", last, at[min(29, len(at)-1)])
	if max := 30 + 60/5 + 1; last > max || last <= 30 {
		t.Errorf("fetches in the hour = %d, want the cap 30 and some (at most %d in all) past it", last, max)
	}
	// Past the cap, one fetch per 5 min (overCapInterval) at most.
	for i := 31; i < len(at); i++ {
		if gap := at[i] - at[i-1]; gap < overCapInterval {
			t.Errorf("fetches %d and %d past the cap came %v apart, want at least %v", i, i+1, gap, overCapInterval)
			break
		}
	}
	if countLines(e.logs.String(), "suspiciously short") > 60 {
		t.Errorf("the short life was logged %d times; want it rate-limited", countLines(e.logs.String(), "suspiciously short"))
	}
	if countLines(e.logs.String(), "suspiciously short") == 0 {
		t.Error("the short life was not logged")
	}
}

// The same rules hold for getticket: an oversized ticket is malformed, and
// no part of the body reaches the error.
func TestTicketBodyChecked(t *testing.T) {
	const ticketish = "PARTOFATICKET0123456789abcdefghij"
	for _, tc := range []struct{ name, body, want string }{
		{"too long", `{"errcode":0,"errmsg":"ok","ticket":"` + ticketish + strings.Repeat("x", 2048) + `","expires_in":7200}`, "more than 2048"},
		{"not JSON", `<html>` + ticketish, "not JSON at all"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, newFake(t))
			w := openKeeper(t, e)
			e.srv.Fail(wechattest.PathTicket, wechattest.Fault{Body: tc.body})
			c, err := w.JSAPITicket(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("JSAPITicket = a %d-character ticket, %v; want an error saying %q", len(c.Value), err, tc.want)
			}
			assertNoSecret(t, err.Error()+e.logs.String(), ticketish[:12])
		})
	}
}

// A redirect whose Location Go cannot parse (a bad port) is refused like
// any other, once: http.Client's own error would quote the whole Location,
// secret or token included, and was retried as a network error.
func TestUnparseableRedirect(t *testing.T) {
	const badLocation = "http://proxy:80x/cgi-bin/token?grant_type=client_credential&appid=a&secret=" + testSecret +
		"&access_token=TOKEN-IN-LOCATION-0123456789"
	// first answers a token on /cgi-bin/token unless that path is in bad,
	// and a bad redirect on the paths of bad.
	newUpstream := func(t *testing.T, bad ...string) (*httptest.Server, *countingTransport) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			for _, p := range bad {
				if req.URL.Path == p {
					w.Header().Set("Location", badLocation)
					w.WriteHeader(http.StatusFound)
					return
				}
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"access_token":"GOOD-token-0123456789","expires_in":7200}`)
		}))
		t.Cleanup(srv.Close)
		return srv, &countingTransport{base: srv.Client().Transport}
	}
	check := func(t *testing.T, err error, rt *countingTransport, api, text string) {
		t.Helper()
		var re *RedirectError
		if !errors.As(err, &re) || re.Status != http.StatusFound || re.API != api || re.Host != "unparseable" {
			t.Errorf("err = %v, want a *RedirectError for %s, HTTP 302, host %q", err, api, "unparseable")
		}
		assertNoSecret(t, text, testSecret, "TOKEN-IN-LOCATION", "GOOD-token")
		if n := rt.count(api); n != 1 {
			t.Errorf("%s was called %d times, want once (a redirect is not retried)", api, n)
		}
	}
	for _, api := range []TokenAPI{TokenAPIClassic, TokenAPIStable} {
		t.Run(string(api), func(t *testing.T) {
			path := map[TokenAPI]string{TokenAPIClassic: wechattest.PathToken, TokenAPIStable: wechattest.PathStableToken}[api]
			srv, rt := newUpstream(t, path)
			e := newEnv(t, newFake(t))
			e.opts.APIBase, e.opts.TokenAPI = srv.URL, api
			e.opts.HTTPClient = &http.Client{Transport: rt, Timeout: 2 * time.Second}
			w := openKeeper(t, e)
			_, err := w.AccessToken(t.Context())
			check(t, err, rt, path, fmt.Sprint(err)+w.Status(t.Context()).LastError+e.logs.String())
		})
	}
	t.Run("getticket", func(t *testing.T) {
		srv, rt := newUpstream(t, wechattest.PathTicket)
		e := newEnv(t, newFake(t))
		e.opts.APIBase = srv.URL
		e.opts.HTTPClient = &http.Client{Transport: rt, Timeout: 2 * time.Second}
		w := openKeeper(t, e)
		_, err := w.JSAPITicket(t.Context())
		check(t, err, rt, wechattest.PathTicket, fmt.Sprint(err)+w.Status(t.Context()).LastError+e.logs.String())
	})
	t.Run("Client", func(t *testing.T) {
		srv, rt := newUpstream(t, wechattest.PathAPIDomainIP)
		e := newEnv(t, newFake(t))
		e.opts.APIBase = srv.URL
		e.opts.HTTPClient = &http.Client{Transport: rt, Timeout: 2 * time.Second}
		w := openKeeper(t, e)
		c := &Client{Source: w, HTTPClient: e.opts.HTTPClient}
		_, err := c.Get(t.Context(), wechattest.PathAPIDomainIP, nil)
		check(t, err, rt, wechattest.PathAPIDomainIP, fmt.Sprint(err)+e.logs.String())
	})
}

func TestCleanErrmsg(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	for _, tc := range []struct{ in, want string }{
		{"invalid ip 203.0.113.9, not in whitelist rid: 1", "invalid ip 203.0.113.9, not in whitelist rid: 1"},
		{"a\nb\r\x00c\x1b[31m\u0085d", "a b  c [31m d"},
		{"bad \xff\xfe utf-8", "bad   utf-8"},
		{"", ""},
		{strings.Repeat("x", 256), strings.Repeat("x", 256)},
		{strings.Repeat("x", 257), strings.Repeat("x", 253) + "…"},
		{long, strings.Repeat("é", 126) + "…"}, // 252 + 3 bytes: no half rune
	} {
		got := cleanErrmsg(tc.in)
		if got != tc.want {
			t.Errorf("cleanErrmsg(%.40q) = %.60q, want %.60q", tc.in, got, tc.want)
		}
		if len(got) > maxErrmsg || !utf8.ValidString(got) {
			t.Errorf("cleanErrmsg(%.40q) is %d bytes, valid UTF-8 %v", tc.in, len(got), utf8.ValidString(got))
		}
	}
}

// An errmsg of almost 1 MiB (with a 40164, which starts the cooldown kept
// in the Store) is cut before it reaches the error, the log, Status and
// the Store: a state file over 1 MiB reads as corrupt.
func TestLongErrmsgBounded(t *testing.T) {
	e := newEnv(t, newFake(t))
	huge := "invalid ip 203.0.113.9, not in whitelist " + strings.Repeat("x", maxBody-200)
	e.srv.Fail(wechattest.PathToken, wechattest.Fault{Errcode: 40164, Errmsg: huge})
	w := openKeeper(t, e)
	_, err := w.AccessToken(t.Context())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 40164 {
		t.Fatalf("err = %.300v, want a 40164 *APIError", err)
	}
	if len(apiErr.Msg) > maxErrmsg || !strings.HasPrefix(apiErr.Msg, "invalid ip 203.0.113.9") {
		t.Errorf("APIError.Msg is %d bytes (%.60q…), want at most %d, its start kept", len(apiErr.Msg), apiErr.Msg, maxErrmsg)
	}
	const bound = 4 << 10 // an error or line with its context, but no errmsg of any size
	if n := len(err.Error()); n > bound {
		t.Errorf("the error is %d bytes", n)
	}
	if n := len(w.Status(t.Context()).LastError); n > bound {
		t.Errorf("Status.LastError is %d bytes", n)
	}
	for line := range strings.Lines(e.logs.String()) {
		if len(line) > bound {
			t.Errorf("a log line of %d bytes: %.100s…", len(line), line)
		}
	}
	c, err := e.store.Load(t.Context(), KindCooldown)
	if err != nil || c.IsZero() {
		t.Fatalf("the stored cooldown = %+v, %v; want one", c, err)
	}
	if n := len(c.Value); n > bound {
		t.Errorf("the stored cooldown record is %d bytes", n)
	}
	// Another keeper on the store honours the cooldown (the state file
	// reads fine).
	w2 := openKeeper(t, e)
	if _, err := w2.AccessToken(t.Context()); !errors.Is(err, ErrCooldown) {
		t.Errorf("a second keeper: err = %.300v, want ErrCooldown", err)
	}
}

// backoff does what its doc and Options.RetryBackoff say: between half and
// all of base·2^i (at most 16·base).
func TestBackoffRange(t *testing.T) {
	const base = 200 * time.Millisecond
	for i := range 8 {
		d := base << min(i, 4)
		for range 1000 {
			if got := backoff(base, i); got < d/2 || got > d {
				t.Fatalf("backoff(%v, %d) = %v, want within [%v, %v]", base, i, got, d/2, d)
			}
		}
	}
}

// Keepers built without Options.HTTPClient share one transport, so that a
// server of many apps holds one pool of connections to WeChat, not one
// per app; one given a client keeps its own.
func TestDefaultClientShared(t *testing.T) {
	srv := newFake(t)
	base := func(w *Wechat) http.RoundTripper {
		return w.opts.HTTPClient.Transport.(*redirectRefuser).base
	}
	var keepers []*Wechat
	for range 3 {
		e := newEnv(t, srv)
		e.opts.HTTPClient = nil
		keepers = append(keepers, openKeeper(t, e))
	}
	if base(keepers[0]) != base(keepers[1]) || base(keepers[1]) != base(keepers[2]) {
		t.Error("keepers without an HTTPClient have transports of their own")
	}
	e := newEnv(t, srv)
	own := openKeeper(t, e)
	if base(own) == base(keepers[0]) {
		t.Error("a keeper given an HTTPClient uses the shared transport")
	}
	for _, w := range keepers {
		if _, err := w.AccessToken(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}
