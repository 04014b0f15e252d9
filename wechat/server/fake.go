package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// FakeOptions configure FakeWechat.
type FakeOptions struct {
	// Listener is where the fake platform is served; FakeWechat closes
	// it. Required.
	Listener net.Listener
	// Platform are the options of the fake platform
	// (wechattest.NewPlatform), e.g. from wechattest.Flags.Options.
	Platform []wechattest.Option
	// Apps names the apps the platform knows, for the banner.
	Apps string
	// Out receives the banner: the API base URL to set and the control
	// plane's. Default: discard.
	Out io.Writer
	// Logger receives the platform's log lines. Default: discard.
	Logger *slog.Logger
}

// FakeWechat serves the fake WeChat platform of package wechattest alone
// (the fake-wechat command) until ctx is done, then shuts it down,
// giving requests in flight 5 s, and returns nil; it returns the error of
// a listener that fails.
func FakeWechat(ctx context.Context, o FakeOptions) error {
	if o.Listener == nil {
		return errors.New("server: FakeWechat: no listener")
	}
	out, log := o.Out, o.Logger
	if out == nil {
		out = io.Discard
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{Handler: wechattest.NewPlatform(append(o.Platform, wechattest.WithLogger(log))...),
		ReadHeaderTimeout: 5 * time.Second}
	// Listening on every address (-listen :3200), show the loopback one:
	// the control plane wants a loopback Host, and 0.0.0.0 or [::] is none.
	shown := o.Listener.Addr().String()
	if host, port, err := net.SplitHostPort(shown); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			shown = net.JoinHostPort("127.0.0.1", port)
		}
	}
	fmt.Fprintf(out, "fake WeChat API at http://%s with apps %s\nset WECHAT_API_BASE=http://%[1]s\ncontrol plane: http://%[1]s/_fake/ (stats, advance, clock, fail, invalidate, reset)\n",
		shown, o.Apps)
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(o.Listener); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("server: fake WeChat: %w", err)
	}
	return nil
}
