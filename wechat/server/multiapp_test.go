package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The accounts of the multi-app tests: two official accounts and a Mini
// Program, each with its own secret, callback path and callback token.
const (
	maOA1, maOA2, maMini             = "wx1111111111111111", "wx2222222222222222", "wx3333333333333333"
	maOA1Secret, maOA2Secret         = "oa1-S3CRET-0123456789abcdef", "oa2-S3CRET-0123456789abcdef"
	maMiniSecret                     = "mini-S3CRET-0123456789abcdef"
	maOA1Token, maOA2Token, maMiniCB = "oa1-callback-token", "oa2-callback-token", "mini-callback-token"
	maMiniAESKey                     = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// maEnv is the environment the config file's *_env keys name.
var maEnv = map[string]string{
	"WX_OA1_SECRET":    maOA1Secret,
	"WX_OA1_CB":        maOA1Token,
	"WX_MINI_SECRET":   maMiniSecret,
	"WX_MINI_CB":       maMiniCB,
	"WX_MINI_AES":      maMiniAESKey,
	"WX_OA1_SECRET_V2": "oa1-ROTATED-0123456789abcdef",
}

// maApp returns the [[app]] table of one of the three accounts.
func maApp(id string) string {
	switch id {
	case maOA1:
		return maOA1Table("WX_OA1_SECRET")
	case maOA2:
		// The secret and callback token from files beside the config file.
		return "[[app]]\nname = \"second\"\napp_id = \"" + maOA2 + "\"\nsecret_file = \"oa2.secret\"\n" +
			"callback_path = \"/wx/oa2\"\ncallback_token_file = \"oa2.cb\"\n"
	case maMini:
		return "[[app]]\nname = \"mini\"\nkind = \"mini_program\"\napp_id = \"" + maMini + "\"\nsecret_env = \"WX_MINI_SECRET\"\n" +
			"callback_path = \"/wx/mini\"\ncallback_token_env = \"WX_MINI_CB\"\nencoding_aes_key_env = \"WX_MINI_AES\"\n"
	}
	panic("no app " + id)
}

// maOA1Table is the first account's table, its secret in the variable
// secretVar.
func maOA1Table(secretVar string) string {
	return "[[app]]\nname = \"first\"\napp_id = \"" + maOA1 + "\"\nsecret_env = \"" + secretVar + "\"\n" +
		"callback_path = \"/wx/oa1\"\ncallback_token_env = \"WX_OA1_CB\"\n"
}

// maFiles is a config file in a temporary directory, with the secret
// files it names, and the store directory its apps share.
type maFiles struct {
	dir, path, store string
}

// newMAFiles writes the secret files and returns where the config file
// goes; write writes it.
func newMAFiles(t *testing.T) *maFiles {
	t.Helper()
	dir := t.TempDir()
	f := &maFiles{dir: dir, path: filepath.Join(dir, "wxcentral.toml"), store: filepath.Join(dir, "tokens") + "/"}
	if err := os.Mkdir(f.store, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"oa2.secret": maOA2Secret + "\n", "oa2.cb": maOA2Token + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// write writes the config file: the global settings, then the tables.
func (f *maFiles) write(t *testing.T, apiBase string, tables ...string) string {
	t.Helper()
	text := fmt.Sprintf("api_base = %q\nstore = %q\nadmin_listen = \"127.0.0.1:0\"\n\n%s", apiBase, f.store, strings.Join(tables, "\n"))
	if err := os.WriteFile(f.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return text
}

// lastLineOf returns the line of text on which the last occurrence of
// part starts.
func lastLineOf(t *testing.T, text, part string) int {
	t.Helper()
	i := strings.LastIndex(text, part)
	if i < 0 {
		t.Fatalf("%q is not in the config file", part)
	}
	return strings.Count(text[:i], "\n") + 1
}

// load reads the configuration as the serve command does: config.Load
// with the environment (WECHAT_CONFIG naming the file, and maEnv), then
// Validate.
func (f *maFiles) load() (config.Config, error) {
	lookup := func(k string) (string, bool) {
		if k == "WECHAT_CONFIG" {
			return f.path, true
		}
		v, ok := maEnv[k]
		return v, ok
	}
	c, err := config.Load(lookup, nil)
	return c, errors.Join(err, c.Validate(Needs(c)))
}

// mustLoad is load for a configuration the test expects to be good.
func (f *maFiles) mustLoad(t *testing.T) config.Config {
	t.Helper()
	c, err := f.load()
	if err != nil {
		t.Fatalf("the config file:\n%v", err)
	}
	return c
}

// maFake is the fake WeChat platform behind an HTTP server that records
// the secret of every token request and can hold an app's token requests.
type maFake struct {
	*wechattest.Platform
	srv *httptest.Server

	mu   sync.Mutex
	used map[string][]string
	held map[string]chan struct{} // AppID → closed to let its token requests through
}

func newMAFake(t *testing.T, opts ...wechattest.Option) *maFake {
	t.Helper()
	opts = append([]wechattest.Option{
		wechattest.WithApp(maOA1, maOA1Secret), wechattest.WithApp(maOA2, maOA2Secret),
		wechattest.WithAppKind(maMini, maMiniSecret, wechattest.KindMiniProgram),
	}, opts...)
	f := &maFake{Platform: wechattest.NewPlatform(opts...), used: map[string][]string{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the platform's base URL.
func (f *maFake) URL() string { return f.srv.URL }

func (f *maFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == wechattest.PathToken {
		q := r.URL.Query()
		id, s := q.Get("appid"), q.Get("secret")
		f.mu.Lock()
		gate := f.held[id]
		f.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		f.mu.Lock()
		f.used[id] = append(f.used[id], s)
		f.mu.Unlock()
	}
	f.Platform.ServeHTTP(w, r)
}

// hold makes id's token requests wait until release is called: the
// platform answers none of them, and counts none, meanwhile.
func (f *maFake) hold(id string) (release func()) {
	gate := make(chan struct{})
	f.mu.Lock()
	if f.held == nil {
		f.held = map[string]chan struct{}{}
	}
	f.held[id] = gate
	f.mu.Unlock()
	return sync.OnceFunc(func() {
		f.mu.Lock()
		delete(f.held, id)
		f.mu.Unlock()
		close(gate)
	})
}

// secrets returns the secrets of id's token requests, in order.
func (f *maFake) secrets(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.used[id]...)
}

// fetches returns how many tokens the platform handed out to each app.
func (f *maFake) fetches() map[string]int {
	out := map[string]int{}
	for id, s := range f.Stats().Apps {
		out[id] = s.Fetches[wechattest.PathToken]
	}
	return out
}

// maDo makes a request and returns the status and the body.
func maDo(t *testing.T, method, u, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, s := range []string{maOA1Secret, maOA2Secret, maMiniSecret, maEnv["WX_OA1_SECRET_V2"], maMiniAESKey} {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("%s %s shows a secret: %s", method, u, b)
		}
	}
	return resp.StatusCode, string(b)
}

// maJSON makes a request and decodes its JSON answer.
func maJSON(t *testing.T, method, u, body string) (int, map[string]any) {
	t.Helper()
	code, b := maDo(t, method, u, body)
	var m map[string]any
	if err := json.Unmarshal([]byte(b), &m); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %s", method, u, code, b)
	}
	return code, m
}

// maToken returns the token the admin API at admin answers for app id,
// failing the test on any other answer than 200.
func maToken(t *testing.T, admin, id string) string {
	t.Helper()
	code, m := maJSON(t, "GET", "http://"+admin+"/v1/apps/"+id+"/token", "")
	tok, _ := m["access_token"].(string)
	if code != 200 || tok == "" {
		t.Fatalf("GET /v1/apps/%s/token: %d %v", id, code, m)
	}
	return tok
}

// maCallback is WeChat's side of app id's callback URL on the public
// listener.
func maCallback(public, path, token string) *wechattest.Callback {
	return &wechattest.Callback{URL: "http://" + public + path, Token: token, Deliveries: 1}
}

// maStatus is the HTTP status of err from Verify or Send: 200 for nil.
func maStatus(err error) int {
	var he *wechattest.HTTPError
	switch {
	case err == nil:
		return 200
	case errors.As(err, &he):
		return he.StatusCode
	}
	return -1
}

var maT0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// Three accounts of two kinds in one server, read from a real config file
// (secrets from the environment and from files): each has its own token
// and callback; the single-app routes name the per-app ones; the Mini
// Program has no jsapi_ticket, and its encrypted JSON pushes are answered.
func TestMultiAppServe(t *testing.T) {
	fake := newMAFake(t, wechattest.WithClock(maT0))
	files := newMAFiles(t)
	files.write(t, fake.URL(), maApp(maOA1), maApp(maOA2), maApp(maMini))
	cfg := files.mustLoad(t)
	st := startServe(t, cfg, Options{Clock: fake, Reload: files.load})
	admin := "http://" + st.admin

	// Each app its own token, the one WeChat issued it, fetched once.
	toks := map[string]string{}
	for _, id := range []string{maOA1, maOA2, maMini} {
		toks[id] = maToken(t, st.admin, id)
		if want, valid := fake.Token(id); toks[id] != want || !valid {
			t.Errorf("app %s: token %q, want WeChat's current one %q", id, toks[id], want)
		}
	}
	if toks[maOA1] == toks[maOA2] || toks[maOA2] == toks[maMini] || toks[maOA1] == toks[maMini] {
		t.Errorf("two apps share a token: %v", toks)
	}
	for _, id := range []string{maOA1, maOA2, maMini} {
		maToken(t, st.admin, id) // held: no second fetch
		if n := fake.fetches()[id]; n != 1 {
			t.Errorf("app %s: %d token fetches, want 1", id, n)
		}
	}
	code, m := maJSON(t, "GET", admin+"/v1/apps", "")
	if apps, _ := m["apps"].([]any); code != 200 || len(apps) != 3 {
		t.Fatalf("GET /v1/apps: %d %v", code, m)
	} else {
		want := []struct{ id, name, kind string }{{maOA1, "first", "official_account"}, {maOA2, "second", "official_account"}, {maMini, "mini", "mini_program"}}
		for i, w := range want {
			a, _ := apps[i].(map[string]any)
			if a["app_id"] != w.id || a["name"] != w.name || a["kind"] != w.kind || a["healthy"] != true {
				t.Errorf("GET /v1/apps: app %d is %v, want %s %s %s, healthy", i, a, w.id, w.name, w.kind)
			}
		}
	}

	// The single-app routes name the per-app ones; an unknown app is 404.
	if code, m := maJSON(t, "GET", admin+"/v1/token", ""); code != 400 || !strings.Contains(fmt.Sprint(m["error"]), "/v1/apps/{app_id}/token") {
		t.Errorf("GET /v1/token: %d %v, want 400 naming /v1/apps/{app_id}/token", code, m)
	}
	for _, p := range []string{"/v1/apps/wx9999999999999999/token", "/v1/apps/wx9999999999999999/ticket/jsapi"} {
		if code, m := maJSON(t, "GET", admin+p, ""); code != 404 || m["error"] == nil {
			t.Errorf("GET %s: %d %v, want 404", p, code, m)
		}
	}
	if code, m := maJSON(t, "GET", admin+"/healthz?app_id="+maMini, ""); code != 200 {
		t.Errorf("GET /healthz?app_id=%s: %d %v", maMini, code, m)
	}

	// Tickets: none for the Mini Program, and WeChat is not asked; an
	// official account's is WeChat's.
	for _, p := range []string{"/ticket/jsapi", "/jssdk/config?url=" + url.QueryEscape("https://example.com/")} {
		if code, m := maJSON(t, "GET", admin+"/v1/apps/"+maMini+p, ""); code != 400 || m["error"] == nil {
			t.Errorf("GET /v1/apps/%s%s: %d %v, want 400", maMini, p, code, m)
		}
	}
	if n := fake.Stats().Attempts[wechattest.PathTicket]; n != 0 {
		t.Errorf("the Mini Program's ticket routes made %d getticket calls, want none", n)
	}
	code, m = maJSON(t, "GET", admin+"/v1/apps/"+maOA1+"/ticket/jsapi", "")
	if want, _ := fake.Ticket(maOA1, "jsapi"); code != 200 || m["ticket"] == nil || m["ticket"] != want {
		t.Errorf("GET /v1/apps/%s/ticket/jsapi: %d %v, want 200 and WeChat's ticket %q", maOA1, code, m, want)
	}
	code, m = maJSON(t, "GET", admin+"/v1/apps/"+maOA2+"/jssdk/config?url="+url.QueryEscape("https://example.com/"), "")
	if code != 200 || m["appId"] != maOA2 {
		t.Errorf("GET /v1/apps/%s/jssdk/config: %d %v", maOA2, code, m)
	}

	// Callbacks: each at its path with its own token; another token there
	// is 403.
	ctx := context.Background()
	for _, c := range []struct{ path, token, other string }{
		{"/wx/oa1", maOA1Token, maOA2Token}, {"/wx/oa2", maOA2Token, maOA1Token}, {"/wx/mini", maMiniCB, maOA1Token},
	} {
		if err := maCallback(st.public, c.path, c.token).Verify(ctx); err != nil {
			t.Errorf("%s: the check with its token: %v", c.path, err)
		}
		if err := maCallback(st.public, c.path, c.other).Verify(ctx); maStatus(err) != 403 {
			t.Errorf("%s: the check with another app's token: %v, want 403", c.path, err)
		}
		if err := maCallback(st.public, c.path, "wrong-token").Verify(ctx); maStatus(err) != 403 {
			t.Errorf("%s: the check with a wrong token: %v, want 403", c.path, err)
		}
	}
	for _, c := range []struct{ path, token string }{{"/wx/oa1", maOA1Token}, {"/wx/oa2", maOA2Token}} {
		reply, err := maCallback(st.public, c.path, c.token).Send(ctx, wechattest.TextMessage("hello "+c.path))
		if err != nil || !bytes.Contains(reply, []byte("<Content><![CDATA[hello "+c.path+"]]></Content>")) {
			t.Errorf("%s: text message: %v, reply %s, want the echo", c.path, err, reply)
		}
	}
	if _, err := maCallback(st.public, "/wx/oa1", maOA2Token).Send(ctx, wechattest.TextMessage("x")); maStatus(err) != 403 {
		t.Errorf("/wx/oa1: a message signed with another app's token: %v, want 403", err)
	}
	if code, _ := maDo(t, "GET", "http://"+st.public+"/", ""); code != 404 {
		t.Errorf("GET / on the public listener: %d, want 404 (no app has that path)", code)
	}

	// The Mini Program's JSON pushes, encrypted with its EncodingAESKey:
	// the echo comes back encrypted for it, and reads as a JSON reply.
	sealer, err := wechattest.NewAESSealer(maMiniCB, maMini, maMiniAESKey)
	if err != nil {
		t.Fatal(err)
	}
	mini := maCallback(st.public, "/wx/mini", maMiniCB)
	mini.Format, mini.Sealer = wechattest.FormatJSON, sealer
	reply, err := mini.Send(ctx, wechattest.TextMessage("你好, mini"))
	if err != nil {
		t.Fatalf("encrypted JSON push: %v (reply %s)", err, reply)
	}
	var r struct{ ToUserName, FromUserName, MsgType, Content string }
	if err := json.Unmarshal(reply, &r); err != nil || r.MsgType != "text" || r.Content != "你好, mini" ||
		r.ToUserName != wechattest.DefaultOpenID || r.FromUserName != wechattest.DefaultOfficialAccount {
		t.Errorf("encrypted JSON push: the decrypted reply %s (%v), want the text echoed in JSON", reply, err)
	}
	if reply, err := mini.Send(ctx, wechattest.EventMessage("user_enter_tempsession", "")); err != nil || string(reply) != "success" {
		t.Errorf("encrypted JSON event: %q %v, want success", reply, err)
	}
	// Sealed for another AppID: refused.
	other, err := wechattest.NewAESSealer(maMiniCB, maOA1, maMiniAESKey)
	if err != nil {
		t.Fatal(err)
	}
	wrong := maCallback(st.public, "/wx/mini", maMiniCB)
	wrong.Format, wrong.Sealer = wechattest.FormatJSON, other
	if _, err := wrong.Send(ctx, wechattest.TextMessage("x")); maStatus(err) != 403 {
		t.Errorf("a push encrypted for another AppID: %v, want 403", err)
	}
	plain := maCallback(st.public, "/wx/mini", maMiniCB)
	plain.Format = wechattest.FormatJSON
	if _, err := plain.Send(ctx, wechattest.TextMessage("x")); maStatus(err) != 403 {
		t.Errorf("a plain JSON push to the Mini Program in safe mode: %v, want 403", err)
	}

	// The Mini Program in plain mode (its encoding_aes_key dropped, a
	// reload): a plain JSON push is echoed in JSON, and the reload, a
	// change of callback settings alone, fetched nothing.
	before := fake.fetches()
	files.write(t, fake.URL(), maApp(maOA1), maApp(maOA2),
		strings.Replace(maApp(maMini), "encoding_aes_key_env = \"WX_MINI_AES\"\n", "", 1))
	if code, m := maJSON(t, "POST", admin+"/v1/reload", ""); code != 200 {
		t.Fatalf("POST /v1/reload: %d %v", code, m)
	}
	reply, err = plain.Send(ctx, wechattest.TextMessage("plain mini"))
	if err != nil {
		t.Fatalf("plain JSON push: %v (reply %s)", err, reply)
	}
	if err := json.Unmarshal(reply, &r); err != nil || r.MsgType != "text" || r.Content != "plain mini" {
		t.Errorf("plain JSON push: reply %s (%v), want the text echoed in JSON", reply, err)
	}
	if got := maToken(t, st.admin, maMini); got != toks[maMini] {
		t.Errorf("the Mini Program's token after a callback-only change: %q, want the one it held", got)
	}
	if after := fake.fetches(); !mapsEqual(after, before) {
		t.Errorf("fetches %v after the reload, %v before: a callback change fetched", after, before)
	}
}

// mapsEqual reports whether two fetch counts are the same.
func mapsEqual(a, b map[string]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// maReloadDone is the result of a reload, as Options.reloaded reports it.
type maReloadDone struct {
	res reloadResult
	err error
}

// maSignal asks for a reload on hup, as SIGHUP does, and returns its
// result.
func maSignal(t *testing.T, hup chan<- os.Signal, done <-chan maReloadDone) maReloadDone {
	t.Helper()
	hup <- os.Interrupt // any value asks for a reload
	select {
	case d := <-done:
		return d
	case <-time.After(30 * time.Second):
		t.Fatal("the reload signal was not acted on")
	}
	panic("unreachable")
}

// maPost asks for a reload by POST /v1/reload, and returns its answer and
// the result the server reports.
func maPost(t *testing.T, admin string, done <-chan maReloadDone) (int, map[string]any, maReloadDone) {
	t.Helper()
	code, m := maJSON(t, "POST", admin+"/v1/reload", "")
	select {
	case d := <-done:
		return code, m, d
	case <-time.After(30 * time.Second):
		t.Fatal("POST /v1/reload reported no reload")
	}
	panic("unreachable")
}

// A reload, by POST /v1/reload and by a value on Options.ReloadOn (what
// SIGHUP is to the serve command): an added app starts, the reload itself
// fetching nothing, and is fetched once; a removed one's routes go, its
// stored token stays; a changed secret rebuilds the keeper without a
// fetch, and the next fetch uses the new secret; a broken file (bad
// syntax, or a duplicate app_id) is refused with its line, and the
// running apps keep answering.
func TestMultiAppReload(t *testing.T) {
	fake := newMAFake(t, wechattest.WithClock(maT0))
	files := newMAFiles(t)
	files.write(t, fake.URL(), maApp(maOA1), maApp(maOA2))
	hup := make(chan os.Signal)
	done := make(chan maReloadDone, 1)
	st := startServe(t, files.mustLoad(t), Options{Clock: fake, Reload: files.load, ReloadOn: hup,
		reloaded: func(res reloadResult, err error) { done <- maReloadDone{res, err} }})
	admin := "http://" + st.admin
	oa1Tok, oa2Tok := maToken(t, st.admin, maOA1), maToken(t, st.admin, maOA2)
	if code, _ := maDo(t, "GET", admin+"/v1/apps/"+maMini+"/token", ""); code != 404 {
		t.Fatalf("GET /v1/apps/%s/token before it is configured: %d, want 404", maMini, code)
	}
	ctx := context.Background()
	if err := maCallback(st.public, "/wx/mini", maMiniCB).Verify(ctx); maStatus(err) != 404 {
		t.Fatalf("the Mini Program's callback before it is configured: %v, want 404", err)
	}

	// Add the Mini Program (POST /v1/reload). WeChat's token endpoint
	// holds its requests meanwhile: the reload answers without waiting for
	// a fetch, and none has been made once it has.
	release := fake.hold(maMini)
	defer release()
	before := fake.fetches()
	files.write(t, fake.URL(), maApp(maOA1), maApp(maOA2), maApp(maMini))
	code, m, d := maPost(t, admin, done)
	if apps, _ := m["apps"].([]any); code != 200 || len(apps) != 3 || d.err != nil ||
		fmt.Sprint(d.res.Added) != "["+maMini+"]" || len(d.res.Removed)+len(d.res.Rebuilt)+len(d.res.Updated) != 0 {
		t.Fatalf("POST /v1/reload adding an app: %d %v, result %+v %v; want 200, 3 apps, %s added", code, m, d.res, d.err, maMini)
	}
	if after := fake.fetches(); !mapsEqual(after, before) {
		t.Errorf("fetches %v right after the reload, %v before: the reload fetched", after, before)
	}
	release()
	miniTok := maToken(t, st.admin, maMini)
	if want, _ := fake.Token(maMini); miniTok != want {
		t.Errorf("the added app's token %q, want WeChat's %q", miniTok, want)
	}
	maToken(t, st.admin, maMini)
	if n := fake.fetches()[maMini]; n != 1 {
		t.Errorf("the added app: %d fetches, want 1", n)
	}
	if err := maCallback(st.public, "/wx/mini", maMiniCB).Verify(ctx); err != nil {
		t.Errorf("the added app's callback: %v", err)
	}
	if got1, got2 := maToken(t, st.admin, maOA1), maToken(t, st.admin, maOA2); got1 != oa1Tok || got2 != oa2Tok {
		t.Errorf("the kept apps' tokens changed with the reload: %q %q, want %q %q", got1, got2, oa1Tok, oa2Tok)
	}

	// Remove the second account (the reload signal): its routes go, its
	// stored token stays.
	before = fake.fetches()
	files.write(t, fake.URL(), maApp(maOA1), maApp(maMini))
	if d := maSignal(t, hup, done); d.err != nil || fmt.Sprint(d.res.Removed) != "["+maOA2+"]" ||
		len(d.res.Added)+len(d.res.Rebuilt)+len(d.res.Updated) != 0 {
		t.Fatalf("reload removing an app: %+v %v, want %s removed", d.res, d.err, maOA2)
	}
	for _, p := range []string{"/token", "/ticket/jsapi", "/jssdk/config?url=https%3A%2F%2Fexample.com%2F"} {
		if code, m := maJSON(t, "GET", admin+"/v1/apps/"+maOA2+p, ""); code != 404 {
			t.Errorf("GET /v1/apps/%s%s after its removal: %d %v, want 404", maOA2, p, code, m)
		}
	}
	if code, m := maJSON(t, "POST", admin+"/v1/apps/"+maOA2+"/token/refresh", fmt.Sprintf(`{"stale":%q}`, oa2Tok)); code != 404 {
		t.Errorf("POST /v1/apps/%s/token/refresh after its removal: %d %v, want 404", maOA2, code, m)
	}
	if err := maCallback(st.public, "/wx/oa2", maOA2Token).Verify(ctx); maStatus(err) != 404 {
		t.Errorf("the removed app's callback: %v, want 404", err)
	}
	if code, m := maJSON(t, "GET", admin+"/v1/apps", ""); code != 200 || len(m["apps"].([]any)) != 2 {
		t.Errorf("GET /v1/apps after a removal: %d %v, want 2 apps", code, m)
	}
	if b, err := os.ReadFile(filepath.Join(files.store, maOA2+".txt")); err != nil || !bytes.Contains(b, []byte(oa2Tok)) {
		t.Errorf("the removed app's store: %v; holds its token: %v", err, bytes.Contains(b, []byte(oa2Tok)))
	}
	if code, body := maDo(t, "GET", admin+"/metrics", ""); code != 200 || strings.Contains(body, `app_id="`+maOA2+`"`) ||
		!strings.Contains(body, `wxcentral_app_info{app_id="`+maMini+`",kind="mini_program",name="mini"} 1`) {
		t.Errorf("GET /metrics after a removal: %d; series of the removed app %v, want none and the Mini Program's", code,
			strings.Contains(body, `app_id="`+maOA2+`"`))
	}
	if after := fake.fetches(); !mapsEqual(after, before) {
		t.Errorf("fetches %v after removing an app, %v before", after, before)
	}

	// Back again, it adopts the token it stored: no fetch.
	files.write(t, fake.URL(), maApp(maOA1), maApp(maMini), maApp(maOA2))
	if d := maSignal(t, hup, done); d.err != nil || fmt.Sprint(d.res.Added) != "["+maOA2+"]" {
		t.Fatalf("reload adding an app again: %+v %v, want %s added", d.res, d.err, maOA2)
	}
	if got := maToken(t, st.admin, maOA2); got != oa2Tok {
		t.Errorf("the app added again: token %q, want the one it stored, %q", got, oa2Tok)
	}
	if err := maCallback(st.public, "/wx/oa2", maOA2Token).Verify(ctx); err != nil {
		t.Errorf("the callback of the app added again: %v", err)
	}
	if after := fake.fetches(); !mapsEqual(after, before) {
		t.Errorf("fetches %v after adding an app again, %v before", after, before)
	}
	files.write(t, fake.URL(), maApp(maOA1), maApp(maMini))
	if d := maSignal(t, hup, done); d.err != nil || fmt.Sprint(d.res.Removed) != "["+maOA2+"]" {
		t.Fatalf("reload removing an app again: %+v %v, want %s removed", d.res, d.err, maOA2)
	}

	// A new AppSecret for the first account (reset on the platform, then
	// in the file), and a new refresh window for the Mini Program: both
	// keepers are rebuilt and adopt their stored tokens; the first
	// account's next fetch, a passive refresh, uses the new secret.
	newSecret := maEnv["WX_OA1_SECRET_V2"]
	if _, err := fake.SetSecret(maOA1, newSecret); err != nil {
		t.Fatal(err)
	}
	before = fake.fetches()
	miniRB := strings.Replace(maApp(maMini), "[[app]]\n", "[[app]]\nrefresh_before = \"7m\"\n", 1)
	files.write(t, fake.URL(), maOA1Table("WX_OA1_SECRET_V2"), miniRB)
	if d := maSignal(t, hup, done); d.err != nil || fmt.Sprint(d.res.Rebuilt) != "["+maOA1+" "+maMini+"]" ||
		len(d.res.Added)+len(d.res.Removed)+len(d.res.Updated) != 0 {
		t.Fatalf("reload with a new secret and refresh window: %+v %v, want %s and %s rebuilt", d.res, d.err, maOA1, maMini)
	}
	if after := fake.fetches(); !mapsEqual(after, before) {
		t.Errorf("fetches %v after the secret changed, %v before: the rebuild fetched", after, before)
	}
	if got := maToken(t, st.admin, maOA1); got != oa1Tok {
		t.Errorf("the rebuilt keeper's token %q, want the stored %q", got, oa1Tok)
	}
	if got := maToken(t, st.admin, maMini); got != miniTok {
		t.Errorf("the rebuilt Mini Program keeper's token %q, want the stored %q", got, miniTok)
	}
	if err := maCallback(st.public, "/wx/oa1", maOA1Token).Verify(ctx); err != nil {
		t.Errorf("the rebuilt app's callback: %v", err)
	}
	fake.Advance(10 * time.Minute) // past the guard against refreshing a token just fetched
	code, m = maJSON(t, "POST", admin+"/v1/apps/"+maOA1+"/token/refresh", fmt.Sprintf(`{"stale":%q}`, oa1Tok))
	if newTok, _ := m["access_token"].(string); code != 200 || newTok == "" || newTok == oa1Tok {
		t.Fatalf("passive refresh after the secret changed: %d %v, want a new token", code, m)
	}
	if used := fake.secrets(maOA1); len(used) != 2 || used[0] != maOA1Secret || used[1] != newSecret {
		t.Errorf("the first account's token requests used %d secrets; want the old one, then the new one (match: %v)",
			len(used), len(used) == 2 && used[0] == maOA1Secret && used[1] == newSecret)
	}
	if n := fake.fetches()[maOA1]; n != before[maOA1]+1 {
		t.Errorf("the first account: %d fetches, want %d", n, before[maOA1]+1)
	}

	// Broken files: refused with the problem at its line; every running
	// app keeps its token, and nothing is fetched.
	held := map[string]string{maOA1: maToken(t, st.admin, maOA1), maMini: maToken(t, st.admin, maMini)}
	before = fake.fetches()
	good := files.write(t, fake.URL(), maOA1Table("WX_OA1_SECRET_V2"), miniRB)
	dupTable := "[[app]]\nname = \"dup\"\napp_id = \"" + maMini + "\"\nsecret_env = \"WX_MINI_SECRET\"\n"
	for _, tt := range []struct {
		name, text, at, want string
		signal               bool
	}{
		{"syntax error", good + "[[app]]\napp_id = \"wx44444\n", "app_id = \"wx44444", "", false},
		{"syntax error, by signal", good + "[[app]]\napp_id = \"wx44444\n", "app_id = \"wx44444", "", true},
		{"duplicate app_id", good + "\n" + dupTable, "app_id = \"" + maMini + "\"", "already the app_id", false},
		{"duplicate app_id, by signal", good + "\n" + dupTable, "app_id = \"" + maMini + "\"", "already the app_id", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(files.path, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			// The bad key is the last of its text (the duplicate's).
			at := fmt.Sprintf("%s:%d", files.path, lastLineOf(t, tt.text, tt.at))
			var msg string
			if tt.signal {
				d := maSignal(t, hup, done)
				if d.err == nil {
					t.Fatalf("the reload signal with a broken file: result %+v, no error", d.res)
				}
				msg = d.err.Error()
			} else {
				code, m, d := maPost(t, admin, done)
				msg, _ = m["error"].(string)
				if code != 422 || m["reason"] != "reload_refused" || d.err == nil {
					t.Errorf("POST /v1/reload with a broken file: %d %v, want 422 reload_refused", code, m)
				}
			}
			if !strings.Contains(msg, at) || !strings.Contains(msg, tt.want) {
				t.Errorf("the refusal %q does not name %s %q", msg, at, tt.want)
			}
			for id, tok := range held {
				if got := maToken(t, st.admin, id); got != tok {
					t.Errorf("app %s after a refused reload: token %q, want %q", id, got, tok)
				}
			}
			if code, m := maJSON(t, "GET", admin+"/v1/apps", ""); code != 200 || len(m["apps"].([]any)) != 2 {
				t.Errorf("GET /v1/apps after a refused reload: %d %v, want the 2 running apps", code, m)
			}
			if err := maCallback(st.public, "/wx/oa1", maOA1Token).Verify(ctx); err != nil {
				t.Errorf("a running app's callback after a refused reload: %v", err)
			}
			if after := fake.fetches(); !mapsEqual(after, before) {
				t.Errorf("fetches %v after a refused reload, %v before", after, before)
			}
		})
	}
}

// A reload that corrects a secret WeChat rejected ends the credential
// cooldown the wrong one started: the next token request fetches at once
// with the new secret, instead of answering 503 until the pause ends.
func TestReloadNewSecretEndsCooldown(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret))
	defer fake.Close()
	const wrong = "a-wrong-secret-0123456789"
	cfgWith := func(secret string) config.Config {
		c := config.Default().WithApps(config.App{Name: "main", Kind: config.OfficialAccount, AppID: testAppID,
			Secret: config.Secret(secret), TokenAPI: "token"})
		c.APIBase, c.ConfigFile = fake.URL, "wxcentral.toml"
		return c
	}
	store := t.TempDir() + string(filepath.Separator)
	first, next := cfgWith(wrong), cfgWith(testSecret)
	first.Store, next.Store = store, store
	st := startServe(t, first, Options{Reload: func() (config.Config, error) { return next, nil }})
	tokenURL := "http://" + st.admin + "/v1/apps/" + testAppID + "/token"
	for range 2 {
		if code, body := maDo(t, "GET", tokenURL, ""); code != http.StatusServiceUnavailable && code != http.StatusBadGateway {
			t.Fatalf("with the wrong secret: %d %s, want a 5xx", code, body)
		}
	}
	if code, body := maDo(t, "GET", tokenURL, ""); !strings.Contains(body, "cooldown") {
		t.Fatalf("with the wrong secret, again: %d %s, want the cooldown", code, body)
	}
	if code, body := maDo(t, "POST", "http://"+st.admin+"/v1/reload", ""); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if code, body := maDo(t, "GET", tokenURL, ""); code != 200 {
		t.Errorf("after the reload with the right secret: %d %s, want 200 at once", code, body)
	}
}

// A reload keeps the callback handler of an app whose callback settings
// did not change, and with it the in-process retry dedupe and replay
// memory: WeChat's re-delivery of a push answered before the reload is
// answered from the dedupe, not run again. A changed callback token
// builds a new handler.
func TestReloadKeepsCallbackMemory(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret), wechattest.WithApp(maOA2, maOA2Secret))
	defer fake.Close()
	app := func(name, id, secret, token string) config.App {
		return config.App{Name: name, Kind: config.OfficialAccount, AppID: id, Secret: config.Secret(secret),
			TokenAPI: "token", CallbackPath: "/wx/" + name, CallbackToken: config.Secret(token)}
	}
	next := config.Default().WithApps(app("main", testAppID, testSecret, "cb-main"), app("other", maOA2, maOA2Secret, "cb-other"))
	next.APIBase, next.Store, next.ConfigFile = fake.URL, t.TempDir()+string(filepath.Separator), "wxcentral.toml"
	var mu sync.Mutex
	runs := map[string]int{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		runs[r.URL.Path]++
		mu.Unlock()
		io.WriteString(w, "success")
	})
	current := next
	st := startServe(t, next, Options{Handler: handler, Reload: func() (config.Config, error) { return current, nil }})
	reload := func() {
		t.Helper()
		if code, body := maDo(t, "POST", "http://"+st.admin+"/v1/reload", ""); code != 200 {
			t.Fatalf("reload: %d %s", code, body)
		}
	}
	msg := wechattest.Message{MsgType: "text", Content: "hello", MsgID: 4242}
	send := func(path, token string) {
		t.Helper()
		if _, err := maCallback(st.public, path, token).Send(t.Context(), msg); err != nil {
			t.Fatalf("push to %s: %v", path, err)
		}
	}
	send("/wx/main", "cb-main")
	send("/wx/other", "cb-other")

	// A reload that changes another app's name only.
	current = config.Default().WithApps(app("main", testAppID, testSecret, "cb-main"), app("renamed", maOA2, maOA2Secret, "cb-other"))
	current.APIBase, current.Store, current.ConfigFile = next.APIBase, next.Store, next.ConfigFile
	reload()
	send("/wx/main", "cb-main") // WeChat's re-delivery of the same push
	mu.Lock()
	if n := runs["/wx/main"]; n != 1 {
		t.Errorf("the handler ran %d times for one push delivered before and after a reload, want 1", n)
	}
	mu.Unlock()
	// A reload that changes main's secret (a new keeper) keeps its
	// callbacks too.
	current = config.Default().WithApps(app("main", testAppID, "a-new-secret-0123456789", "cb-main"), app("renamed", maOA2, maOA2Secret, "cb-other"))
	current.APIBase, current.Store, current.ConfigFile = next.APIBase, next.Store, next.ConfigFile
	reload()
	send("/wx/main", "cb-main")
	mu.Lock()
	if n := runs["/wx/main"]; n != 1 {
		t.Errorf("after a reload that rebuilt the keeper, the handler ran %d times for the one push, want 1", n)
	}
	mu.Unlock()
	send("/wx/renamed", "cb-other") // the renamed app's path moved: a new route, a new push there
	mu.Lock()
	if n := runs["/wx/renamed"]; n != 1 {
		t.Errorf("the renamed app's new path ran the handler %d times, want 1", n)
	}
	mu.Unlock()
}

// Every log line of an app's keeper and of its callbacks names the app,
// by name and AppID, so that a fleet's logs tell whose they are.
func TestAppLogLines(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret))
	defer fake.Close()
	cfg := config.Default().WithApps(config.App{Name: "main", Kind: config.OfficialAccount, AppID: testAppID,
		Secret: "a-wrong-secret-0123456789", TokenAPI: "token", CallbackPath: "/wx/main", CallbackToken: "cb-main"})
	cfg.APIBase, cfg.Store = fake.URL, t.TempDir()+string(filepath.Separator)
	var logs lockedBuffer
	st := startServe(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	maDo(t, "GET", "http://"+st.admin+"/v1/apps/"+testAppID+"/token", "") // a rejected fetch: logged by the keeper
	if err := maCallback(st.public, "/wx/main", "not-the-token").Verify(t.Context()); err == nil {
		t.Fatal("a wrong callback token passed") // a refused check: logged by the middleware
	}
	var keeper, callback int
	for line := range strings.Lines(logs.String()) {
		named := strings.Contains(line, "app=main") && strings.Contains(line, "app_id="+testAppID)
		switch {
		case strings.Contains(line, `msg="wechat: `):
			keeper++
			if !named {
				t.Errorf("a keeper line without the app: %s", line)
			}
		case strings.Contains(line, "wechat callback"):
			callback++
			if !named {
				t.Errorf("a callback line without the app: %s", line)
			}
		}
	}
	if keeper == 0 || callback == 0 {
		t.Errorf("%d keeper and %d callback lines, want some of each:\n%s", keeper, callback, logs.String())
	}
}

// A reload that changes an app's token_api fetches nothing itself; the
// app's next fetch (here a passive refresh) goes to the new endpoint.
func TestReloadTokenAPI(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret), wechattest.WithClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)))
	defer fake.Close()
	cfgWith := func(api string) config.Config {
		c := config.Default().WithApps(config.App{Name: "main", Kind: config.OfficialAccount, AppID: testAppID,
			Secret: testSecret, TokenAPI: api})
		c.APIBase, c.ConfigFile = fake.URL, "wxcentral.toml"
		return c
	}
	first, next := cfgWith("token"), cfgWith("stable")
	first.Store = t.TempDir() + string(filepath.Separator)
	next.Store = first.Store
	st := startServe(t, first, Options{Clock: fake, Reload: func() (config.Config, error) { return next, nil }})
	admin := "http://" + st.admin
	tok := maToken(t, st.admin, testAppID)
	fetches := func() (classic, stable int) {
		s := fake.Stats().Fetches
		return s[wechattest.PathToken], s[wechattest.PathStableToken]
	}
	if c, s := fetches(); c != 1 || s != 0 {
		t.Fatalf("fetches before the reload: %d classic, %d stable; want 1, 0", c, s)
	}
	if code, body := maDo(t, "POST", admin+"/v1/reload", ""); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if c, s := fetches(); c != 1 || s != 0 {
		t.Errorf("the reload fetched: %d classic, %d stable; want 1, 0", c, s)
	}
	if got := maToken(t, st.admin, testAppID); got != tok {
		t.Errorf("after the reload the token is %q, want the stored %q", got, tok)
	}
	fake.Advance(time.Minute)
	if code, m := maJSON(t, "POST", admin+"/v1/apps/"+testAppID+"/token/refresh", fmt.Sprintf(`{"stale":%q}`, tok)); code != 200 || m["access_token"] == tok {
		t.Fatalf("passive refresh after the reload: %d %v", code, m)
	}
	if c, s := fetches(); c != 1 || s != 1 {
		t.Errorf("after the passive refresh: %d classic, %d stable fetches; want 1, 1", c, s)
	}
}
