package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"golang.org/x/sync/errgroup"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/msgcrypt"
	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/wechat/central"
)

// Options are the parts of Serve that are not configuration. The zero
// value is usable.
type Options struct {
	// Logger receives the server's log lines. Default: cfg.NewLogger on
	// standard error.
	Logger *slog.Logger

	// PublicListener and AdminListener, if set, are used instead of
	// listening on cfg.Listen and cfg.AdminListen. Serve closes them.
	PublicListener, AdminListener net.Listener

	// Handler answers the WeChat callbacks that pass the callback
	// middleware (middleware.Verify, with the parsed message in the
	// request's context: message.FromContext). Default: ReferenceHandler,
	// an echo bot.
	Handler http.Handler

	// HTTPClient makes the calls to WeChat. Default: the keeper's.
	HTTPClient *http.Client

	// Ready, if set, is called once both listeners accept connections,
	// with their addresses (admin is nil when the admin API is off).
	Ready func(public, admin net.Addr)

	// ShutdownTimeout bounds the shutdown once ctx is done. Default 20 s.
	// The listeners stop accepting at once; requests in flight have the
	// first half of it to finish, then those still waiting (on a slow
	// WeChat, say) are cancelled and answered 503 with
	// central.ErrShuttingDown.
	ShutdownTimeout time.Duration

	// Clock, if set, tells the token keeper and the admin API the time
	// (a *wechattest.Server is one). Default: the system clock.
	Clock util.Clock

	// Reload, if set, re-reads the configuration (config.Load and
	// Validate, as the serve command does) for a reload: on POST
	// /v1/reload and on every value from ReloadOn. Only a server whose
	// configuration names a config file (WECHAT_CONFIG) reloads.
	Reload func() (config.Config, error)

	// ReloadOn, if set, asks for a reload at each value received: the
	// serve command passes SIGHUP (signal.Notify).
	ReloadOn <-chan os.Signal

	// adminBuilt, if set, is called with the admin API once it is built:
	// tests follow the keeper it serves.
	adminBuilt func(*central.Admin)

	// reloaded, if set, is called after each reload with its result:
	// tests wait for a SIGHUP's.
	reloaded func(reloadResult, error)
}

// maxAppLines is the largest fleet whose apps Serve lists at INFO when it
// starts; a larger one lists them at DEBUG.
const maxAppLines = 20

// Timeouts of the two HTTP servers. WeChat waits 5 s for a callback; an
// admin request may wait for a refresh (RefreshTimeout, 30 s).
const (
	readHeaderTimeout  = 5 * time.Second
	publicWriteTimeout = 15 * time.Second
	adminWriteTimeout  = 40 * time.Second
	idleTimeout        = 2 * time.Minute
	adminTimeout       = 30 * time.Second
)

// Header limits of the two HTTP servers, instead of net/http's 1 MiB: each
// connection still sending its header holds a buffer of up to this size,
// so the 1 MiB default lets a few hundred unauthenticated connections take
// hundreds of MiB. A WeChat callback's request line and header are well
// under 2 KiB; an admin request carries at most a bearer key.
const (
	publicMaxHeaderBytes = 16 << 10
	adminMaxHeaderBytes  = 64 << 10
)

// Serve runs the central control server described by cfg until ctx is
// done, then shuts down gracefully (in-flight requests finish) and
// returns nil.
//
// Serve keeps every app of cfg (cfg.AppList: the [[app]] tables of a
// config file, or the one app of the environment settings): for each, a
// token keeper built by wechat.Open on its store (cfg.StoreFor: a file
// per app, or the app's keys in Redis or rows in a database, one client
// or pool shared by all) with Wechat.Run for the life of the server, and
// its callbacks at its callback path on the public listener (cfg.Listen)
// through the callback middleware with its token and safe-mode keys, in
// front of o.Handler (the echo bot ReferenceHandler by default), with
// retry dedupe on Redis when the store is Redis. The admin API (see
// central.Admin) serves them all on cfg.AdminListen. With the callback
// token alone and no app, it serves callbacks only, at cfg.CallbackPath.
// If a first token cannot be had, the listeners serve anyway (/healthz
// says 503 and why) while the keeper keeps trying under its guards
// (back-off, credential cooldown). Without WECHAT_ADMIN_KEY the admin API
// answers only loopback Host names and those of cfg.AdminHosts (see
// central.AdminOptions.AllowedHosts).
//
// With a config file (cfg.ConfigFile) and o.Reload, POST /v1/reload and
// every value from o.ReloadOn re-read it: apps added start, apps removed
// stop (their stored tokens stay), an app whose secret, token API or
// refresh window changed gets a new keeper that adopts its stored token,
// and other changes apply at once; a reload alone fetches nothing, and a
// bad file is refused and logged with the running apps kept. The apps of
// a config file spread their refreshes (wechat.Options.SpreadRefresh).
//
// A configuration problem makes Serve return at once with every problem
// listed, as *config.VarError values (errors.As finds them). That includes
// a file store that cannot work: its directory missing or not writable, or
// the path naming a directory. An unreachable Redis or database is not
// one: Serve serves, /healthz says 503, and the keepers retry.
//
// When ctx is done the listeners stop accepting; requests in flight get
// half the shutdown timeout to finish, then those still waiting are
// answered 503 (central.ErrShuttingDown), and Serve returns nil once all
// are answered. A listener that fails shuts the server down the same way,
// and Serve returns its error.
func Serve(ctx context.Context, cfg config.Config, o Options) error {
	// Every listener Serve owns, given or opened, is closed on the way
	// out, on every path (closing one that its http.Server already closed
	// is harmless).
	var owned []net.Listener
	defer func() {
		for _, l := range owned {
			l.Close()
		}
	}()
	for _, l := range []net.Listener{o.PublicListener, o.AdminListener} {
		if l != nil {
			owned = append(owned, l)
		}
	}

	needs := Needs(cfg)
	keeperOn := needs&config.NeedKeeper != 0
	if err := cfg.Validate(needs); err != nil {
		return fmt.Errorf("server: configuration: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = cfg.NewLogger(os.Stderr)
	}
	shutdownTimeout := o.ShutdownTimeout
	if shutdownTimeout <= 0 {
		shutdownTimeout = 20 * time.Second
	}
	// The apps: their stores, keepers (Open never fetches, so their
	// guards span a start-up during which no token can be had) and
	// callbacks. A Redis URL that does not parse, or a file store that
	// cannot be written, ends here.
	var (
		admin  *central.Admin
		fl     *fleet
		public http.Handler
	)
	kctx, stopKeepers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopKeepers()
	if keeperOn {
		var reload func(context.Context) error
		if o.Reload != nil && cfg.ConfigFile != "" {
			reload = func(context.Context) error {
				_, err := fl.reread()
				return err
			}
		}
		admin = central.NewAdmin(nil, central.AdminOptions{Key: string(cfg.AdminKey), Logger: log,
			Timeout: adminTimeout, Clock: o.Clock, AllowedHosts: cfg.AdminHostList(), TrustedProxies: cfg.TrustedProxyPrefixes(),
			Reload: reload})
		var err error
		if fl, err = newFleet(kctx, cfg, o, log, admin); err != nil {
			return err
		}
		defer fl.close()
		public = fl
		if o.adminBuilt != nil {
			o.adminBuilt(admin)
		}
	} else {
		h, err := callbacksOnly(cfg, o.Handler, log)
		if err != nil {
			return err
		}
		public = h
	}

	// Listeners: the given ones, else cfg's addresses. A given admin
	// listener without a keeper is closed unused (by the deferred close).
	pub := o.PublicListener
	if pub == nil {
		l, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("server: public listener (WECHAT_LISTEN): %w", err)
		}
		owned = append(owned, l)
		pub = l
	}
	var adm net.Listener
	if keeperOn {
		if adm = o.AdminListener; adm == nil {
			l, err := net.Listen("tcp", cfg.AdminListen)
			if err != nil {
				return fmt.Errorf("server: admin listener (WECHAT_ADMIN_LISTEN): %w", err)
			}
			owned = append(owned, l)
			adm = l
		}
	}

	// Servers. Every request runs on reqCtx, cancelled with
	// central.ErrShuttingDown when the shutdown's grace for in-flight
	// requests ends.
	reqCtx, cancelRequests := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelRequests(nil)
	type listening struct {
		name string
		srv  *http.Server
		l    net.Listener
	}
	servers := []listening{{"public", newServer(public, reqCtx, log, publicWriteTimeout, publicMaxHeaderBytes), pub}}
	if admin != nil {
		var gw http.Handler
		if fl.gw != nil {
			gw = fl.gw
		}
		servers = append(servers, listening{"admin", newServer(adminHandler(admin, gw), reqCtx, log, adminWriteTimeout, adminMaxHeaderBytes), adm})
	}

	var adminAddr net.Addr
	if adm != nil {
		adminAddr = adm.Addr()
		// One line per app, at INFO for a fleet small enough to read.
		apps := cfg.AppList()
		level := slog.LevelInfo
		if len(apps) > maxAppLines {
			level = slog.LevelDebug
		}
		for _, app := range apps {
			attrs := []any{"app", app.Name, "app_id", app.AppID, "kind", string(app.Kind)}
			if app.CallbackPath != "" {
				attrs = append(attrs, "callback", "http://"+pub.Addr().String()+app.CallbackPath)
			}
			log.Log(ctx, level, "server: keeping the app", attrs...)
		}
		log.Info("server: serving", "apps", len(apps), "public", "http://"+pub.Addr().String(),
			"admin", "http://"+adm.Addr().String(), "store", cfg.RedactedStore(), "admin_key", cfg.AdminKey != "", "config", cfg.ConfigFile)
	} else {
		log.Info("server: serving callbacks only: WECHAT_APP_SECRET is not set, so there is no token keeper and no admin API",
			"callback", "http://"+pub.Addr().String()+cfg.CallbackPath)
	}

	// The listeners, the keeper and the shutdown run in one group: a
	// listener that fails cancels gctx, which starts the shutdown as the
	// end of ctx does.
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range servers {
		g.Go(func() error {
			if err := s.srv.Serve(s.l); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("server: %s listener: %w", s.name, err)
			}
			return nil
		})
	}
	// The keepers refresh in the background until the servers are shut
	// down, so that requests in their grace can still be answered.
	if fl != nil {
		fl.start()
		if o.ReloadOn != nil {
			g.Go(func() error {
				for {
					select {
					case <-gctx.Done():
						return nil
					case <-o.ReloadOn:
						_, _ = fl.reread() // logged
					}
				}
			})
		}
	}
	g.Go(func() error {
		<-gctx.Done()
		defer stopKeepers()
		if ctx.Err() != nil {
			log.Info("server: shutting down; waiting for in-flight requests", "timeout", shutdownTimeout)
		} else {
			log.Error("server: a listener failed; shutting down", "err", context.Cause(gctx))
		}
		srvs := make([]*http.Server, len(servers))
		for i, s := range servers {
			srvs[i] = s.srv
		}
		return shutdown(log, shutdownTimeout, cancelRequests, srvs)
	})
	if o.Ready != nil {
		o.Ready(pub.Addr(), adminAddr)
	}
	if err := g.Wait(); err != nil {
		return err
	}
	log.Info("server: stopped")
	return nil
}

// adminHandler is the admin listener's handler: the admin API, and the
// gateway (when on) for every path that is not the admin API's. The
// gateway's paths are WeChat's own and are authenticated by WeChat's
// credentials (the AppSecret, a token it issued), never by the admin key:
// SDKs cannot send a bearer header.
func adminHandler(admin *central.Admin, gw http.Handler) http.Handler {
	if gw == nil {
		return admin
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isAdminPath(r.URL.Path) {
			admin.ServeHTTP(w, r)
			return
		}
		gw.ServeHTTP(w, r)
	})
}

// isAdminPath reports whether path is the admin API's, not the gateway's.
func isAdminPath(path string) bool {
	switch path {
	case "/", "/healthz", "/metrics", "/status", "/v1":
		return true
	}
	return strings.HasPrefix(path, "/v1/") || strings.HasPrefix(path, "/status/")
}

// newServer returns an HTTP server of h with the given write timeout and
// header limit, its requests on reqCtx.
func newServer(h http.Handler, reqCtx context.Context, log *slog.Logger, writeTimeout time.Duration, maxHeader int) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       writeTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeader,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// callbacksOnly returns the public listener's handler of a server
// without a token keeper: h (nil: ReferenceHandler) behind the callback
// middleware at cfg.CallbackPath, with cfg's token and safe-mode keys.
func callbacksOnly(cfg config.Config, h http.Handler, log *slog.Logger) (http.Handler, error) {
	opts := []middleware.Option{
		middleware.WithPreviousToken(string(cfg.PreviousToken)),
		middleware.WithTimestampWindow(cfg.TimestampWindow),
		middleware.WithLogger(log),
		middleware.WithTrustedProxies(cfg.TrustedProxyPrefixes()),
	}
	if cfg.EncodingAESKey != "" {
		aes, err := safeModeKeys(cfg.AppID, cfg.EncodingAESKey, cfg.PreviousEncodingAESKey)
		if err != nil {
			return nil, err
		}
		opts = append(opts, aes)
	}
	if h == nil {
		h = ReferenceHandler(log)
	}
	router := mux.NewRouter()
	router.Handle(cfg.CallbackPath, middleware.New(string(cfg.Token), h, opts...))
	return router, nil
}

// shutdown stops servers: they stop accepting at once, requests in flight
// have half of timeout to finish, then those still waiting are cancelled
// with central.ErrShuttingDown (and answered 503 by the admin API), and a
// server not done by the end of timeout is closed.
func shutdown(log *slog.Logger, timeout time.Duration, cancelRequests context.CancelCauseFunc, servers []*http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	grace := time.AfterFunc(timeout/2, func() {
		log.Warn("server: requests still in flight after half the shutdown timeout; answering them 503", "waited", timeout/2)
		cancelRequests(central.ErrShuttingDown)
	})
	defer grace.Stop()
	var g errgroup.Group
	for _, s := range servers {
		g.Go(func() error {
			if err := s.Shutdown(ctx); err != nil {
				s.Close()
				return fmt.Errorf("server: shutdown: %w", err)
			}
			return nil
		})
	}
	return g.Wait()
}

// Needs returns what Serve requires of cfg: the callback token always;
// the AppID, AppSecret and admin settings too when the token keeper is
// wanted, that is when an AppSecret is set, or an AppID without an
// EncodingAESKey (most likely a forgotten secret). An AppID with an
// EncodingAESKey and no secret is a safe-mode callback server alone: the
// AppID is what decrypted messages are checked against. Pass the result to
// cfg.Validate to list every problem before calling Serve.
func Needs(cfg config.Config) config.Need {
	if len(cfg.Apps()) > 0 || cfg.AppSecret != "" || (cfg.AppID != "" && cfg.EncodingAESKey == "") {
		return config.NeedCallback | config.NeedKeeper | config.NeedAdmin
	}
	return config.NeedCallback
}

// safeModeKeys returns the middleware option of safe mode (安全模式) for
// the app appID with EncodingAESKey cur, and prev during a rotation.
func safeModeKeys(appID string, cur, prev config.Secret) (middleware.Option, error) {
	key, err := msgcrypt.ParseKey(string(cur))
	if err != nil {
		return nil, fmt.Errorf("server: configuration: %w", &config.VarError{Var: "WECHAT_ENCODING_AES_KEY", Flag: "encoding-aes-key", Err: err})
	}
	var old *msgcrypt.Key
	if prev != "" {
		if old, err = msgcrypt.ParseKey(string(prev)); err != nil {
			return nil, fmt.Errorf("server: configuration: %w", &config.VarError{Var: "WECHAT_PREVIOUS_ENCODING_AES_KEY", Flag: "previous-encoding-aes-key", Err: err})
		}
	}
	return middleware.WithAESKeys(appID, key, old), nil
}
