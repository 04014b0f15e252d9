package central

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The made-up account of the demo. The fake platform knows it; WeChat
// does not.
const (
	DemoAppID     = "wx00000000demo0001"
	DemoAppSecret = "demo-app-secret-not-a-real-one"
	DemoToken     = "wxcentral-demo-token"
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
}

// Demo runs the central control server against a fake WeChat platform
// started in-process (package wechattest) with a made-up app, a file store
// in a temporary directory, and the server on its usual ports (or free
// ones when those are taken). It prints a walkthrough with curl lines for
// the admin API and a simulate line for the callback, runs until ctx is
// done, and removes the temporary directory. It needs no WeChat account
// and no network.
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
		return fmt.Errorf("central: demo: %w", err)
	}
	defer os.RemoveAll(dir)

	pub, err := listenOrFree(listen)
	if err != nil {
		return err
	}
	adm, err := listenOrFree(adminListen)
	if err != nil {
		pub.Close()
		return err
	}

	cfg := config.Default()
	cfg.AppID = DemoAppID
	cfg.AppSecret = DemoAppSecret
	cfg.Token = DemoToken
	cfg.APIBase = fake.URL
	cfg.Store = filepath.Join(dir, "wechat.txt")
	cfg.Listen = pub.Addr().String()
	cfg.AdminListen = adm.Addr().String()

	ready := func(public, admin net.Addr) {
		adminURL := "http://" + admin.String()
		callbackURL := "http://" + public.String() + cfg.CallbackPath
		page := url.QueryEscape("https://example.com/page?id=7")
		r := strings.NewReplacer("FAKE", fake.URL, "APPID", DemoAppID, "STORE", cfg.Store,
			"CALLBACK", callbackURL, "TOKEN", DemoToken, "ADMIN", adminURL, "PAGE", page)
		r.WriteString(out, `
wxcentral demo: no WeChat account needed
  fake WeChat API:  FAKE (app APPID)
  token store:      STORE
  callback URL:     CALLBACK (token TOKEN)
  admin API:        ADMIN

Try, in another terminal:
  curl -s ADMIN/v1/token
  curl -s -X POST -H 'Content-Type: application/json' -d '{"stale":"<access_token from above>"}' ADMIN/v1/token/refresh
  curl -s ADMIN/v1/ticket/jsapi
  curl -s 'ADMIN/v1/jssdk/config?url=PAGE'
  curl -s ADMIN/healthz
  curl -s ADMIN/metrics | grep ^wxcentral_
  go run . simulate -url CALLBACK -token TOKEN

A passive refresh (POST /v1/token/refresh) fetches only when "stale" is the
token the store still holds, and at most once per 10 s; any other token gets
the current one back. Press Ctrl-C to stop; the temporary directory is removed.

`)
		if o.Ready != nil {
			o.Ready(adminURL)
		}
	}
	return Serve(ctx, cfg, ServeOptions{Logger: log, PublicListener: pub, AdminListener: adm, Ready: ready})
}

// listenOrFree listens on addr, or on a free port of 127.0.0.1 when addr
// is taken.
func listenOrFree(addr string) (net.Listener, error) {
	if l, err := net.Listen("tcp", addr); err == nil {
		return l, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("central: demo: no free port on 127.0.0.1: %w", err)
	}
	return l, nil
}
