package wechattest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// ctl makes a control-plane request and decodes its JSON answer; it fails
// the test unless the status is want.
func ctl(t *testing.T, srv *Server, method, path, body string, want int, header ...string) obj {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != contentType {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	var m obj
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: %v in %s", method, path, err, b)
	}
	if want >= 400 && m["error"] == "" {
		t.Errorf("%s %s: error without a message: %s", method, path, b)
	}
	return m
}

// num digs a number out of nested JSON objects.
func num(m obj, keys ...string) float64 {
	var v any = m
	for _, k := range keys {
		o, _ := v.(obj)
		v = o[k]
	}
	f, _ := v.(float64)
	return f
}

func TestControlStats(t *testing.T) {
	srv := newTestServer(t, WithAppKind(miniApp, miniSecret, KindMiniProgram))
	tok := getToken(t, srv).AccessToken
	getTicket(t, srv, tok, "jsapi")
	getTicket(t, srv, tok, "jsapi")
	business(t, srv, tok)
	business(t, srv, "bogus")
	srv.Fail(PathToken, Fault{Errcode: -1})
	call(t, srv, "GET", PathToken, nil, "")
	api(t, srv, "GET", "/nope", nil, "")

	st := ctl(t, srv, "GET", "/_fake/stats", "", 200)
	for _, c := range []struct {
		keys []string
		want float64
	}{
		{[]string{"fetches", PathToken}, 1},
		{[]string{"fetches", PathTicket}, 2},
		{[]string{"issued", PathTicket}, 1},
		{[]string{"attempts", PathToken}, 2}, // the faulted call counts
		{[]string{"attempts", PathTicket}, 2},
		{[]string{"attempts", "/nope"}, 1},
		{[]string{"accepted"}, 3},
		{[]string{"rejected", "40014"}, 1},
		{[]string{"errors", PathToken, "-1"}, 1},
		{[]string{"apps", testApp, "fetches", PathToken}, 1},
		{[]string{"apps", testApp, "accepted"}, 3},
		{[]string{"apps", testApp, "used", PathToken}, 1},
		{[]string{"apps", testApp, "token_expires_in"}, 7200},
		{[]string{"unix"}, float64(t0.Unix())},
	} {
		if got := num(st, c.keys...); got != c.want {
			t.Errorf("stats %v = %v, want %v", c.keys, got, c.want)
		}
	}
	if a := st["apps"].(obj)[miniApp].(obj); a["kind"] != string(KindMiniProgram) || a["token_valid"] != false {
		t.Errorf("stats apps[%s] = %v", miniApp, a)
	}
	if a := st["apps"].(obj)[testApp].(obj); a["kind"] != string(KindOfficialAccount) || a["token_valid"] != true {
		t.Errorf("stats apps[%s] = %v", testApp, a)
	}
	if st["frozen"] != true {
		t.Errorf("frozen = %v", st["frozen"])
	}
	// The Go API reads the same counters.
	if g := srv.Stats(); g.Attempts[PathToken] != 2 || g.Apps[testApp].Accepted != 3 {
		t.Errorf("Stats() = %+v", g)
	}
	srv.ResetStats()
	if st := ctl(t, srv, "GET", "/_fake/stats", "", 200); num(st, "accepted") != 0 || num(st, "apps", testApp, "accepted") != 0 {
		t.Errorf("after ResetStats: %v", st)
	}
}

func TestControlClock(t *testing.T) {
	srv := newTestServer(t, WithTokenLifetime(5*time.Second), WithGrace(2*time.Second))
	tok := getToken(t, srv).AccessToken
	c := ctl(t, srv, "POST", "/_fake/advance", `{"seconds":4.5}`, 200)
	if c["unix"] != float64(t0.Unix()+4) || !srv.Now().Equal(t0.Add(4500*time.Millisecond)) {
		t.Errorf("advance: %v, Now %v", c, srv.Now())
	}
	if code := business(t, srv, tok); code != 0 {
		t.Errorf("before expiry: %d", code)
	}
	ctl(t, srv, "POST", "/_fake/advance", `{"seconds":0.5}`, 200)
	if code := business(t, srv, tok); code != 42001 {
		t.Errorf("after expiry: %d, want 42001", code)
	}
	at := time.Date(2026, 12, 24, 8, 0, 0, 0, shanghai)
	ctl(t, srv, "POST", "/_fake/clock", `{"time":"2026-12-24T08:00:00+08:00"}`, 200)
	if !srv.Now().Equal(at) {
		t.Errorf("clock: Now %v, want %v", srv.Now(), at)
	}
	if g := ctl(t, srv, "GET", "/_fake/clock", "", 200); g["unix"] != float64(at.Unix()) || g["frozen"] != true {
		t.Errorf("GET clock: %v", g)
	}
	srv.Advance(time.Minute) // the Go API moves the same clock
	if g := ctl(t, srv, "GET", "/_fake/clock", "", 200); g["unix"] != float64(at.Add(time.Minute).Unix()) {
		t.Errorf("GET clock after Advance: %v", g)
	}
	srv.SetClock(t0)
	if g := ctl(t, srv, "GET", "/_fake/clock", "", 200); g["unix"] != float64(t0.Unix()) {
		t.Errorf("GET clock after SetClock: %v", g)
	}
	for _, body := range []string{"", "{", `{"seconds":"1"}`, `{}`, `{"secs":1}`, `{"seconds":1e12}`} {
		ctl(t, srv, "POST", "/_fake/advance", body, 400)
	}
	for _, body := range []string{`{"time":"tomorrow"}`, `{"time":""}`, `{"at":"2026-12-24T08:00:00Z"}`} {
		ctl(t, srv, "POST", "/_fake/clock", body, 400)
	}
}

func TestControlClockRealTime(t *testing.T) {
	srv := NewServer(WithApp(testApp, testSecret))
	defer srv.Close()
	want := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := ctl(t, srv, "POST", "/_fake/clock", `{"time":"2030-01-01T00:00:00Z"}`, 200)
	if c["frozen"] != false || srv.Now().Before(want) || srv.Now().After(want.Add(time.Hour)) {
		t.Errorf("a running clock set to %v: %v, Now %v", want, c, srv.Now())
	}
}

func TestControlFail(t *testing.T) {
	srv := newTestServer(t)
	ctl(t, srv, "POST", "/_fake/fail", `{"path":"/cgi-bin/token","errcode":-1,"status":0,"delay_ms":0,"drop":false,"times":2}`, 200)
	for i := range 2 {
		if r := getToken(t, srv); r.Errcode != -1 {
			t.Errorf("call %d: errcode %d, want -1", i, r.Errcode)
		}
	}
	if r := getToken(t, srv); r.Errcode != 0 {
		t.Errorf("after the fault: %d", r.Errcode)
	}
	// An HTTP status, as a gateway in front of WeChat answers.
	ctl(t, srv, "POST", "/_fake/fail", `{"path":"/cgi-bin/token","status":502}`, 200)
	resp, err := srv.Client().Get(srv.URL + PathToken)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Errorf("status fault: HTTP %d", resp.StatusCode)
	}
	// A dropped connection.
	ctl(t, srv, "POST", "/_fake/fail", `{"path":"/cgi-bin/token","drop":true}`, 200)
	// A fresh connection: the transport re-sends a request whose reused
	// connection was closed.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if _, err := fresh.Get(srv.URL + PathToken); err == nil {
		t.Error("drop fault: the call got an answer")
	}
	// DELETE clears what HTTP and the Go API queued: one implementation.
	ctl(t, srv, "POST", "/_fake/fail", `{"path":"/cgi-bin/token","errcode":45009,"times":3}`, 200)
	srv.Fail(PathTicket, Fault{Errcode: -1})
	if c := ctl(t, srv, "DELETE", "/_fake/fail?path=/cgi-bin/token", "", 200); c["cleared"] != 3.0 {
		t.Errorf("DELETE ?path: %v", c)
	}
	if c := ctl(t, srv, "DELETE", "/_fake/fail", "", 200); c["cleared"] != 1.0 {
		t.Errorf("DELETE: %v", c)
	}
	if r := getToken(t, srv); r.Errcode != 0 {
		t.Errorf("after DELETE: %d", r.Errcode)
	}
	for _, body := range []string{
		`{"errcode":-1}`, `{"path":"cgi-bin/token","errcode":-1}`, `{"path":"/_fake/stats","errcode":-1}`,
		`{"path":"/cgi-bin/token"}`, `{"path":"/cgi-bin/token","status":999}`, `{"path":"/cgi-bin/token","delay_ms":-1}`,
		`{"path":"/cgi-bin/token","errcode":-1,"times":-1}`, `{"path":"/cgi-bin/token","errcod":-1}`,
	} {
		ctl(t, srv, "POST", "/_fake/fail", body, 400)
	}
}

func TestControlInvalidate(t *testing.T) {
	srv := newTestServer(t)
	tok := getToken(t, srv).AccessToken
	st := call(t, srv, "POST", PathStableToken, nil, `{"grant_type":"client_credential","appid":"`+testApp+`","secret":"`+testSecret+`"}`)
	ctl(t, srv, "POST", "/_fake/invalidate", `{"appid":"`+testApp+`"}`, 200)
	if code := business(t, srv, tok); code != 40001 {
		t.Errorf("/cgi-bin/token token after invalidate: %d, want 40001", code)
	}
	if code := business(t, srv, st.AccessToken); code != 40001 {
		t.Errorf("stable token after invalidate: %d, want 40001", code)
	}
	if _, valid := srv.Token(testApp); valid {
		t.Error("Token() still reports the invalidated token valid")
	}
	if r := getToken(t, srv); business(t, srv, r.AccessToken) != 0 {
		t.Error("a token fetched after invalidate does not work")
	}
	if st2 := call(t, srv, "POST", PathStableToken, nil, `{"grant_type":"client_credential","appid":"`+testApp+`","secret":"`+testSecret+`"}`); st2.AccessToken == st.AccessToken {
		t.Error("stable_token kept handing out the invalidated token")
	}
	// The Go method does the same.
	tok = getToken(t, srv).AccessToken
	if err := srv.Invalidate(testApp); err != nil || business(t, srv, tok) != 40001 {
		t.Errorf("Invalidate: %v", err)
	}
	if c := ctl(t, srv, "POST", "/_fake/invalidate", `{"appid":"wxnope"}`, 404); !strings.Contains(c["error"].(string), testApp) {
		t.Errorf("unknown app: %v", c)
	}
	ctl(t, srv, "POST", "/_fake/invalidate", `{}`, 400)
}

func TestControlReset(t *testing.T) {
	srv := newTestServer(t, WithDailyQuota(PathToken, 2), WithFrozenSecret("other"), WithApp("other", "s"))
	q := tokenQ(t, srv)
	api(t, srv, "POST", PathMenuCreate, q, `{"button":[{"type":"click","name":"a","key":"k"}]}`)
	getToken(t, srv)
	srv.SetFrozen("other", false)
	srv.Advance(time.Hour)
	srv.Fail(PathAPIDomainIP, Fault{Errcode: -1})
	srv.SetDailyQuota(PathToken, 0)
	old := q.Get("access_token")

	ctl(t, srv, "POST", "/_fake/reset", "", 200)
	if !srv.Now().Equal(t0) {
		t.Errorf("clock after reset: %v", srv.Now())
	}
	if st := srv.Stats(); st.Fetches[PathToken] != 0 || len(st.Attempts) != 0 {
		t.Errorf("stats after reset: %+v", st)
	}
	if code := business(t, srv, old); code != 40014 {
		t.Errorf("a token from before the reset: %d, want 40014", code)
	}
	q = tokenQ(t, srv)
	wantCode(t, "menu after reset", api(t, srv, "GET", PathMenuGet, q, ""), 46003)
	if code := business(t, srv, q.Get("access_token")); code != 0 {
		t.Errorf("the injected fault survived the reset: %d", code)
	}
	getToken(t, srv)
	if r := getToken(t, srv); r.Errcode != 45009 {
		t.Errorf("the quota of WithDailyQuota is not back: %d", r.Errcode)
	}
	r := call(t, srv, "GET", PathToken, url.Values{"grant_type": {"client_credential"}, "appid": {"other"}, "secret": {"s"}}, "")
	if r.Errcode != 40243 {
		t.Errorf("WithFrozenSecret is not back: %d", r.Errcode)
	}
	// Reset from Go is the same.
	getToken(t, srv)
	srv.Reset()
	if srv.Used(testApp, PathToken) != 0 {
		t.Error("Reset left the quota used")
	}
}

func TestControlMessagesAndIndex(t *testing.T) {
	srv := newTestServer(t)
	q := tokenQ(t, srv)
	api(t, srv, "POST", PathCustomSend, q, `{"touser":"`+DefaultOpenID+`","msgtype":"text","text":{"content":"hi"}}`)
	m := ctl(t, srv, "GET", "/_fake/messages", "", 200)
	msgs := m["messages"].([]any)
	if len(msgs) != 1 || msgs[0].(obj)["touser"] != DefaultOpenID || msgs[0].(obj)["body"].(obj)["text"].(obj)["content"] != "hi" {
		t.Errorf("messages: %v", m)
	}
	ctl(t, srv, "GET", "/_fake/messages?appid=wxnope", "", 404)
	if idx := ctl(t, srv, "GET", "/_fake/", "", 200); len(idx["routes"].(obj)) < 8 {
		t.Errorf("index: %v", idx)
	}
	ctl(t, srv, "GET", "/_fake", "", 200)
	if r := call(t, srv, "GET", "/_fakery", nil, ""); r.Errcode != 40066 {
		t.Errorf("/_fakery: errcode %d, want 40066", r.Errcode)
	}
	ctl(t, srv, "GET", "/_fake/nope", "", 404)
	ctl(t, srv, "GET", "/_fake/media/nope", "", 404)
	ctl(t, srv, "GET", "/_fake/advance", "", 405)
	ctl(t, srv, "POST", "/_fake/stats", "", 405)
	ctl(t, srv, "PUT", "/_fake/fail", "", 405)
}

func TestControlKey(t *testing.T) {
	const key = "k3y-for-the-control-plane"
	srv := newTestServer(t, WithControlKey(key))
	ctl(t, srv, "GET", "/_fake/stats", "", 401)
	c := ctl(t, srv, "GET", "/_fake/stats", "", 403, "Authorization", "Bearer wrong")
	if strings.Contains(c["error"].(string), key) {
		t.Error("the error shows the key")
	}
	ctl(t, srv, "GET", "/_fake/stats", "", 200, "Authorization", "Bearer "+key)
	ctl(t, srv, "POST", "/_fake/advance", `{"seconds":1}`, 200, "X-Fake-Key", key)

	// With a key, other addresses are let in; without, only loopback.
	req := httptest.NewRequest("GET", "/_fake/stats", nil)
	req.RemoteAddr = "203.0.113.7:4242"
	req.Header.Set("X-Fake-Key", key)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("remote caller with the key: HTTP %d", rec.Code)
	}
	open := NewPlatform(WithApp(testApp, testSecret))
	req.Header.Del("X-Fake-Key")
	rec = httptest.NewRecorder()
	open.ServeHTTP(rec, req)
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "loopback") {
		t.Errorf("remote caller without a key: HTTP %d %s", rec.Code, rec.Body)
	}
	req.RemoteAddr, req.Host = "[::1]:4242", "[::1]:3200"
	rec = httptest.NewRecorder()
	open.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("IPv6 loopback: HTTP %d", rec.Code)
	}
}

func TestWithoutControlPlane(t *testing.T) {
	srv := newTestServer(t, WithoutControlPlane())
	if r := call(t, srv, "GET", "/_fake/stats", nil, ""); r.Errcode != 40066 {
		t.Errorf("errcode %d, want 40066", r.Errcode)
	}
}

// TestControlLocalOnly checks that, without a key, the control plane
// serves this machine's programs but not a web page open in its browser:
// a cross-site "simple" POST (text/plain, no preflight) is refused, and so
// is a Host that is not loopback (DNS rebinding).
func TestControlLocalOnly(t *testing.T) {
	p := NewPlatform(WithApp(testApp, testSecret), WithClock(t0))
	tests := []struct {
		name, host string
		header     []string
		want       int
	}{
		{"curl", "127.0.0.1:3200", []string{"Content-Type", "application/x-www-form-urlencoded"}, 200},
		{"localhost", "localhost:3200", nil, 200},
		{"LOCALHOST.", "LOCALHOST.:3200", nil, 200},
		{"localhost without port", "localhost", nil, 200},
		{"127/8", "127.1.2.3:80", nil, 200},
		{"IPv6", "[::1]:3200", nil, 200},
		{"IPv6 without port", "[::1]", nil, 200},
		{"same-origin page", "localhost:3200", []string{"Sec-Fetch-Site", "same-origin", "Origin", "http://localhost:3200"}, 200},
		{"typed in the address bar", "127.0.0.1:3200", []string{"Sec-Fetch-Site", "none"}, 200},
		{"loopback page on another port", "127.0.0.1:3200", []string{"Origin", "http://127.0.0.1:8080"}, 200},

		{"rebound name", "attacker.example:3200", nil, 403},
		{"localhost lookalike", "localhost.attacker.example", nil, 403},
		{"LAN address", "192.168.1.5:3200", nil, 403},
		{"empty Host", "", nil, 403},
		{"cross-site", "127.0.0.1:3200", []string{"Sec-Fetch-Site", "cross-site", "Content-Type", "text/plain"}, 403},
		{"same-site", "127.0.0.1:3200", []string{"Sec-Fetch-Site", "same-site"}, 403},
		{"foreign Origin", "127.0.0.1:3200", []string{"Origin", "https://attacker.example", "Content-Type", "text/plain"}, 403},
		{"null Origin", "127.0.0.1:3200", []string{"Origin", "null"}, 403},
		{"file Origin", "127.0.0.1:3200", []string{"Origin", "file://"}, 403},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("POST", "/_fake/advance", strings.NewReader(`{"seconds":60}`))
		req.RemoteAddr, req.Host = "127.0.0.1:4242", tt.host
		for i := 0; i+1 < len(tt.header); i += 2 {
			req.Header.Set(tt.header[i], tt.header[i+1])
		}
		before := p.Now()
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("%s: HTTP %d, want %d: %s", tt.name, rec.Code, tt.want, rec.Body)
		}
		if moved := p.Now().Sub(before); (moved != 0) != (tt.want == 200) {
			t.Errorf("%s: the clock moved %v", tt.name, moved)
		}
		if tt.want == 403 && !strings.Contains(rec.Body.String(), "-control-key") {
			t.Errorf("%s: the refusal does not say how to allow it: %s", tt.name, rec.Body)
		}
	}

	// With the key, a non-loopback Host is fine (the fake may be reached
	// by name from a container).
	keyed := NewPlatform(WithApp(testApp, testSecret), WithControlKey("k"))
	req := httptest.NewRequest("GET", "/_fake/stats", nil)
	req.Host = "fake-wechat:3200"
	req.Header.Set("X-Fake-Key", "k")
	rec := httptest.NewRecorder()
	keyed.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("with the key, Host %s: HTTP %d %s", req.Host, rec.Code, rec.Body)
	}
}

// Resetting the AppSecret: the new one fetches, the old one is a wrong
// secret on both token endpoints, tokens already issued keep working, and
// Reset restores the secret of the options.
func TestControlSecret(t *testing.T) {
	srv := newTestServer(t)
	old := getToken(t, srv).AccessToken
	c := ctl(t, srv, "POST", "/_fake/secret", `{"appid":"`+testApp+`","secret":"new-secret-0123"}`, 200)
	if c["secret"] != "new-secret-0123" {
		t.Errorf("answer %v, want the secret set", c)
	}
	fetch := func(secret string) reply {
		return call(t, srv, "GET", PathToken, url.Values{"grant_type": {"client_credential"}, "appid": {testApp}, "secret": {secret}}, "")
	}
	if r := fetch(testSecret); r.Errcode == 0 {
		t.Errorf("the old secret still fetches: %+v", r)
	}
	if r := call(t, srv, "POST", PathStableToken, nil, `{"grant_type":"client_credential","appid":"`+testApp+`","secret":"`+testSecret+`"}`); r.Errcode == 0 {
		t.Errorf("the old secret still fetches a stable token: %+v", r)
	}
	if r := fetch("new-secret-0123"); r.Errcode != 0 || r.AccessToken == "" {
		t.Errorf("the new secret: %+v", r)
	}
	if code := business(t, srv, old); code != 0 {
		t.Errorf("a token issued before the reset: errcode %d, want 0", code)
	}
	random := ctl(t, srv, "POST", "/_fake/secret", `{"appid":"`+testApp+`"}`, 200)["secret"].(string)
	if len(random) < 16 || fetch(random).Errcode != 0 {
		t.Errorf("a random secret %q does not fetch", random)
	}
	ctl(t, srv, "POST", "/_fake/secret", `{"appid":"wxnope"}`, 404)
	ctl(t, srv, "POST", "/_fake/secret", `{}`, 400)
	srv.Reset()
	if r := fetch(testSecret); r.Errcode != 0 {
		t.Errorf("after Reset the options' secret: %+v", r)
	}
	if _, err := srv.SetSecret("wxnope", "x"); err == nil {
		t.Error("SetSecret of an unknown app succeeded")
	}
}
