package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The made-up account of the demo that the fake-wechat command knows by
// default. The fake platform knows it; WeChat does not.
const (
	DemoAppID         = "wx00000000demo0001"
	DemoAppSecret     = "demo-app-secret-not-a-real-one"
	demoCallbackToken = "wxcentral-demo-token"
)

// A demoApp is one made-up account of the demo.
type demoApp struct {
	name, id, secret, callbackToken, aesKey string
	kind                                    config.AppKind
}

// demoApps are the demo's accounts: two official accounts and a Mini
// Program, whose pushes are JSON in safe mode.
var demoApps = []demoApp{
	{"main", DemoAppID, DemoAppSecret, demoCallbackToken, "", config.OfficialAccount},
	{"test", "wx00000000demo0002", "demo-test-secret-not-a-real-one", "wxcentral-demo-test-token", "", config.OfficialAccount},
	{"shop", "wx00000000demo0003", "demo-shop-secret-not-a-real-one", "wxcentral-demo-shop-token",
		"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", config.MiniProgram},
}

// demoConfig is the demo's config file, with the accounts' made-up
// secrets in it (the file is written readable by its owner only).
func demoConfig(apiBase, listen, adminListen, store string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# The wxcentral demo's accounts: edit this file, then POST /v1/reload.\n")
	fmt.Fprintf(&b, "api_base = %q\nlisten = %q\nadmin_listen = %q\nstore = %q\n", apiBase, listen, adminListen, store)
	for _, a := range demoApps {
		fmt.Fprintf(&b, "\n[[app]]\nname = %q\nkind = %q\napp_id = %q\nsecret = %q\ncallback_path = %q\ncallback_token = %q\n",
			a.name, a.kind, a.id, a.secret, "/wechat/"+a.name, a.callbackToken)
		if a.aesKey != "" {
			fmt.Fprintf(&b, "encoding_aes_key = %q\n", a.aesKey)
		}
	}
	return b.String()
}

// DemoOptions configure Demo. The zero value is usable.
type DemoOptions struct {
	// Out receives the walkthrough. Default: standard output.
	Out io.Writer
	// Logger receives the server's log lines. Default: text on standard
	// error.
	Logger *slog.Logger
	// Listen and AdminListen are tried first; when taken, a free port on
	// 127.0.0.1 is used instead. Defaults 127.0.0.1:3100 and
	// 127.0.0.1:3101.
	Listen, AdminListen string
	// Ready, if set, is called with the admin API's base URL once the
	// demo serves.
	Ready func(adminURL string)
	// Command is the command line that runs wxcentral, for the
	// walkthrough's simulate line. Default: the running executable's path
	// (os.Executable), which is wxcentral when the demo command runs.
	Command string
}

// Demo runs the central control server (Serve) against a fake WeChat
// platform started in-process (package wechattest) with three made-up
// accounts (two official accounts and a Mini Program) in a config file,
// a file store of one file per app in a temporary directory, and the
// server on its usual ports (or free ones when those are taken). Once the
// first token is held it prints a walkthrough with curl lines for the
// admin API of each app and a simulate line for each app's callback, each
// of which works as pasted into a shell (the passive refresh line carries
// the token just fetched), runs until ctx is done, and removes the
// temporary directory. The config file can be edited and reloaded (POST
// /v1/reload). It needs no WeChat account and no network.
func Demo(ctx context.Context, o DemoOptions) error {
	out := o.Out
	if out == nil {
		out = os.Stdout
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	listen, adminListen := o.Listen, o.AdminListen
	if listen == "" {
		listen = "127.0.0.1:3100"
	}
	if adminListen == "" {
		adminListen = "127.0.0.1:3101"
	}

	var fakeOpts []wechattest.Option
	for _, a := range demoApps {
		fakeOpts = append(fakeOpts, wechattest.WithAppKind(a.id, a.secret, wechattest.Kind(a.kind)))
	}
	fake := wechattest.NewServer(fakeOpts...)
	defer fake.Close()
	dir, err := os.MkdirTemp("", "wxcentral-demo-")
	if err != nil {
		return fmt.Errorf("server: demo: %w", err)
	}
	defer os.RemoveAll(dir)
	storeDir := filepath.Join(dir, "tokens") + string(filepath.Separator)
	if err := os.Mkdir(storeDir, 0o700); err != nil {
		return fmt.Errorf("server: demo: %w", err)
	}

	pub, err := listenOrFree(listen)
	if err != nil {
		return err
	}
	defer pub.Close() // Serve closes it too; this covers the paths before Serve
	adm, err := listenOrFree(adminListen)
	if err != nil {
		return err
	}
	defer adm.Close()

	// The config file, read as the serve command reads WECHAT_CONFIG.
	file := filepath.Join(dir, "wxcentral.toml")
	text := demoConfig(fake.URL, pub.Addr().String(), adm.Addr().String(), storeDir)
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		return fmt.Errorf("server: demo: %w", err)
	}
	load := func() (config.Config, error) {
		env := map[string]string{"WECHAT_CONFIG": file}
		c, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil)
		return c, errors.Join(err, c.Validate(Needs(c)))
	}
	cfg, err := load()
	if err != nil {
		return fmt.Errorf("server: demo: %w", err)
	}

	// The first app's store starts with a token the fake issued a minute
	// ago, as a server that ran before would hold, so that the
	// walkthrough's passive refresh line may fetch at once: fetches are
	// at least 10 s apart.
	primary := demoApps[0]
	now := fake.Now()
	seed := wechat.Credential{Value: fake.IssueToken(primary.id), ExpiresAt: now.Add(7140 * time.Second), FetchedAt: now.Add(-time.Minute)}
	if err := wechat.NewFileStore(cfg.StoreFor(primary.id), log).Save(ctx, wechat.KindAccessToken, seed); err != nil {
		return fmt.Errorf("server: demo: seeding the store: %w", err)
	}

	command := o.Command
	if command == "" {
		exe, err := os.Executable()
		if err != nil {
			exe = "wxcentral"
		}
		command = shellQuote(exe)
	}
	ready := func(public, admin net.Addr) {
		adminURL := "http://" + admin.String()
		token, err := demoToken(ctx, adminURL+"/v1/apps/"+primary.id+"/token")
		if err != nil {
			log.Warn("server: demo: no first token yet; the refresh line below needs a token from GET /v1/apps/"+primary.id+"/token", "err", err)
			token = "<access_token from GET /v1/apps/" + primary.id + "/token>"
		}
		var apps, simulate strings.Builder
		for _, a := range demoApps {
			cb := "http://" + public.String() + "/wechat/" + a.name
			mode := "XML pushes"
			line := fmt.Sprintf("  %s simulate -url %s -token %s -message hello\n", command, cb, a.callbackToken)
			if a.aesKey != "" {
				mode = "JSON pushes, safe mode"
				line = fmt.Sprintf("  %s simulate -url %s -token %s -aes-key %s -appid %s -format json -message hello\n",
					command, cb, a.callbackToken, a.aesKey, a.id)
			}
			fmt.Fprintf(&apps, "  %-5s %-17s %s  callback %s (%s)\n", a.name, a.kind, a.id, cb, mode)
			simulate.WriteString(line)
		}
		r := strings.NewReplacer("FAKE", fake.URL, "MAIN", primary.id, "TEST", demoApps[1].id, "SHOP", demoApps[2].id,
			"STORE", storeDir, "CONFIG", file, "ADMIN", adminURL, "PAGE", url.QueryEscape("https://example.com/page?id=7"),
			"ACCESS", token, "SECRETMAIN", url.QueryEscape(primary.secret), "APPS", apps.String(), "SIMULATE", simulate.String())
		r.WriteString(out, `
wxcentral demo: three made-up accounts, no WeChat account needed
  fake WeChat API:  FAKE
  config file:      CONFIG
  token store:      STORE
  admin API:        ADMIN
  status page:      ADMIN/status (open it in a browser)

APPS
  current token of MAIN: ACCESS

Try, in another terminal:
  curl -s ADMIN/v1/apps
  curl -s ADMIN/v1/apps/MAIN/token
  curl -s -X POST -H 'Content-Type: application/json' -d '{"stale":"ACCESS"}' ADMIN/v1/apps/MAIN/token/refresh
  curl -s ADMIN/v1/apps/MAIN/ticket/jsapi
  curl -s 'ADMIN/v1/apps/MAIN/jssdk/config?url=PAGE'
  curl -s ADMIN/v1/apps/TEST/token
  curl -s ADMIN/v1/apps/SHOP/token
  curl -s ADMIN/healthz
  curl -s ADMIN/metrics | grep -E '^wxcentral_(token_fetches_total|token_expiry_seconds|keeper_up)' | grep -v ' 0$'
  curl -s -X POST ADMIN/v1/reload
Any WeChat SDK, by its API base URL alone: the gateway answers WeChat's own API
with these tokens (the demo's secrets are made up):
  curl -s 'ADMIN/cgi-bin/token?grant_type=client_credential&appid=MAIN&secret=SECRETMAIN'
  curl -s 'ADMIN/cgi-bin/getcallbackip?access_token=ACCESS'
SIMULATE
A passive refresh (POST .../token/refresh) fetches only when "stale" is the
token the store still holds, and at most once per 10 s; any other token gets
the current one back. A Mini Program has no jsapi_ticket: its ticket route
answers 400. Edit the config file (add an [[app]] the fake knows, change a
name) and POST /v1/reload, or send SIGHUP to a server run with -config.
Press Ctrl-C to stop; the temporary directory is removed.

`)
		if o.Ready != nil {
			o.Ready(adminURL)
		}
	}
	return Serve(ctx, cfg, Options{Logger: log, PublicListener: pub, AdminListener: adm, Ready: ready, Reload: load})
}

// listenOrFree listens on addr, or on a free port of 127.0.0.1 when addr
// is taken.
func listenOrFree(addr string) (net.Listener, error) {
	if l, err := net.Listen("tcp", addr); err == nil {
		return l, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("server: demo: no free port on 127.0.0.1: %w", err)
	}
	return l, nil
}

// demoToken asks the demo's own admin API for the first token at
// tokenURL, waiting for it at most 15 s.
func demoToken(ctx context.Context, tokenURL string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tokenURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil {
		return "", fmt.Errorf("GET %s: %s: %w", tokenURL, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", fmt.Errorf("GET %s: %s: %s", tokenURL, resp.Status, body.Error)
	}
	return body.AccessToken, nil
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and -_./:=+,@.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-_./:=+,@", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
