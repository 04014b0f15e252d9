package wechattest

import (
	"net/url"
	"testing"
	"time"
)

func getTicket(t *testing.T, srv *Server, tok, typ string) reply {
	t.Helper()
	return call(t, srv, "GET", PathTicket, url.Values{"access_token": {tok}, "type": {typ}}, "")
}

func TestTicket(t *testing.T) {
	srv := newTestServer(t)
	tok := getToken(t, srv).AccessToken
	a := getTicket(t, srv, tok, "jsapi")
	if a.Errcode != 0 || a.Errmsg != "ok" || a.ExpiresIn != 7200 || len(a.Ticket) < 80 {
		t.Fatalf("first ticket: %+v", a)
	}
	srv.Advance(time.Hour)
	tok2 := getToken(t, srv).AccessToken // a token refetch leaves the ticket alone
	b := getTicket(t, srv, tok2, "jsapi")
	if b.Ticket != a.Ticket || b.ExpiresIn != 7200 {
		t.Fatalf("within validity: same ticket %v, expires_in %d; want same, 7200", b.Ticket == a.Ticket, b.ExpiresIn)
	}
	card := getTicket(t, srv, tok2, "wx_card")
	if card.Errcode != 0 || card.Ticket == a.Ticket {
		t.Fatalf("wx_card ticket: errcode %d, same as jsapi %v", card.Errcode, card.Ticket == a.Ticket)
	}
	if v, valid := srv.Ticket(testApp, "jsapi"); v != a.Ticket || !valid {
		t.Error("Ticket() does not report the jsapi ticket")
	}
	srv.Advance(time.Hour)
	tok3 := getToken(t, srv).AccessToken
	if c := getTicket(t, srv, tok3, "jsapi"); c.Ticket == a.Ticket {
		t.Fatal("ticket not renewed after its lifetime")
	}
	if r := getTicket(t, srv, tok3, "other"); r.Errcode != 40097 {
		t.Errorf("type=other: errcode %d, want 40097", r.Errcode)
	}
	st := srv.Stats()
	if st.Fetches[PathTicket] != 4 || st.Issued[PathTicket] != 3 {
		t.Errorf("Fetches %d, Issued %d; want 4, 3", st.Fetches[PathTicket], st.Issued[PathTicket])
	}
}

func TestTicketFollowsToken(t *testing.T) {
	srv := newTestServer(t, WithTicketFollowsToken())
	a := getTicket(t, srv, getToken(t, srv).AccessToken, "jsapi").Ticket
	b := getTicket(t, srv, getToken(t, srv).AccessToken, "jsapi").Ticket
	if a == b {
		t.Error("WithTicketFollowsToken: a token refetch kept the ticket")
	}
}

func TestTokenErrorsOnCalls(t *testing.T) {
	srv := newTestServer(t, WithGrace(0), WithTokenLifetime(time.Hour))
	expired := getToken(t, srv).AccessToken
	srv.Advance(time.Hour)
	superseded := getToken(t, srv).AccessToken
	valid := getToken(t, srv).AccessToken
	tokens := []struct {
		name, token string
		want        int
	}{
		{"missing", "", 41001},
		{"unknown", "bogus", 40014},
		{"superseded", superseded, 40001},
		{"expired", expired, 42001},
		{"valid", valid, 0},
	}
	endpoints := []struct {
		path, method, body string
	}{
		{PathAPIDomainIP, "GET", ""},
		{PathCallbackIP, "GET", ""},
		{PathTicket, "GET", ""},
		{PathQuotaGet, "POST", `{"cgi_path":"/cgi-bin/token"}`},
		{PathClearQuota, "POST", `{"appid":"` + testApp + `"}`},
	}
	for _, ep := range endpoints {
		for _, tk := range tokens {
			t.Run(ep.path+"/"+tk.name, func(t *testing.T) {
				q := url.Values{"type": {"jsapi"}}
				if tk.token != "" {
					q.Set("access_token", tk.token)
				}
				r := call(t, srv, ep.method, ep.path, q, ep.body)
				if r.Errcode != tk.want {
					t.Errorf("errcode %d (%s), want %d", r.Errcode, r.Errmsg, tk.want)
				}
			})
		}
	}
	st := srv.Stats()
	if st.Accepted != len(endpoints) {
		t.Errorf("Accepted %d, want %d", st.Accepted, len(endpoints))
	}
	for _, tk := range tokens[:4] {
		if st.Rejected[tk.want] != len(endpoints) {
			t.Errorf("Rejected[%d] = %d, want %d", tk.want, st.Rejected[tk.want], len(endpoints))
		}
	}
}

func TestWithExpiredCode(t *testing.T) {
	srv := newTestServer(t, WithExpiredCode(40014), WithTokenLifetime(time.Minute))
	tok := getToken(t, srv).AccessToken
	srv.Advance(time.Minute)
	if code := business(t, srv, tok); code != 40014 {
		t.Errorf("errcode %d, want 40014", code)
	}
}

func TestMethodErrors(t *testing.T) {
	srv := newTestServer(t)
	tok := getToken(t, srv).AccessToken
	q := url.Values{"access_token": {tok}}
	tests := []struct {
		method, path string
		want         int
	}{
		{"POST", PathToken, 43001},
		{"GET", PathStableToken, 43002},
		{"POST", PathAPIDomainIP, 43001},
		{"POST", PathCallbackIP, 43001},
		{"PUT", PathTicket, 43001},
		{"DELETE", PathQuotaGet, 43002},
		{"POST", PathTicket, 43001},
		{"POST", PathJSCode2Session, 43001},
		{"GET", PathMenuCreate, 43002},
		{"POST", PathMenuGet, 43001},
		{"POST", PathMediaGet, 43001},
		{"GET", PathMediaUpload, 43002},
		{"POST", PathShowQRCode, 43001},
		{"GET", PathClearQuota, 43002},
		{"GET", PathClearQuotaV2, 43002},
		{"GET", PathQuotaGet, 43002},
	}
	for _, tt := range tests {
		if r := call(t, srv, tt.method, tt.path, q, "{}"); r.Errcode != tt.want {
			t.Errorf("%s %s: errcode %d, want %d", tt.method, tt.path, r.Errcode, tt.want)
		}
	}
}

func clearV2(t *testing.T, srv *Server, appID, secret string) int {
	t.Helper()
	return call(t, srv, "POST", PathClearQuotaV2, nil, `{"appid":"`+appID+`","appsecret":"`+secret+`"}`).Errcode
}

func TestClearQuota(t *testing.T) {
	// t0 is 2026-11-21; December starts 9 days and 14 hours later in Beijing.
	srv := newTestServer(t, WithDailyQuota(PathToken, 1), WithMonthlyClears(3), WithApp("wxother", "s2"))
	tok := getToken(t, srv).AccessToken
	if r := getToken(t, srv); r.Errcode != 45009 {
		t.Fatalf("errcode %d, want 45009", r.Errcode)
	}
	clearTok := func() int {
		return call(t, srv, "POST", PathClearQuota, url.Values{"access_token": {tok}}, `{"appid":"`+testApp+`"}`).Errcode
	}
	if code := clearTok(); code != 0 {
		t.Fatalf("clear_quota: errcode %d", code)
	}
	tok = getToken(t, srv).AccessToken
	if tok == "" {
		t.Fatal("no token after clear_quota")
	}
	if code := clearV2(t, srv, testApp, testSecret); code != 0 {
		t.Fatalf("clear_quota/v2: errcode %d", code)
	}
	if code := clearV2(t, srv, testApp, testSecret); code != 0 {
		t.Fatalf("3rd clear: errcode %d", code)
	}
	if code := clearTok(); code != 48006 {
		t.Fatalf("4th clear with a limit of 3: errcode %d, want 48006", code)
	}
	if code := clearV2(t, srv, testApp, testSecret); code != 48006 {
		t.Fatalf("v2 shares the monthly limit: errcode %d, want 48006", code)
	}
	if code := clearV2(t, srv, "wxother", "s2"); code != 0 {
		t.Fatalf("the limit is per app: errcode %d", code)
	}
	srv.Advance(9*24*time.Hour + 14*time.Hour - time.Second)
	if code := clearV2(t, srv, testApp, testSecret); code != 48006 {
		t.Fatalf("last second of November: errcode %d, want 48006", code)
	}
	srv.Advance(time.Second)
	if code := clearV2(t, srv, testApp, testSecret); code != 0 {
		t.Fatalf("1 December: errcode %d, want 0", code)
	}
}

func TestClearQuotaErrors(t *testing.T) {
	srv := newTestServer(t, WithApp("wxother", "s2"))
	tok := getToken(t, srv).AccessToken
	q := url.Values{"access_token": {tok}}
	tests := []struct {
		name, path string
		query      url.Values
		body       string
		want       int
	}{
		{"other app's appid", PathClearQuota, q, `{"appid":"wxother"}`, 40013},
		{"no appid", PathClearQuota, q, `{}`, 41002},
		{"bad JSON", PathClearQuota, q, `{`, 47001},
		{"v2 no appid", PathClearQuotaV2, nil, `{"appsecret":"x"}`, 41002},
		{"v2 unknown appid", PathClearQuotaV2, nil, `{"appid":"wxno","appsecret":"x"}`, 40013},
		{"v2 no secret", PathClearQuotaV2, nil, `{"appid":"` + testApp + `"}`, 41004},
		{"v2 wrong secret", PathClearQuotaV2, nil, `{"appid":"` + testApp + `","appsecret":"x"}`, 40125},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := call(t, srv, "POST", tt.path, tt.query, tt.body); r.Errcode != tt.want {
				t.Errorf("errcode %d (%s), want %d", r.Errcode, r.Errmsg, tt.want)
			}
		})
	}
}

func TestClearQuotaStable(t *testing.T) {
	for _, keep := range []bool{false, true} {
		opts := []Option{WithDailyQuota(PathStableToken, 1)}
		if keep {
			opts = append(opts, WithClearQuotaKeepsStable())
		}
		srv := newTestServer(t, opts...)
		stable(t, srv, false)
		if code := clearV2(t, srv, testApp, testSecret); code != 0 {
			t.Fatal(code)
		}
		want := 0
		if keep {
			want = 45009
		}
		if r := stable(t, srv, false); r.Errcode != want {
			t.Errorf("keep=%v: stable_token after clear_quota: errcode %d, want %d", keep, r.Errcode, want)
		}
	}
}

func TestQuotaGet(t *testing.T) {
	srv := newTestServer(t)
	tok := getToken(t, srv).AccessToken
	getToken(t, srv)
	q := url.Values{"access_token": {tok}}
	r := call(t, srv, "POST", PathQuotaGet, q, `{"cgi_path":"/cgi-bin/token"}`)
	if r.Errcode != 0 || r.Quota.DailyLimit != 2000 || r.Quota.Used != 2 || r.Quota.Remain != 1998 {
		t.Fatalf("quota of /cgi-bin/token: %+v", r)
	}
	tests := []struct {
		path string
		want int
	}{
		{"cgi-bin/token", 76003},
		{"https://api.weixin.qq.com/cgi-bin/token", 76003},
		{"/sns/oauth2/access_token", 76022},
		{"/cgi-bin/nope", 76021},
		{QuotaStableForce, 76003},
		{PathStableToken, 0},
	}
	for _, tt := range tests {
		if r := call(t, srv, "POST", PathQuotaGet, q, `{"cgi_path":"`+tt.path+`"}`); r.Errcode != tt.want {
			t.Errorf("cgi_path %q: errcode %d, want %d", tt.path, r.Errcode, tt.want)
		}
	}
}

func TestBusinessQuota(t *testing.T) {
	srv := newTestServer(t, WithDailyQuota(PathCallbackIP, 1))
	tok := getToken(t, srv).AccessToken
	q := url.Values{"access_token": {tok}}
	if r := call(t, srv, "GET", PathCallbackIP, q, ""); r.Errcode != 0 || len(r.IPList) == 0 {
		t.Fatalf("getcallbackip: %+v", r)
	}
	if r := call(t, srv, "GET", PathCallbackIP, q, ""); r.Errcode != 45009 {
		t.Fatalf("errcode %d, want 45009", r.Errcode)
	}
}
