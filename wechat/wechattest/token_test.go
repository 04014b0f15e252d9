package wechattest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	testApp    = "wx1234567890abcdef"
	testSecret = "0123456789abcdef0123456789abcdef"
)

// t0 is 2026-11-21 10:00 in Beijing.
var t0 = time.Date(2026, 11, 21, 2, 0, 0, 0, time.UTC)

// reply is the union of the fields the platform answers with.
type reply struct {
	Errcode     int      `json:"errcode"`
	Errmsg      string   `json:"errmsg"`
	AccessToken string   `json:"access_token"`
	ExpiresIn   int      `json:"expires_in"`
	Ticket      string   `json:"ticket"`
	IPList      []string `json:"ip_list"`
	Quota       struct {
		DailyLimit int `json:"daily_limit"`
		Used       int `json:"used"`
		Remain     int `json:"remain"`
	} `json:"quota"`
}

func newTestServer(t *testing.T, opts ...Option) *Server {
	t.Helper()
	srv := NewServer(append([]Option{WithApp(testApp, testSecret), WithClock(t0)}, opts...)...)
	t.Cleanup(srv.Close)
	return srv
}

// call makes one request and decodes the answer, failing the test on a
// transport error, a status other than 200 or the wrong content type.
func call(t *testing.T, srv *Server, method, path string, query url.Values, body string) reply {
	t.Helper()
	u := srv.URL + path
	if query != nil {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: HTTP %d %s", method, path, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != contentType {
		t.Errorf("%s %s: Content-Type %q, want %q", method, path, ct, contentType)
	}
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s %s: %v in %s", method, path, err, b)
	}
	if r.Errcode != 0 && !strings.Contains(r.Errmsg, " rid: ") {
		t.Errorf("errmsg %q has no rid", r.Errmsg)
	}
	return r
}

func getToken(t *testing.T, srv *Server) reply {
	t.Helper()
	return call(t, srv, "GET", PathToken, url.Values{
		"grant_type": {"client_credential"}, "appid": {testApp}, "secret": {testSecret}}, "")
}

// business calls get_api_domain_ip with tok and returns the errcode.
func business(t *testing.T, srv *Server, tok string) int {
	t.Helper()
	q := url.Values{}
	if tok != "" {
		q.Set("access_token", tok)
	}
	r := call(t, srv, "GET", PathAPIDomainIP, q, "")
	if r.Errcode == 0 && len(r.IPList) == 0 {
		t.Errorf("get_api_domain_ip succeeded with an empty ip_list")
	}
	return r.Errcode
}

func TestTokenErrors(t *testing.T) {
	srv := newTestServer(t,
		WithApp("wxwhite", "s2"), WithIPWhitelist("wxwhite", "192.0.2.1", "198.51.100.0/24"),
		WithApp("wxfrozen", "s3"), WithFrozenSecret("wxfrozen"))
	tests := []struct {
		name  string
		query url.Values
		want  int
		msg   string
	}{
		{"ok", url.Values{"grant_type": {"client_credential"}, "appid": {testApp}, "secret": {testSecret}}, 0, ""},
		{"grant type", url.Values{"grant_type": {"password"}, "appid": {testApp}, "secret": {testSecret}}, 40002, "invalid grant_type"},
		{"no appid", url.Values{"grant_type": {"client_credential"}, "secret": {testSecret}}, 41002, "appid missing"},
		{"unknown appid", url.Values{"grant_type": {"client_credential"}, "appid": {"wxnope"}, "secret": {testSecret}}, 40013, "invalid appid"},
		{"no secret", url.Values{"grant_type": {"client_credential"}, "appid": {testApp}}, 41004, "appsecret missing"},
		{"wrong secret", url.Values{"grant_type": {"client_credential"}, "appid": {testApp}, "secret": {"x"}}, 40125, "invalid appsecret"},
		{"not whitelisted", url.Values{"grant_type": {"client_credential"}, "appid": {"wxwhite"}, "secret": {"s2"}}, 40164, "invalid ip 127.0.0.1 ipv6 ::ffff:127.0.0.1, not in whitelist"},
		{"frozen", url.Values{"grant_type": {"client_credential"}, "appid": {"wxfrozen"}, "secret": {"s3"}}, 40243, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, srv, "GET", PathToken, tt.query, "")
			if r.Errcode != tt.want {
				t.Fatalf("errcode = %d (%s), want %d", r.Errcode, r.Errmsg, tt.want)
			}
			if !strings.HasPrefix(r.Errmsg, tt.msg) {
				t.Errorf("errmsg = %q, want prefix %q", r.Errmsg, tt.msg)
			}
			if tt.want == 0 && (len(r.AccessToken) < 100 || r.ExpiresIn != 7200) {
				t.Errorf("token %d chars, expires_in %d; want >= 100 chars and 7200", len(r.AccessToken), r.ExpiresIn)
			}
			if tt.want != 0 && r.AccessToken != "" {
				t.Errorf("error answer carries a token")
			}
		})
	}
	st := srv.Stats()
	if st.Fetches[PathToken] != 1 || st.Errors[PathToken][40125] != 1 || st.Errors[PathToken][40164] != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestTokenWhitelistAllowsLoopback(t *testing.T) {
	srv := newTestServer(t, WithIPWhitelist(testApp, "10.0.0.0/8", "127.0.0.1"))
	if r := getToken(t, srv); r.Errcode != 0 {
		t.Fatalf("errcode %d from a whitelisted caller", r.Errcode)
	}
}

func TestTokenGrace(t *testing.T) {
	srv := newTestServer(t, WithTokenLifetime(7200*time.Second), WithGrace(300*time.Second))
	first := getToken(t, srv).AccessToken
	if code := business(t, srv, first); code != 0 {
		t.Fatalf("fresh token: errcode %d", code)
	}
	srv.Advance(time.Hour)
	second := getToken(t, srv).AccessToken
	if second == first {
		t.Fatal("a second fetch returned the same token")
	}
	if tok, valid := srv.Token(testApp); tok != second || !valid {
		t.Errorf("Token() = %.8s…, %v; want the second token, valid", tok, valid)
	}
	check := func(name string, wantFirst, wantSecond int) {
		t.Helper()
		if got := business(t, srv, first); got != wantFirst {
			t.Errorf("%s: first token errcode %d, want %d", name, got, wantFirst)
		}
		if got := business(t, srv, second); got != wantSecond {
			t.Errorf("%s: second token errcode %d, want %d", name, got, wantSecond)
		}
	}
	check("right after refetch", 0, 0)
	srv.Advance(299 * time.Second)
	check("1 s before grace ends", 0, 0)
	srv.Advance(time.Second)
	check("grace over", 40001, 0)
	srv.Advance(time.Hour) // first token's natural expiry has passed too
	check("first past its natural expiry", 42001, 0)
	srv.Advance(2*time.Hour - 300*time.Second - time.Hour - time.Second)
	check("1 s before second expires", 42001, 0)
	srv.Advance(time.Second)
	check("second expired", 42001, 42001)
	if code := business(t, srv, ""); code != 41001 {
		t.Errorf("no token: errcode %d, want 41001", code)
	}
	if code := business(t, srv, "not-a-token"); code != 40014 {
		t.Errorf("unknown token: errcode %d, want 40014", code)
	}
	st := srv.Stats()
	if st.Accepted != 8 || st.Rejected[40001] != 1 || st.Rejected[42001] != 4 || st.Rejected[41001] != 1 || st.Rejected[40014] != 1 {
		t.Errorf("Accepted %d, Rejected %v", st.Accepted, st.Rejected)
	}
}

func TestTokenGraceNeverExtends(t *testing.T) {
	// A token with less life left than the grace period keeps only its own.
	srv := newTestServer(t, WithTokenLifetime(100*time.Second), WithGrace(300*time.Second))
	first := getToken(t, srv).AccessToken
	srv.Advance(90 * time.Second)
	getToken(t, srv)
	srv.Advance(10 * time.Second)
	if code := business(t, srv, first); code != 42001 {
		t.Errorf("errcode %d, want 42001: grace must not extend a token's life", code)
	}
}

func TestTokenDailyQuota(t *testing.T) {
	// t0 is 10:00 Beijing time; the quota day ends 14 h later.
	srv := newTestServer(t, WithDailyQuota(PathToken, 3))
	for i := range 3 {
		if r := getToken(t, srv); r.Errcode != 0 {
			t.Fatalf("fetch %d: errcode %d", i+1, r.Errcode)
		}
	}
	if r := getToken(t, srv); r.Errcode != 45009 {
		t.Fatalf("4th fetch: errcode %d, want 45009", r.Errcode)
	}
	srv.Advance(14*time.Hour - time.Second) // 23:59:59 Beijing
	if r := getToken(t, srv); r.Errcode != 45009 {
		t.Fatalf("at 23:59:59: errcode %d, want 45009", r.Errcode)
	}
	srv.Advance(time.Second) // 00:00 Beijing
	if r := getToken(t, srv); r.Errcode != 0 {
		t.Fatalf("after midnight Beijing: errcode %d, want 0", r.Errcode)
	}
	if got := srv.Used(testApp, PathToken); got != 1 {
		t.Errorf("Used = %d, want 1", got)
	}
	st := srv.Stats()
	if st.Fetches[PathToken] != 4 || st.Errors[PathToken][45009] != 2 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestDayLocation(t *testing.T) {
	// With UTC days, t0 (02:00 UTC) has 22 h left in its day.
	srv := newTestServer(t, WithDailyQuota(PathToken, 1), WithDayLocation(time.UTC))
	getToken(t, srv)
	srv.Advance(14 * time.Hour) // midnight Beijing, 16:00 UTC
	if r := getToken(t, srv); r.Errcode != 45009 {
		t.Fatalf("errcode %d, want 45009: the UTC day has not changed", r.Errcode)
	}
	srv.Advance(8 * time.Hour)
	if r := getToken(t, srv); r.Errcode != 0 {
		t.Fatalf("errcode %d after midnight UTC", r.Errcode)
	}
}

func TestQuotaIsPerApp(t *testing.T) {
	srv := newTestServer(t, WithApp("wxother", "s"), WithDailyQuota(PathToken, 1))
	getToken(t, srv)
	r := call(t, srv, "GET", PathToken, url.Values{"grant_type": {"client_credential"}, "appid": {"wxother"}, "secret": {"s"}}, "")
	if r.Errcode != 0 {
		t.Fatalf("other app: errcode %d", r.Errcode)
	}
	if got := srv.Apps(); len(got) != 2 || got[0] != testApp || got[1] != "wxother" {
		t.Errorf("Apps() = %v", got)
	}
}

func TestClock(t *testing.T) {
	frozen := NewPlatform(WithClock(t0))
	if got := frozen.Now(); !got.Equal(t0) {
		t.Errorf("frozen Now = %v, want %v", got, t0)
	}
	frozen.Advance(90 * time.Minute)
	if got := frozen.Now(); !got.Equal(t0.Add(90 * time.Minute)) {
		t.Errorf("after Advance: %v", got)
	}
	real := NewPlatform()
	before := time.Now()
	real.Advance(24 * time.Hour)
	got := real.Now()
	if got.Before(before.Add(24*time.Hour)) || got.After(time.Now().Add(24*time.Hour)) {
		t.Errorf("real clock advanced by a day = %v, want about %v", got, before.Add(24*time.Hour))
	}
}

func TestIssueTokenSupersedes(t *testing.T) {
	srv := newTestServer(t, WithGrace(0))
	mine := getToken(t, srv).AccessToken
	theirs := srv.IssueToken(testApp)
	if theirs == "" || theirs == mine {
		t.Fatalf("IssueToken = %q", theirs)
	}
	if code := business(t, srv, mine); code != 40001 {
		t.Errorf("errcode %d, want 40001 with zero grace", code)
	}
	if code := business(t, srv, theirs); code != 0 {
		t.Errorf("IssueToken's token: errcode %d", code)
	}
	if got := srv.Stats().Fetches[PathToken]; got != 2 {
		t.Errorf("Fetches = %d, want 2", got)
	}
}

// TestUnknownPath: a path outside the API families gets WeChat's JSON
// 40066, never a plain-text 404; one under a family answers ok after the
// token check.
func TestUnknownPath(t *testing.T) {
	srv := newTestServer(t)
	for _, m := range []string{"GET", "POST"} {
		if r := call(t, srv, m, "/nope", nil, "{}"); r.Errcode != 40066 {
			t.Errorf("%s /nope: errcode %d, want 40066", m, r.Errcode)
		}
	}
	const family = "/wxa/business/getuserphonenumber"
	if r := call(t, srv, "POST", family, nil, "{}"); r.Errcode != 41001 {
		t.Errorf("%s without a token: errcode %d, want 41001", family, r.Errcode)
	}
	tok := getToken(t, srv).AccessToken
	r := call(t, srv, "POST", family, url.Values{"access_token": {tok}}, "{}")
	if r.Errcode != 0 || r.Errmsg != "ok" {
		t.Errorf("%s: %+v, want errcode 0, ok", family, r)
	}
}
