package server

import (
	"context"
	"encoding/json"
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

// The made-up account of the demo. The fake platform knows it; WeChat
// does not.
const (
	DemoAppID         = "wx00000000demo0001"
	DemoAppSecret     = "demo-app-secret-not-a-real-one"
	demoCallbackToken = "wxcentral-demo-token"
)

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

// Demo runs the central control server (Serve) against a fake WeChat platform
// started in-process (package wechattest) with a made-up app, a file store
// in a temporary directory, and the server on its usual ports (or free
// ones when those are taken). Once the first token is held it prints a
// walkthrough with curl lines for the admin API and a simulate line for
// the callback, each of which works as pasted into a shell (the passive
// refresh line carries the token just fetched), runs until ctx is done,
// and removes the temporary directory. It needs no WeChat account and no
// network.
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

	fake := wechattest.NewServer(wechattest.WithApp(DemoAppID, DemoAppSecret))
	defer fake.Close()
	dir, err := os.MkdirTemp("", "wxcentral-demo-")
	if err != nil {
		return fmt.Errorf("server: demo: %w", err)
	}
	defer os.RemoveAll(dir)

	// The store starts with a token the fake issued a minute ago, as a
	// server that ran before would hold, so that the walkthrough's
	// passive refresh line may fetch at once: fetches are at least 10 s
	// apart.
	cfg := config.Default()
	cfg.Store = filepath.Join(dir, "wechat.txt")
	now := fake.Now()
	seed := wechat.Credential{Value: fake.IssueToken(DemoAppID), ExpiresAt: now.Add(7140 * time.Second), FetchedAt: now.Add(-time.Minute)}
	if err := wechat.NewFileStore(cfg.Store, log).Save(ctx, wechat.KindAccessToken, seed); err != nil {
		return fmt.Errorf("server: demo: seeding the store: %w", err)
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

	cfg.AppID = DemoAppID
	cfg.AppSecret = DemoAppSecret
	cfg.Token = demoCallbackToken
	cfg.APIBase = fake.URL
	cfg.Listen = pub.Addr().String()
	cfg.AdminListen = adm.Addr().String()

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
		callbackURL := "http://" + public.String() + cfg.CallbackPath
		page := url.QueryEscape("https://example.com/page?id=7")
		token, err := demoToken(ctx, adminURL)
		if err != nil {
			log.Warn("server: demo: no first token yet; the refresh line below needs a token from GET /v1/token", "err", err)
			token = "<access_token from GET /v1/token>"
		}
		r := strings.NewReplacer("FAKE", fake.URL, "APPID", DemoAppID, "STORE", cfg.Store,
			"CALLBACK", callbackURL, "TOKEN", demoCallbackToken, "ADMIN", adminURL, "PAGE", page,
			"ACCESS", token, "WXCENTRAL", command)
		r.WriteString(out, `
wxcentral demo: no WeChat account needed
  fake WeChat API:  FAKE (app APPID)
  token store:      STORE
  callback URL:     CALLBACK (token TOKEN)
  admin API:        ADMIN

  current token:    ACCESS

Try, in another terminal:
  curl -s ADMIN/v1/token
  curl -s -X POST -H 'Content-Type: application/json' -d '{"stale":"ACCESS"}' ADMIN/v1/token/refresh
  curl -s ADMIN/v1/ticket/jsapi
  curl -s 'ADMIN/v1/jssdk/config?url=PAGE'
  curl -s ADMIN/healthz
  curl -s ADMIN/metrics | grep -E '^wxcentral_(token_fetches_total|token_refreshes_total|token_quota_used|token_expiry_seconds|keeper_up)' | grep -v ' 0$'
  WXCENTRAL simulate -url CALLBACK -token TOKEN -message hello

A passive refresh (POST /v1/token/refresh) fetches only when "stale" is the
token the store still holds, and at most once per 10 s; any other token gets
the current one back (so the refresh line fetches once, then answers the new
token). Press Ctrl-C to stop; the temporary directory is removed.

`)
		if o.Ready != nil {
			o.Ready(adminURL)
		}
	}
	return Serve(ctx, cfg, Options{Logger: log, PublicListener: pub, AdminListener: adm, Ready: ready})
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

// demoToken asks the demo's own admin API for the first token, waiting
// for it at most 15 s.
func demoToken(ctx context.Context, adminURL string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/v1/token", nil)
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
		return "", fmt.Errorf("GET /v1/token: %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", fmt.Errorf("GET /v1/token: %s: %s", resp.Status, body.Error)
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
