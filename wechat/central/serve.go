package central

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/redis/go-redis/v9"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/dedupe"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/middleware/msgcrypt"
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/redisstore"
)

// ServeOptions are the parts of Serve that are not configuration. The zero
// value is usable.
type ServeOptions struct {
	// Logger receives the server's log lines. Default: cfg.NewLogger on
	// standard error.
	Logger *slog.Logger

	// PublicListener and AdminListener, if set, are used instead of
	// listening on cfg.Listen and cfg.AdminListen. Serve closes them.
	PublicListener, AdminListener net.Listener

	// HTTPClient makes the calls to WeChat. Default: the keeper's.
	HTTPClient *http.Client

	// Ready, if set, is called once both listeners accept connections,
	// with their addresses (admin is "" when the admin API is off).
	Ready func(public, admin net.Addr)

	// ShutdownTimeout bounds the shutdown once ctx is done. Default 20 s.
	// The listeners stop accepting at once; requests in flight have the
	// first half of it to finish, then those still waiting (on a slow
	// WeChat, say) are cancelled and answered 503 with ErrShuttingDown.
	ShutdownTimeout time.Duration

	// Clock, if set, tells the token keeper and the admin API the time
	// (a *wechattest.Server is one). Default: the system clock.
	Clock wechat.Clock

	// adminBuilt, if set, is called with the admin API once it is built:
	// tests follow the keeper it serves.
	adminBuilt func(*Admin)
}

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
// The public listener (cfg.Listen) answers WeChat at cfg.CallbackPath
// through middleware.Verify, with the echo bot ReferenceHandler behind it
// (retry dedupe on Redis when the store is Redis). When an AppID or AppSecret is configured,
// Serve also keeps the access token (one wechat.Open keeper on cfg.Store, a
// file path or a Redis URL, and Wechat.Run for the life of the server) and
// serves the admin API (see Admin) on cfg.AdminListen; with the callback
// token alone it serves callbacks only. If the first token cannot be had,
// the listeners serve anyway (/healthz says 503 and why) while the same
// keeper keeps trying under its guards (back-off, credential cooldown).
// Without WECHAT_ADMIN_KEY the admin API answers only loopback Host names
// and those of cfg.AdminHosts (see AdminOptions.AllowedHosts).
//
// A configuration problem makes Serve return at once with every problem
// listed, as *config.VarError values (errors.As finds them). That includes
// a file store that cannot work: its directory missing or not writable, or
// the path naming a directory. An unreachable Redis is not one: Serve
// serves, /healthz says 503, and the keeper retries.
//
// When ctx is done the listeners stop accepting; requests in flight get
// half the shutdown timeout to finish, then those still waiting are
// answered 503 (ErrShuttingDown), and Serve returns nil once all are
// answered.
func Serve(ctx context.Context, cfg config.Config, o ServeOptions) (err error) {
	closeGiven := func() {
		for _, l := range []net.Listener{o.PublicListener, o.AdminListener} {
			if l != nil {
				l.Close()
			}
		}
	}
	needs := Needs(cfg)
	keeperOn := needs&config.NeedKeeper != 0
	if err := cfg.Validate(needs); err != nil {
		closeGiven()
		return fmt.Errorf("central: configuration: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = cfg.NewLogger(os.Stderr)
	}
	shutdownTimeout := o.ShutdownTimeout
	if shutdownTimeout <= 0 {
		shutdownTimeout = 20 * time.Second
	}

	// The store first: a Redis URL that does not parse, or a file store
	// that cannot be written, ends here.
	var store wechat.Store
	var admin *Admin
	var keeper *wechat.Wechat
	if keeperOn {
		if err := CheckStore(cfg.Store); err != nil {
			closeGiven()
			return fmt.Errorf("central: configuration: %w", err)
		}
		var closeStore func()
		store, closeStore, err = OpenStore(cfg.Store, cfg.AppID, log)
		if err != nil {
			closeGiven()
			return err
		}
		defer closeStore()
		// One keeper for the life of the server: Open never fetches, so
		// its guards (back-off, cooldown) span a start-up during which no
		// token can be had.
		keeper, err = wechat.Open(ctx, keeperOptions(cfg, store, o, log))
		if err != nil {
			closeGiven()
			return fmt.Errorf("central: token keeper: %w", err)
		}
		defer keeper.Close()
		admin = NewAdmin(keeper, AdminOptions{Key: string(cfg.AdminKey), Logger: log, Store: store, Timeout: adminTimeout,
			Clock: o.Clock, AllowedHosts: cfg.AdminHostList(), TrustedProxies: cfg.TrustedProxyPrefixes()})
		if o.adminBuilt != nil {
			o.adminBuilt(admin)
		}
	}

	// Listeners.
	pub := o.PublicListener
	if pub == nil {
		if pub, err = net.Listen("tcp", cfg.Listen); err != nil {
			closeGiven()
			return fmt.Errorf("central: public listener (WECHAT_LISTEN): %w", err)
		}
	}
	adm := o.AdminListener
	if !keeperOn && adm != nil {
		adm.Close()
		adm = nil
	}
	if keeperOn && adm == nil {
		if adm, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			pub.Close()
			return fmt.Errorf("central: admin listener (WECHAT_ADMIN_LISTEN): %w", err)
		}
	}

	// Servers.
	verifyOpts := []middleware.Option{
		middleware.WithPreviousToken(string(cfg.PreviousToken)),
		middleware.WithTimestampWindow(cfg.TimestampWindow),
		middleware.WithLogger(log),
		middleware.WithTrustedProxies(cfg.TrustedProxyPrefixes()),
	}
	if admin != nil {
		verifyOpts = append(verifyOpts, middleware.WithResultFunc(admin.CallbackResult))
	}
	if cfg.EncodingAESKey != "" {
		aes, err := safeMode(cfg)
		if err != nil {
			pub.Close()
			if adm != nil {
				adm.Close()
			}
			return err
		}
		verifyOpts = append(verifyOpts, aes)
	}
	if opt, ok := dedupeFor(store, cfg.AppID); ok {
		verifyOpts = append(verifyOpts, opt)
	}
	router := mux.NewRouter()
	router.Handle(cfg.CallbackPath, middleware.Verify(string(cfg.Token), verifyOpts...)(ReferenceHandler(log)))
	// Every request runs on reqCtx, cancelled with ErrShuttingDown when the
	// shutdown's grace for in-flight requests ends.
	reqCtx, cancelRequests := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelRequests(nil)
	baseContext := func(net.Listener) context.Context { return reqCtx }
	servers := []*http.Server{{
		Handler:           router,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       publicWriteTimeout,
		WriteTimeout:      publicWriteTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    publicMaxHeaderBytes,
		BaseContext:       baseContext,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
	listeners := []net.Listener{pub}
	if admin != nil {
		servers = append(servers, &http.Server{
			Handler:           admin,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       adminWriteTimeout,
			WriteTimeout:      adminWriteTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    adminMaxHeaderBytes,
			BaseContext:       baseContext,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		})
		listeners = append(listeners, adm)
	}
	serveErr := make(chan error, len(servers))
	for i, s := range servers {
		go func() {
			if err := s.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		}()
	}

	// The keeper, in the background, for the life of the server.
	kctx, kcancel := context.WithCancel(context.WithoutCancel(ctx))
	var kwg sync.WaitGroup
	if keeperOn {
		kwg.Add(1)
		go func() {
			defer kwg.Done()
			_ = keeper.Run(kctx) // returns when kctx is done
		}()
	}

	var adminAddr net.Addr
	adminURL := ""
	if adm != nil {
		adminAddr = adm.Addr()
		adminURL = "http://" + adm.Addr().String()
		log.Info("central: serving", "callback", "http://"+pub.Addr().String()+cfg.CallbackPath,
			"admin", adminURL, "app_id", cfg.AppID, "store", cfg.RedactedStore(), "admin_key", cfg.AdminKey != "")
	} else {
		log.Info("central: serving callbacks only: WECHAT_APP_SECRET is not set, so there is no token keeper and no admin API",
			"callback", "http://"+pub.Addr().String()+cfg.CallbackPath)
	}
	if o.Ready != nil {
		o.Ready(pub.Addr(), adminAddr)
	}

	select {
	case <-ctx.Done():
		log.Info("central: shutting down; waiting for in-flight requests", "timeout", shutdownTimeout)
	case err = <-serveErr:
		log.Error("central: a listener failed; shutting down", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	grace := time.AfterFunc(shutdownTimeout/2, func() {
		log.Warn("central: requests still in flight after half the shutdown timeout; answering them 503", "waited", shutdownTimeout/2)
		cancelRequests(ErrShuttingDown)
	})
	defer grace.Stop()
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("central: %w", err))
	}
	var (
		swg sync.WaitGroup
		mu  sync.Mutex
	)
	for _, s := range servers {
		swg.Add(1)
		go func() {
			defer swg.Done()
			if err := s.Shutdown(sctx); err != nil {
				s.Close()
				mu.Lock()
				errs = append(errs, fmt.Errorf("central: shutdown: %w", err))
				mu.Unlock()
			}
		}()
	}
	swg.Wait()
	kcancel()
	kwg.Wait()
	if len(errs) == 0 {
		log.Info("central: stopped")
	}
	return errors.Join(errs...)
}

// keeperOptions returns the token keeper's options for cfg.
func keeperOptions(cfg config.Config, store wechat.Store, o ServeOptions, log *slog.Logger) wechat.Options {
	return wechat.Options{
		AppID:         cfg.AppID,
		AppSecret:     string(cfg.AppSecret),
		Store:         store,
		APIBase:       cfg.APIBase,
		HTTPClient:    o.HTTPClient,
		TokenAPI:      wechat.TokenAPI(cfg.TokenAPI),
		RefreshBefore: cfg.RefreshBefore,
		Logger:        log,
		Clock:         o.Clock,
	}
}

// CheckStore checks, before serving, what can be checked of the token
// store named by WECHAT_STORE: for a file path, symbolic links resolved as
// the file store resolves them (wechat.FileStore.Path: it writes next to
// the real file), that it does not name a directory, that its directory
// exists and that a file can be created there (the store writes a new file
// and renames it, and keeps a lock file next to it). A Redis URL is not
// checked: an unreachable Redis is a run-time condition the keeper
// retries. A problem is a *config.VarError naming WECHAT_STORE.
func CheckStore(store string) error {
	if isRedisURL(store) {
		return nil
	}
	bad := func(format string, args ...any) error {
		return &config.VarError{Var: "WECHAT_STORE", Flag: "store", Err: fmt.Errorf(format, args...)}
	}
	// The path the store will use; a link that cannot be resolved is
	// used as given, as the store does.
	if real := wechat.NewFileStore(store, nil).Path(); real != store {
		if abs, err := filepath.Abs(store); err != nil || abs != real {
			if err := checkStoreFile(real, bad); err != nil {
				return bad("%q is a link to %q: %w", store, real, errors.Unwrap(err))
			}
			return nil
		}
	}
	return checkStoreFile(store, bad)
}

// checkStoreFile is CheckStore for the path the store uses.
func checkStoreFile(store string, bad func(string, ...any) error) error {
	if fi, err := os.Stat(store); err == nil && fi.IsDir() {
		return bad("%q is a directory: name the file, e.g. %s", store, filepath.Join(store, config.DefaultStore))
	} else if err == nil && !fi.Mode().IsRegular() {
		return bad("%q is not a regular file", store)
	} else if err == nil {
		f, err := os.Open(store)
		if err != nil {
			return bad("the store file cannot be read: %v", errors.Unwrap(err))
		}
		f.Close()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return bad("%v", err)
	}
	dir := filepath.Dir(store)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return bad("the directory %q does not exist: create it, or name a file in an existing one", dir)
	case err != nil:
		return bad("the directory %q: %v", dir, errors.Unwrap(err))
	case !fi.IsDir():
		return bad("%q is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".wxcentral-check-*")
	if err != nil {
		return bad("cannot create files in the directory %q (%v): the store saves by writing a new file and renaming it, next to a lock file", dir, errors.Unwrap(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// isRedisURL reports whether WECHAT_STORE names a Redis store: a URL whose
// scheme starts with redis (redis, rediss, redis+sentinel, ...), in any
// case. Anything else is a file path.
func isRedisURL(store string) bool {
	scheme, _, ok := strings.Cut(store, "://")
	return ok && strings.HasPrefix(strings.ToLower(scheme), "redis")
}

// OpenStore opens the token store named by WECHAT_STORE: a Redis URL
// (redis://, rediss://, redis+sentinel://, redis+cluster:// and their
// rediss+ forms) through redisstore.Open, anything else as the path of a
// wechat.FileStore. The returned function releases the store.
func OpenStore(store, appID string, log *slog.Logger) (wechat.Store, func(), error) {
	if isRedisURL(store) {
		s, err := redisstore.Open(store, appID, redisstore.WithLogger(log))
		if err != nil {
			return nil, nil, fmt.Errorf("central: WECHAT_STORE: %w", err)
		}
		return s, func() { s.Close() }, nil
	}
	return wechat.NewFileStore(store, log), func() {}, nil
}

// ReferenceHandler is the handler behind the callback middleware in the
// reference server, an echo bot: a text message gets its own text back as a
// passive reply; every other message or event gets "success", which tells
// WeChat it was received and needs no reply. In safe mode the middleware
// encrypts the reply. Replace it with your own.
func ReferenceHandler(log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, ok := message.FromContext(r.Context())
		if !ok {
			// Without a parsed message (a custom middleware chain), say
			// received and move on.
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, "success")
			return
		}
		log.Debug("central: message received", "type", m.MsgType, "event", m.Event)
		if m.MsgType != message.TypeText {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, "success")
			return
		}
		w.Header().Set("Content-Type", message.ContentType)
		w.Write(m.ReplyText(time.Now(), m.Content))
	})
}

// redisClienter is a Store that runs on a Redis client (redisstore.Store).
type redisClienter interface {
	Client() redis.UniversalClient
}

// dedupeFor returns the middleware option that shares retry dedupe through
// the token store's Redis, so that WeChat's re-delivery of a push to
// another host behind the load balancer does not run the handler twice.
// A file store (one host) keeps the middleware's in-memory default.
func dedupeFor(store wechat.Store, appID string) (middleware.Option, bool) {
	rc, ok := store.(redisClienter)
	if !ok {
		return nil, false
	}
	d := dedupe.NewRedis(rc.Client())
	d.Prefix = dedupe.DefaultPrefix + "{" + appID + "}:"
	return middleware.WithDedupe(d), true
}

// Needs returns what Serve requires of cfg: the callback token always;
// the AppID, AppSecret and admin settings too when the token keeper is
// wanted, that is when an AppSecret is set, or an AppID without an
// EncodingAESKey (most likely a forgotten secret). An AppID with an
// EncodingAESKey and no secret is a safe-mode callback server alone: the
// AppID is what decrypted messages are checked against. Pass the result to
// cfg.Validate to list every problem before calling Serve.
func Needs(cfg config.Config) config.Need {
	if cfg.AppSecret != "" || (cfg.AppID != "" && cfg.EncodingAESKey == "") {
		return config.NeedCallback | config.NeedKeeper | config.NeedAdmin
	}
	return config.NeedCallback
}

// safeMode returns the middleware option of safe mode (安全模式) for the
// EncodingAESKey of cfg, and the previous one during a rotation.
func safeMode(cfg config.Config) (middleware.Option, error) {
	cur, err := msgcrypt.ParseKey(string(cfg.EncodingAESKey))
	if err != nil {
		return nil, fmt.Errorf("central: configuration: %w", &config.VarError{Var: "WECHAT_ENCODING_AES_KEY", Flag: "encoding-aes-key", Err: err})
	}
	var prev *msgcrypt.Key
	if cfg.PreviousEncodingAESKey != "" {
		if prev, err = msgcrypt.ParseKey(string(cfg.PreviousEncodingAESKey)); err != nil {
			return nil, fmt.Errorf("central: configuration: %w", &config.VarError{Var: "WECHAT_PREVIOUS_ENCODING_AES_KEY", Flag: "previous-encoding-aes-key", Err: err})
		}
	}
	return middleware.WithAESKeys(cfg.AppID, cur, prev), nil
}
