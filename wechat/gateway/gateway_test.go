package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

const (
	oaID       = "wx0a0a0a0a0a0a0a0a"
	oaSecret   = "oa-secret-never-logged-0123456789"
	miniID     = "wx0b0b0b0b0b0b0b0b"
	miniSecret = "mini-secret-never-logged-012345678"
)

var epoch = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// env is a gateway in front of a fake WeChat with an official account and
// a Mini Program, each with a real keeper on a file store.
type env struct {
	fake    *wechattest.Server
	gw      *Gateway
	url     string // the gateway's base URL
	oa, mp  *wechat.Wechat
	reg     *prometheus.Registry
	logs    *bytes.Buffer
	logMu   *sync.Mutex
	options Options
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (e *env) log() string {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return e.logs.String()
}

// fakeBase stands for the fake's URL in the bases of newEnv.
const fakeBase = "FAKE"

// newEnv starts the fake, the keepers and the gateway (on bases, the
// fake's URL when none is given). tweak may change the gateway's options.
func newEnv(t testing.TB, tweak func(*Options), bases ...string) *env {
	t.Helper()
	fake := wechattest.NewServer(wechattest.WithApp(oaID, oaSecret),
		wechattest.WithAppKind(miniID, miniSecret, wechattest.KindMiniProgram), wechattest.WithClock(epoch))
	t.Cleanup(fake.Close)
	if len(bases) == 0 {
		bases = []string{fakeBase}
	}
	bases = append([]string(nil), bases...)
	for i, b := range bases {
		if b == fakeBase {
			bases[i] = fake.URL
		}
	}
	e := &env{fake: fake, reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	logger := slog.New(slog.NewTextHandler(lockedWriter{e.logMu, e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	up, err := wechat.NewUpstream(bases, wechat.UpstreamOptions{HTTPClient: fake.Client(), Clock: fake, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keeper := func(id, secret string) *wechat.Wechat {
		w, err := wechat.Open(t.Context(), wechat.Options{AppID: id, AppSecret: secret, Upstream: up, Clock: fake,
			Logger: logger, Store: wechat.NewFileStore(filepath.Join(dir, id+".txt"), logger), MinFetchInterval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
		return w
	}
	e.oa, e.mp = keeper(oaID, oaSecret), keeper(miniID, miniSecret)
	e.options = Options{Upstream: up, HTTPClient: fake.Client(), Registerer: e.reg, Logger: logger, Clock: fake}
	if tweak != nil {
		tweak(&e.options)
	}
	if e.gw, err = New(e.options); err != nil {
		t.Fatal(err)
	}
	if err := e.gw.SetApps([]App{
		{ID: oaID, Kind: config.OfficialAccount, Secret: oaSecret, Keeper: e.oa},
		{ID: miniID, Kind: config.MiniProgram, Secret: miniSecret, Keeper: e.mp},
	}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.gw)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// get calls the gateway and decodes its JSON answer.
func (e *env) get(t testing.TB, pathQuery string) map[string]any {
	t.Helper()
	resp, err := http.Get(e.url + pathQuery)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp)
}

func (e *env) post(t testing.TB, pathQuery, body string) map[string]any {
	t.Helper()
	resp, err := http.Post(e.url+pathQuery, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp)
}

func decode(t testing.TB, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("answer %q (HTTP %d) is not JSON: %v", data, resp.StatusCode, err)
	}
	return m
}

func errcode(m map[string]any) int {
	f, _ := m["errcode"].(float64)
	return int(f)
}

// token gets a token from the gateway as an SDK does.
func (e *env) token(t testing.TB, id, secret string) string {
	t.Helper()
	m := e.get(t, "/cgi-bin/token?grant_type=client_credential&appid="+id+"&secret="+url.QueryEscape(secret))
	tok, _ := m["access_token"].(string)
	if tok == "" {
		t.Fatalf("/cgi-bin/token answered %v", m)
	}
	return tok
}

func (e *env) fetches() int { return e.fake.Stats().Fetches[wechattest.PathToken] }

func TestTokenEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t, oaID, oaSecret)
	held, err := e.oa.AccessToken(t.Context())
	if err != nil || tok != held {
		t.Fatalf("the gateway's token is not the keeper's (err %v)", err)
	}
	m := e.get(t, "/cgi-bin/token?grant_type=client_credential&appid="+oaID+"&secret="+oaSecret)
	if m["access_token"] != tok || m["expires_in"].(float64) != 7200 || len(m) != 2 {
		t.Errorf("second call answered %v; want the same token, expires_in 7200 and nothing else", redact(m))
	}
	e.fake.Advance(100 * time.Second)
	if m := e.get(t, "/cgi-bin/token?grant_type=client_credential&appid="+oaID+"&secret="+oaSecret); m["expires_in"].(float64) != 7100 {
		t.Errorf("expires_in after 100 s = %v; want the seconds left, 7100", m["expires_in"])
	}
	if n := e.fetches(); n != 1 {
		t.Errorf("WeChat issued %d tokens for three gateway answers; want the keeper's one", n)
	}
	for _, tc := range []struct {
		query string
		code  int
	}{
		{"grant_type=client_credential&appid=" + oaID + "&secret=wrong", 40125},
		{"grant_type=client_credential&appid=" + oaID + "&secret=" + oaSecret + "x", 40125},
		{"grant_type=client_credential&appid=wxunknown&secret=" + oaSecret, 40013},
		{"grant_type=client_credential&appid=" + oaID, 41004},
		{"grant_type=client_credential&secret=" + oaSecret, 41002},
		{"appid=" + oaID + "&secret=" + oaSecret, 40002},
		{"grant_type=authorization_code&appid=" + oaID + "&secret=" + oaSecret, 40002},
	} {
		m := e.get(t, "/cgi-bin/token?"+tc.query)
		if errcode(m) != tc.code || m["access_token"] != nil {
			t.Errorf("/cgi-bin/token?%s answered %v; want errcode %d", tc.query, redact(m), tc.code)
		}
	}
	if n := e.fetches(); n != 1 {
		t.Errorf("bad calls made WeChat issue %d tokens; want 1 in all", n)
	}
	if strings.Contains(e.log(), oaSecret) || strings.Contains(e.log(), tok) {
		t.Errorf("the log holds a secret or token:\n%s", e.log())
	}
}

func redact(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if k == "access_token" || k == "ticket" {
			v = "…"
		}
		out[k] = v
	}
	return out
}

func TestStableTokenEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	body := func(secret string, force bool) string {
		return fmt.Sprintf(`{"grant_type":"client_credential","appid":%q,"secret":%q,"force_refresh":%v}`, oaID, secret, force)
	}
	m := e.post(t, "/cgi-bin/stable_token", body(oaSecret, false))
	first, _ := m["access_token"].(string)
	if first == "" || m["expires_in"].(float64) != 7200 {
		t.Fatalf("stable_token answered %v", redact(m))
	}
	// force_refresh is a passive refresh of the token held.
	e.fake.Advance(2 * time.Second)
	m = e.post(t, "/cgi-bin/stable_token", body(oaSecret, true))
	second, _ := m["access_token"].(string)
	if second == "" || second == first {
		t.Fatalf("force_refresh answered %v; want a new token", redact(m))
	}
	// Under the keeper's guards: at once again, the minimum interval
	// refuses a fetch and the token held is served.
	m = e.post(t, "/cgi-bin/stable_token", body(oaSecret, true))
	if m["access_token"] != second {
		t.Errorf("a second force_refresh at once answered %v; want the token held (the guard refuses a fetch)", redact(m))
	}
	if n := e.fetches(); n != 2 {
		t.Errorf("WeChat issued %d tokens; want 2", n)
	}
	for _, tc := range []struct {
		body string
		code int
	}{
		{"", 44002},
		{"{not json", 47001},
		{body("wrong", false), 40125},
		{`{"grant_type":"client_credential","secret":"x"}`, 41002},
	} {
		if m := e.post(t, "/cgi-bin/stable_token", tc.body); errcode(m) != tc.code {
			t.Errorf("stable_token with %q answered %v; want errcode %d", tc.body, redact(m), tc.code)
		}
	}
	if m := e.get(t, "/cgi-bin/stable_token"); errcode(m) != 43002 {
		t.Errorf("GET stable_token answered %v; want 43002", m)
	}
}

func TestTicketEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t, oaID, oaSecret)
	m := e.get(t, "/cgi-bin/ticket/getticket?access_token="+tok+"&type=jsapi")
	want, _ := e.fake.Ticket(oaID, "jsapi")
	if errcode(m) != 0 || m["ticket"] != want || m["expires_in"].(float64) != 7200 {
		t.Errorf("getticket answered %v; want the fake's jsapi ticket", redact(m))
	}
	again := e.get(t, "/cgi-bin/ticket/getticket?access_token="+tok+"&type=jsapi")
	if again["ticket"] != want || e.fake.Stats().Fetches[wechattest.PathTicket] != 1 {
		t.Errorf("a second getticket fetched again (%d getticket calls)", e.fake.Stats().Fetches[wechattest.PathTicket])
	}
	if m := e.get(t, "/cgi-bin/ticket/getticket?access_token="+tok+"&type=other"); errcode(m) != 40097 {
		t.Errorf("type=other answered %v; want 40097", m)
	}
	mini := e.token(t, miniID, miniSecret)
	if m := e.get(t, "/cgi-bin/ticket/getticket?access_token="+mini+"&type=jsapi"); errcode(m) != 48001 {
		t.Errorf("a Mini Program's getticket answered %v; want 48001", redact(m))
	}
	if m := e.get(t, "/cgi-bin/ticket/getticket?access_token=forged&type=jsapi"); errcode(m) != 40014 {
		t.Errorf("getticket with a forged token answered %v; want 40014", m)
	}
}

// TestProxyInjectsTheToken: a business call with the issued token
// reaches WeChat with the account's current token; a forged one never
// leaves the gateway.
func TestProxyInjectsTheToken(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t, oaID, oaSecret)
	m := e.get(t, "/cgi-bin/getcallbackip?access_token="+tok)
	if errcode(m) != 0 || m["ip_list"] == nil {
		t.Fatalf("getcallbackip through the gateway answered %v", m)
	}
	// Menus: a POST with a body, then a GET of what it set.
	menu := `{"button":[{"type":"click","name":"今日歌曲","key":"V1001_TODAY_MUSIC"}]}`
	if m := e.post(t, "/cgi-bin/menu/create?access_token="+tok, menu); errcode(m) != 0 {
		t.Fatalf("menu/create answered %v", m)
	}
	got := e.get(t, "/cgi-bin/menu/get?access_token="+tok)
	if !strings.Contains(fmt.Sprint(got), "V1001_TODAY_MUSIC") {
		t.Errorf("menu/get answered %v; want the menu just created", got)
	}
	before := e.fake.Stats()
	for _, q := range []string{"access_token=forged", "", "access_token=", "access_token=" + tok + "&access_token=" + tok} {
		m := e.get(t, "/cgi-bin/getcallbackip?"+q)
		want := map[string]int{"": 41001, "access_token=": 41001}[q]
		if want == 0 {
			want = 40014
		}
		if errcode(m) != want {
			t.Errorf("getcallbackip?%s answered %v; want %d", strings.ReplaceAll(q, tok, "TOKEN"), m, want)
		}
	}
	if m := e.get(t, "/cgi-bin/getcallbackip?access_token=forged"); !strings.Contains(m["errmsg"].(string), "not issued by this gateway") {
		t.Errorf("the refusal of a forged token says %q; want it to say why", m["errmsg"])
	}
	after := e.fake.Stats()
	if after.Attempts[wechattest.PathCallbackIP] != before.Attempts[wechattest.PathCallbackIP] {
		t.Errorf("refused calls reached WeChat")
	}
	if got := testutil.ToFloat64(e.gw.m.calls.WithLabelValues(unknownApp, "cgi-bin", outcomeRefused)); got != 5 {
		t.Errorf("refused calls counted %v; want 5", got)
	}
	if got := testutil.ToFloat64(e.gw.m.calls.WithLabelValues(oaID, "cgi-bin", outcomeOK)); got != 3 {
		t.Errorf("good calls counted %v; want 3", got)
	}
}

// TestProxyRetiredToken: the token the gateway handed out keeps working
// through a refresh, for the grace, and is then refused with 40001.
func TestProxyRetiredToken(t *testing.T) {
	e := newEnv(t, nil)
	old := e.token(t, oaID, oaSecret)
	e.fake.Advance(2 * time.Second)
	if _, err := e.oa.ForceRefresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.fake.Advance(4 * time.Minute)
	if m := e.get(t, "/cgi-bin/getcallbackip?access_token="+old); errcode(m) != 0 {
		t.Errorf("the replaced token, 4 min later, answered %v; want it served (the grace)", m)
	}
	e.fake.Advance(2 * time.Minute)
	if m := e.get(t, "/cgi-bin/getcallbackip?access_token="+old); errcode(m) != 40001 {
		t.Errorf("the replaced token, 6 min later, answered %v; want 40001", m)
	}
	if m := e.get(t, "/cgi-bin/getcallbackip?access_token="+e.token(t, oaID, oaSecret)); errcode(m) != 0 {
		t.Errorf("the new token answered %v", m)
	}
}

// TestProxyTokenFromElsewhere: a token the gateway never saw (a business
// server got it from /v1/token) that the keeper has since replaced is
// still accepted for the grace: the keeper says what it replaced.
func TestProxyTokenFromElsewhere(t *testing.T) {
	e := newEnv(t, nil)
	old, err := e.oa.AccessToken(t.Context()) // as the admin API hands it out
	if err != nil {
		t.Fatal(err)
	}
	e.fake.Advance(2 * time.Second)
	if _, err := e.oa.ForceRefresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m := e.get(t, "/cgi-bin/getcallbackip?access_token="+old); errcode(m) != 0 {
		t.Errorf("a token replaced before the gateway saw it answered %v; want it served in the grace", m)
	}
	e.fake.Advance(6 * time.Minute)
	if m := e.get(t, "/cgi-bin/getcallbackip?access_token="+old); errcode(m) != 40001 {
		t.Errorf("the same token past the grace answered %v; want 40001", m)
	}
}

// TestProxyTokenKilledBehindTheSDK: WeChat stops accepting the token (it
// was refreshed elsewhere); the gateway refreshes once and retries, and
// the caller sees success — for a GET, and a POST it could keep, but not
// for a POST too large to keep.
func TestProxyTokenKilledBehindTheSDK(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxRetryBody = 1024 })
	tok := e.token(t, oaID, oaSecret)
	kill := func() {
		t.Helper()
		e.fake.Advance(2 * time.Second)
		if err := e.fake.Invalidate(oaID); err != nil {
			t.Fatal(err)
		}
	}
	kill()
	if m := e.get(t, "/cgi-bin/getcallbackip?access_token="+tok); errcode(m) != 0 {
		t.Fatalf("a GET with a killed token answered %v; want success after a retry", m)
	}
	kill()
	menu := `{"button":[{"type":"click","name":"x","key":"K"}]}`
	if m := e.post(t, "/cgi-bin/menu/create?access_token="+tok, menu); errcode(m) != 0 {
		t.Fatalf("a small POST with a killed token answered %v; want success after a retry", m)
	}
	if got := testutil.ToFloat64(e.gw.m.calls.WithLabelValues(oaID, "cgi-bin", outcomeRetried)); got != 2 {
		t.Errorf("token_retried counted %v; want 2", got)
	}
	kill()
	big := `{"button":[{"type":"click","name":"` + strings.Repeat("y", 2000) + `","key":"K"}]}`
	if m := e.post(t, "/cgi-bin/menu/create?access_token="+tok, big); errcode(m) != 40001 {
		t.Errorf("a POST larger than MaxRetryBody with a killed token answered %v; want WeChat's 40001 (not retried)", m)
	}
	if !strings.Contains(e.log(), "retried with a fresh one") {
		t.Errorf("no log line for the retried call")
	}
}

// TestProxyConcurrentRejectionsShareOneRefresh: many calls rejected at
// once make one fetch between them.
func TestProxyConcurrentRejectionsShareOneRefresh(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t, oaID, oaSecret)
	e.fake.Advance(2 * time.Second)
	if err := e.fake.Invalidate(oaID); err != nil {
		t.Fatal(err)
	}
	before := e.fetches()
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Go(func() { codes[i] = errcode(e.get(t, "/cgi-bin/getcallbackip?access_token="+tok)) })
	}
	wg.Wait()
	for i, c := range codes {
		if c != 0 {
			t.Errorf("call %d answered errcode %d", i, c)
		}
	}
	if n := e.fetches() - before; n != 1 {
		t.Errorf("20 rejected calls made %d fetches; want 1", n)
	}
}

// TestSNSPassThrough: /sns/ calls carry user credentials, not the
// account's token: they are forwarded untouched.
func TestSNSPassThrough(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.RequestURI())
		mu.Unlock()
		io.WriteString(w, `{"openid":"o1"}`)
	}))
	defer rec.Close()
	e := newEnv(t, nil, rec.URL)
	for _, q := range []string{
		"/sns/userinfo?access_token=USER-OAUTH-TOKEN&openid=o1&lang=zh_CN",
		"/sns/jscode2session?appid=" + miniID + "&secret=s&js_code=test1&grant_type=authorization_code",
		"/sns/oauth2/access_token?appid=a&secret=s&code=c&grant_type=authorization_code",
	} {
		if m := e.get(t, q); m["openid"] != "o1" {
			t.Errorf("%s answered %v", q, m)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"/sns/userinfo?access_token=USER-OAUTH-TOKEN&openid=o1&lang=zh_CN",
		"/sns/jscode2session?appid=" + miniID + "&secret=s&js_code=test1&grant_type=authorization_code",
		"/sns/oauth2/access_token?appid=a&secret=s&code=c&grant_type=authorization_code",
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("WeChat saw %q; want the calls untouched %q", seen, want)
	}

	// And on the fake: a Mini Program login through the gateway.
	e = newEnv(t, nil)
	m := e.get(t, "/sns/jscode2session?appid="+miniID+"&secret="+miniSecret+"&js_code=test42&grant_type=authorization_code")
	if m["openid"] != wechattest.OpenIDForCode(miniID, "test42") {
		t.Errorf("jscode2session through the gateway answered %v", m)
	}
	for _, p := range []string{"/cgi-bin/component/api_component_token", "/sns/component/jscode2session?appid=a"} {
		if m := e.get(t, p); errcode(m) != 48001 {
			t.Errorf("%s answered %v; want 48001 (no component token here)", p, m)
		}
	}
}

// TestMediaRoundTrip: a multipart upload and a binary download pass
// byte for byte with their headers.
func TestMediaRoundTrip(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxRetryBody = 4 << 10 }) // the upload streams
	tok := e.token(t, oaID, oaSecret)
	img := bytes.Repeat([]byte{0xff, 0xd8, 0xff, 0xe0, 0, 1, 2, 3}, 2048) // 16 KiB "JPEG"
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	part, _ := mw.CreateFormFile("media", "photo.jpg")
	part.Write(img)
	mw.Close()
	resp, err := http.Post(e.url+"/cgi-bin/media/upload?access_token="+tok+"&type=image", mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	up := decode(t, resp)
	id, _ := up["media_id"].(string)
	if id == "" || up["type"] != "image" {
		t.Fatalf("media/upload answered %v", up)
	}
	resp, err = http.Get(e.url + "/cgi-bin/media/get?access_token=" + tok + "&media_id=" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(got, img) {
		t.Errorf("media/get gave %d bytes; want the %d uploaded", len(got), len(img))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "image/") {
		t.Errorf("Content-Type %q; want the image's", ct)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "attachment") || !strings.Contains(cd, id) {
		t.Errorf("Content-Disposition %q; want the fake's attachment header", cd)
	}
}

// TestHeadersAndBodyPassVerbatim: a signed Mini Program call keeps its
// body bytes and Wechatmp-* headers both ways; only access_token changes.
func TestHeadersAndBodyPassVerbatim(t *testing.T) {
	type seenReq struct {
		uri, body, sig, ct string
		auth               string
	}
	var mu sync.Mutex
	var seen seenReq
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = seenReq{r.URL.RequestURI(), string(b), r.Header.Get("Wechatmp-Signature"), r.Header.Get("Content-Type"), r.Header.Get("Authorization")}
		mu.Unlock()
		w.Header().Set("Wechatmp-Appid", miniID)
		w.Header().Set("Wechatmp-Signature", "resp-sig")
		w.Header().Set("Content-Type", "application/json; encoding=utf-8")
		io.WriteString(w, `{"iv":"a","data":"b","authtag":"c"}`)
	}))
	defer rec.Close()
	e := newEnv(t, nil, rec.URL)
	// The keeper's token comes from the recording server: give it one.
	cur := wechat.Credential{Value: "the-account-token", FetchedAt: e.fake.Now(), ExpiresAt: e.fake.Now().Add(2 * time.Hour)}
	if err := seedToken(t, e, cur); err != nil {
		t.Fatal(err)
	}
	body := `{"iv":"x","data":"y",  "authtag":"z"}` // odd spacing: must not be re-serialised
	req, _ := http.NewRequest(http.MethodPost, e.url+"/wxa/business/getuserphonenumber?a=1&access_token=the-account-token&b=%2F", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json;charset=utf-8")
	req.Header.Set("Wechatmp-Signature", "req-sig")
	req.Header.Set("Authorization", "Bearer admin-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	mu.Lock()
	defer mu.Unlock()
	if seen.uri != "/wxa/business/getuserphonenumber?a=1&access_token=the-account-token&b=%2F" || seen.body != body ||
		seen.sig != "req-sig" || seen.ct != "application/json;charset=utf-8" || seen.auth != "" {
		t.Errorf("WeChat saw %+v", seen)
	}
	if string(got) != `{"iv":"a","data":"b","authtag":"c"}` || resp.Header.Get("Wechatmp-Signature") != "resp-sig" ||
		resp.Header.Get("Wechatmp-Appid") != miniID {
		t.Errorf("the caller got %q with headers %v", got, resp.Header)
	}
}

// seedToken makes cur the Mini Program keeper's token through its store.
func seedToken(t testing.TB, e *env, cur wechat.Credential) error {
	t.Helper()
	store := wechat.NewFileStore(filepath.Join(t.TempDir(), "seed.txt"), nil)
	if err := store.Save(t.Context(), wechat.KindAccessToken, cur); err != nil {
		return err
	}
	w, err := wechat.Open(t.Context(), wechat.Options{AppID: miniID, AppSecret: miniSecret, Store: store, Upstream: e.options.Upstream, Clock: e.fake})
	if err != nil {
		return err
	}
	t.Cleanup(w.Close)
	return e.gw.SetApps([]App{{ID: miniID, Kind: config.MiniProgram, Secret: miniSecret, Keeper: w}})
}

// TestProxyFailsOver: with the primary refusing connections, the
// keeper's fetch and the business calls go to the fallback.
func TestProxyFailsOver(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	e := newEnv(t, nil, dead, fakeBase)
	tok := e.token(t, oaID, oaSecret)
	for range 3 {
		if m := e.get(t, "/cgi-bin/getcallbackip?access_token="+tok); errcode(m) != 0 {
			t.Fatalf("a call with the primary down answered %v", m)
		}
	}
	if e.options.Upstream.Base() != e.fake.URL {
		t.Errorf("the upstream is on %q; want the fallback", e.options.Upstream.Base())
	}
	if n := strings.Count(e.log(), "switched to a fallback"); n != 1 {
		t.Errorf("%d switch lines logged; want 1 (the switch is sticky)", n)
	}
}
