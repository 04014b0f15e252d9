package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The accounts of the multi-app tests: two official accounts and a Mini
// Program.
const (
	multiOA1, multiOA2, multiMini = "wx1111111111111111", "wx2222222222222222", "wx3333333333333333"
)

// multiSecrets are the AppSecrets of the accounts, which the config file
// names by secret_env (the first two) and secret_file (the Mini Program).
var multiSecrets = map[string]string{
	multiOA1:  "oa1-S3CRET-0123456789abcdef",
	multiOA2:  "oa2-S3CRET-0123456789abcdef",
	multiMini: "mini-S3CRET-0123456789abcdef",
}

// multiEnv is the environment the config file's *_env keys name.
var multiEnv = map[string]string{
	"WX_OA1_SECRET": multiSecrets[multiOA1],
	"WX_OA2_SECRET": multiSecrets[multiOA2],
	"WX_OA1_CB":     "oa1-callback-token",
	"WX_OA2_CB":     "oa2-callback-token",
}

// multiTable returns an app's [[app]] table.
func multiTable(id string) string {
	switch id {
	case multiOA1:
		return "[[app]]\nname = \"first\"\napp_id = \"" + id + "\"\nsecret_env = \"WX_OA1_SECRET\"\ncallback_path = \"/wx/oa1\"\ncallback_token_env = \"WX_OA1_CB\"\n"
	case multiOA2:
		return "[[app]]\nname = \"second\"\napp_id = \"" + id + "\"\nsecret_env = \"WX_OA2_SECRET\"\ncallback_path = \"/wx/oa2\"\ncallback_token_env = \"WX_OA2_CB\"\n"
	case multiMini:
		return "[[app]]\nname = \"mini\"\nkind = \"mini_program\"\napp_id = \"" + id + "\"\nsecret_file = \"mini.secret\"\n"
	}
	panic("no app " + id)
}

// multiConfig is a config file and the store directory of its apps.
type multiConfig struct {
	path, store, globals string
}

// newMultiConfig makes the directory of a config file: the Mini
// Program's secret file and the store directory. extra are global
// settings added to api_base and store.
func newMultiConfig(t *testing.T, apiBase, extra string) *multiConfig {
	t.Helper()
	dir := t.TempDir()
	c := &multiConfig{path: filepath.Join(dir, "wxcentral.toml"), store: filepath.Join(dir, "tokens") + "/"}
	if err := os.Mkdir(c.store, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mini.secret"), []byte(multiSecrets[multiMini]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.globals = fmt.Sprintf("api_base = %q\nstore = %q\n%s\n", apiBase, c.store, extra)
	return c
}

// write writes the config file with the tables of the apps ids and
// returns its text.
func (c *multiConfig) write(t *testing.T, ids ...string) string {
	t.Helper()
	text := c.globals
	for _, id := range ids {
		text += "\n" + multiTable(id)
	}
	c.writeText(t, text)
	return text
}

func (c *multiConfig) writeText(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(c.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startMulti starts `wxcentral serve` on free ports with the config file
// and waits until it listens.
func startMulti(t *testing.T, c *multiConfig) *proc {
	t.Helper()
	pub, adm := freeAddr(t), freeAddr(t)
	env := map[string]string{"WECHAT_CONFIG": c.path, "WECHAT_LISTEN": pub, "WECHAT_ADMIN_LISTEN": adm, "WECHAT_ADMIN_KEY": adminKey}
	for k, v := range multiEnv {
		env[k] = v
	}
	p := start(t, env, "serve")
	p.public, p.admin = "http://"+pub, "http://"+adm
	waitFor(t, "the server to listen", func() bool {
		select {
		case <-p.done:
			t.Fatalf("wxcentral serve exited: %v\n%s", p.err, p.stderr.String())
		default:
		}
		resp, err := http.Get(p.admin + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// multiToken returns p's token for app id, or "" with the status.
func multiToken(t *testing.T, p *proc, id string) (string, int) {
	t.Helper()
	code, m := call(t, "GET", p.admin+"/v1/apps/"+id+"/token", adminKey, "")
	tok, _ := m["access_token"].(string)
	return tok, code
}

// multiFetches returns the tokens WeChat handed out to each app.
func multiFetches(fake *wechattest.Server) map[string]int {
	out := map[string]int{}
	for id, s := range fake.Stats().Apps {
		out[id] = s.Fetches[wechattest.PathToken]
	}
	return out
}

// multiNoSecret fails t if text shows an AppSecret or the admin key.
func multiNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for id, s := range multiSecrets {
		if strings.Contains(text, s) {
			t.Errorf("%s shows the AppSecret of %s", what, id)
		}
	}
	if strings.Contains(text, adminKey) {
		t.Errorf("%s shows the admin key", what)
	}
}

// Two server processes keep three apps on one store directory, with
// tokens that live 6 s: each app's tokens are fetched once per refresh
// cycle across both processes, and WeChat rejects none of the business
// calls made with the tokens either process hands out.
func TestMultiAppTwoProcessesOneStore(t *testing.T) {
	if testing.Short() {
		t.Skip("TestMultiAppTwoProcessesOneStore: slow (two server processes run for 9 s of real token lifetimes); run without -short")
	}
	serial(t)
	const lifetime, run = 6 * time.Second, 9 * time.Second
	fake := wechattest.NewServer(wechattest.WithApp(multiOA1, multiSecrets[multiOA1]), wechattest.WithApp(multiOA2, multiSecrets[multiOA2]),
		wechattest.WithAppKind(multiMini, multiSecrets[multiMini], wechattest.KindMiniProgram), wechattest.WithTokenLifetime(lifetime))
	defer fake.Close()
	cfg := newMultiConfig(t, fake.URL, `refresh_before = "3s"`)
	cfg.write(t, multiOA1, multiOA2, multiMini)
	servers := []*proc{startMulti(t, cfg), startMulti(t, cfg)}
	ids := []string{multiOA1, multiOA2, multiMini}

	// Watch WeChat's current token of each app: each change is a fetch.
	var (
		mu      sync.Mutex
		changes = map[string][]time.Time{}
	)
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := map[string]string{}
		for ctx.Err() == nil {
			for _, id := range ids {
				if tok, _ := fake.Token(id); tok != last[id] {
					mu.Lock()
					changes[id] = append(changes[id], time.Now())
					mu.Unlock()
					last[id] = tok
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// Business servers: each asks one process for an app's token and
	// calls WeChat with it, with no retry.
	var calls, failed atomic.Int64
	for _, p := range servers {
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					calls.Add(1)
					tok, code := multiToken(t, p, id)
					if code != 200 {
						failed.Add(1)
						t.Errorf("GET /v1/apps/%s/token from %s: %d", id, p.admin, code)
						return
					}
					code, body := get(t, fake.URL+wechattest.PathAPIDomainIP+"?access_token="+url.QueryEscape(tok))
					if code != 200 || !strings.Contains(body, `"ip_list"`) {
						failed.Add(1)
						t.Errorf("business call of %s with the token from %s: %d %s", id, p.admin, code, body)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
		}
	}
	wg.Wait()

	st := fake.Stats()
	t.Logf("%d business calls, %d failed; fetches %v; rejected %v", calls.Load(), failed.Load(), multiFetches(fake), st.Rejected)
	if failed.Load() != 0 || calls.Load() < 100 {
		t.Errorf("%d of %d business calls failed", failed.Load(), calls.Load())
	}
	for code, n := range st.Rejected {
		if n != 0 {
			t.Errorf("WeChat rejected %d business calls with %d", n, code)
		}
	}
	for _, id := range ids {
		a := st.Apps[id]
		if n := a.Rejected[40001] + a.Rejected[42001]; n != 0 {
			t.Errorf("app %s: WeChat rejected %d business calls' tokens (%v)", id, n, a.Rejected)
		}
		if a.Accepted == 0 {
			t.Errorf("app %s: no business call reached WeChat", id)
		}
		// A cycle is the life less a point of the refresh window's
		// first half (spread per app): 3 to 4.5 s. Two fetches less than a
		// second apart are two in one cycle.
		cs := changes[id]
		for i := 1; i < len(cs); i++ {
			if gap := cs[i].Sub(cs[i-1]); gap < time.Second {
				t.Errorf("app %s: fetches %d and %d are %v apart: two fetches in one cycle", id, i-1, i, gap)
			}
		}
		if n := a.Fetches[wechattest.PathToken]; n < 2 || n > 5 {
			t.Errorf("app %s: %d fetches in %v with a 3 to 4.5 s cycle, want 2 to 5", id, n, run)
		}
	}
	for _, p := range servers {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t, 15*time.Second); code != 0 {
			t.Errorf("exit status %d after SIGTERM, want 0", code)
		}
		multiNoSecret(t, "the log", p.stderr.String())
	}
}

// SIGHUP makes `wxcentral serve` re-read its config file with the same
// environment: an added app (its secret from a file) starts and is
// fetched once, a removed one's routes go while its stored token stays;
// a broken file is refused, logged with its line (SIGHUP) or answered 422
// with it (POST /v1/reload), and the running apps keep answering.
func TestMultiAppReloadSIGHUP(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(multiOA1, multiSecrets[multiOA1]), wechattest.WithApp(multiOA2, multiSecrets[multiOA2]),
		wechattest.WithAppKind(multiMini, multiSecrets[multiMini], wechattest.KindMiniProgram))
	defer fake.Close()
	cfg := newMultiConfig(t, fake.URL, "")
	cfg.write(t, multiOA1, multiOA2)
	p := startMulti(t, cfg)
	appsServed := func() int {
		code, m := call(t, "GET", p.admin+"/v1/apps", adminKey, "")
		apps, _ := m["apps"].([]any)
		if code != 200 {
			t.Fatalf("GET /v1/apps: %d %v", code, m)
		}
		return len(apps)
	}
	held := map[string]string{}
	for _, id := range []string{multiOA1, multiOA2} {
		tok, code := multiToken(t, p, id)
		if code != 200 || tok == "" {
			t.Fatalf("GET /v1/apps/%s/token: %d", id, code)
		}
		held[id] = tok
	}
	if _, code := multiToken(t, p, multiMini); code != 404 {
		t.Fatalf("GET /v1/apps/%s/token before it is configured: %d, want 404", multiMini, code)
	}

	// SIGHUP adds the Mini Program and removes the second account.
	before := multiFetches(fake)
	cfg.write(t, multiOA1, multiMini)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload to remove an app", func() bool {
		_, code := multiToken(t, p, multiOA2)
		return code == 404
	})
	if n := appsServed(); n != 2 {
		t.Errorf("GET /v1/apps after the reload: %d apps, want 2", n)
	}
	tok, code := multiToken(t, p, multiMini)
	if want, _ := fake.Token(multiMini); code != 200 || tok != want {
		t.Errorf("the added Mini Program's token: %d %q, want WeChat's %q", code, tok, want)
	}
	multiToken(t, p, multiMini)
	after := multiFetches(fake)
	if after[multiMini] != 1 || after[multiOA1] != before[multiOA1] || after[multiOA2] != before[multiOA2] {
		t.Errorf("fetches %v after the reload, %v before: want one for the added app and none for the others", after, before)
	}
	if tok, code := multiToken(t, p, multiOA1); code != 200 || tok != held[multiOA1] {
		t.Errorf("the kept app's token after the reload: %d, changed %v", code, tok != held[multiOA1])
	}
	if code, _ := call(t, "GET", p.admin+"/v1/apps/"+multiMini+"/ticket/jsapi", adminKey, ""); code != 400 {
		t.Errorf("the added Mini Program's ticket: %d, want 400", code)
	}
	ts := fmt.Sprint(time.Now().Unix())
	if code, _ := get(t, p.public+"/wx/oa2?signature="+util.Signature(multiEnv["WX_OA2_CB"], ts, "7")+"&timestamp="+ts+"&nonce=7&echostr=x"); code != 404 {
		t.Errorf("the removed app's callback: %d, want 404", code)
	}
	if code, body := get(t, p.public+"/wx/oa1?signature="+util.Signature(multiEnv["WX_OA1_CB"], ts, "7")+"&timestamp="+ts+"&nonce=7&echostr=still-here"); code != 200 || body != "still-here" {
		t.Errorf("the kept app's callback: %d %q", code, body)
	}
	if b, err := os.ReadFile(filepath.Join(cfg.store, multiOA2+".txt")); err != nil || !strings.Contains(string(b), held[multiOA2]) {
		t.Errorf("the removed app's stored token: %v, kept %v", err, strings.Contains(string(b), held[multiOA2]))
	}

	// A syntax error, by SIGHUP: logged with its line, nothing changes.
	before = multiFetches(fake)
	good := cfg.write(t, multiOA1, multiMini)
	bad := good + "\n[[app]]\napp_id = \"wx44444\n"
	cfg.writeText(t, bad)
	at := fmt.Sprintf("%s:%d", cfg.path, strings.Count(bad, "\n"))
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload to be refused", func() bool { return strings.Contains(p.stderr.String(), "reload refused") })
	if logs := p.stderr.String(); !strings.Contains(logs, at) {
		t.Errorf("the log of the refused reload does not name %s:\n%s", at, logs)
	}
	// A duplicate app_id, by POST /v1/reload: 422 with its line.
	dup := good + "\n[[app]]\nname = \"dup\"\napp_id = \"" + multiOA1 + "\"\nsecret_env = \"WX_OA1_SECRET\"\n"
	cfg.writeText(t, dup)
	at = fmt.Sprintf("%s:%d", cfg.path, strings.Count(dup[:strings.LastIndex(dup, "app_id = ")], "\n")+1)
	code, m := call(t, "POST", p.admin+"/v1/reload", adminKey, "")
	if msg, _ := m["error"].(string); code != 422 || m["reason"] != "reload_refused" || !strings.Contains(msg, at) || !strings.Contains(msg, "already the app_id") {
		t.Errorf("POST /v1/reload with a duplicate app_id: %d %v, want 422 naming %s", code, m, at)
	}
	for _, id := range []string{multiOA1, multiMini} {
		if _, code := multiToken(t, p, id); code != 200 {
			t.Errorf("app %s after the refused reloads: %d", id, code)
		}
	}
	if n := appsServed(); n != 2 {
		t.Errorf("GET /v1/apps after the refused reloads: %d apps, want 2", n)
	}
	if after := multiFetches(fake); after[multiOA1] != before[multiOA1] || after[multiMini] != before[multiMini] {
		t.Errorf("fetches %v after the refused reloads, %v before", after, before)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	multiNoSecret(t, "the log", p.stderr.String())
}
