package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/redis/go-redis/v9"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/central"
	"github.com/wxcentral/wxcentral/wechat/gateway"
	"github.com/wxcentral/wxcentral/wechat/redisstore"
	"github.com/wxcentral/wxcentral/wechat/sqlstore"
)

// A fleet is the apps a server keeps: each app's store, token keeper
// (running Wechat.Run) and callback handler. It starts with the apps of
// the configuration and changes with each reload, which starts the apps
// added, stops the ones removed and rebuilds the ones changed, without a
// fetch. It is safe for concurrent use; reloads run one at a time.
type fleet struct {
	o     Options
	log   *slog.Logger
	admin *central.Admin
	// up is where every call to WeChat goes, with failover: the keepers'
	// and the gateway's.
	up *wechat.Upstream
	// gw is the gateway (WeChat's API on the admin listener), nil when it
	// is off.
	gw *gateway.Gateway
	// h is the public listener's handler, rebuilt at each reload: every
	// app's callback path behind the callback middleware.
	h atomic.Pointer[http.Handler]
	// runCtx is the keepers' Run context, done when the server stops.
	runCtx context.Context
	runs   sync.WaitGroup // the keepers' Run goroutines

	mu     sync.Mutex // serializes reloads; guards the fields below
	cfg    config.Config
	apps   map[string]*runningApp // by AppID
	redis  redis.UniversalClient  // shared by every app on a Redis store
	db     *sqlstore.DB           // shared by every app on a database store
	closed bool
}

// A runningApp is one app a fleet keeps.
type runningApp struct {
	app        config.App
	store      wechat.Store
	closeStore func()
	keeper     *wechat.Wechat
	stop       context.CancelFunc // ends the keeper's Run
	done       chan struct{}      // closed when Run has returned

	// callback is the app's callback handler, built for callbackOf; a
	// reload keeps it (and the retry dedupe and replay memory it holds in
	// this process) while that stays the same.
	callback   http.Handler
	callbackOf callbackSettings
}

// callbackSettings are what an app's callback handler is built from.
type callbackSettings struct {
	name, appID            string
	token, previousToken   config.Secret
	aesKey, previousAESKey config.Secret
	timestampWindow        time.Duration
	trustedProxies         string
}

// callbackSettingsOf returns the settings of app's callback handler
// under cfg.
func callbackSettingsOf(cfg config.Config, app config.App) callbackSettings {
	return callbackSettings{app.Name, app.AppID, app.CallbackToken, app.PreviousCallbackToken,
		app.EncodingAESKey, app.PreviousEncodingAESKey, cfg.TimestampWindow, cfg.TrustedProxies}
}

// newFleet returns the fleet of cfg's apps, not yet running: start runs
// their keepers. Any app that cannot be built (its store, its keeper's
// options) fails it all, with every app's problem.
func newFleet(ctx context.Context, cfg config.Config, o Options, log *slog.Logger, admin *central.Admin) (*fleet, error) {
	f := &fleet{o: o, log: log, admin: admin, runCtx: ctx, cfg: cfg, apps: map[string]*runningApp{}}
	up, err := wechat.NewUpstream(cfg.APIBases(), wechat.UpstreamOptions{HTTPClient: o.HTTPClient, Clock: o.Clock, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("server: WECHAT_API_BASE: %w", err)
	}
	f.up = up
	if !cfg.GatewayOff {
		gw, err := gateway.New(gateway.Options{Upstream: up, HTTPClient: o.HTTPClient, Registerer: admin.Registry(),
			Logger: log, Clock: o.Clock})
		if err != nil {
			return nil, fmt.Errorf("server: gateway: %w", err)
		}
		f.gw = gw
	}
	if config.IsRedisStore(cfg.Store) {
		c, err := redisstore.NewClient(cfg.Store)
		if err != nil {
			return nil, fmt.Errorf("server: WECHAT_STORE: %w", err)
		}
		f.redis = c
	}
	if config.IsSQLStore(cfg.Store) {
		db, err := sqlstore.Open(ctx, cfg.Store, sqlstore.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("server: WECHAT_STORE: %w", err)
		}
		f.db = db
	}
	var errs []error
	fromFile := len(cfg.Apps()) > 0
	for _, app := range cfg.AppList() {
		ra, err := f.build(cfg, app, fromFile)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.apps[app.AppID] = ra
	}
	if err := errors.Join(errs...); err != nil {
		f.close()
		return nil, err
	}
	if err := f.publish(cfg); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// build opens app's store and keeper. Open never fetches: the keeper
// holds what the store holds, and fetches when Run or a caller needs it.
// fromFile says that cfg's apps come from a config file (cfg.Apps, which
// copies them, is not asked again for each of a thousand apps).
func (f *fleet) build(cfg config.Config, app config.App, fromFile bool) (*runningApp, error) {
	log := f.log.With("app", app.Name, "app_id", app.AppID)
	// The single app of the environment keeps its store as named (a
	// directory there is a mistake checkStore reports); the apps of a
	// config file each have their own (config.StoreFor).
	path := cfg.Store
	if fromFile {
		path = cfg.StoreFor(app.AppID)
	}
	if err := checkStore(path); err != nil {
		return nil, fmt.Errorf("server: app %q: %w", app.Name, err)
	}
	ra := &runningApp{app: app, closeStore: func() {}}
	switch {
	case f.redis != nil:
		s, err := redisstore.New(f.redis, app.AppID, redisstore.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("server: app %q: %w", app.Name, err)
		}
		ra.store, ra.closeStore = s, func() { s.Close() }
	case f.db != nil:
		s, err := f.db.Store(app.AppID)
		if err != nil {
			return nil, fmt.Errorf("server: app %q: %w", app.Name, err)
		}
		ra.store = s
	default:
		ra.store = wechat.NewFileStore(path, log)
	}
	k, err := wechat.Open(f.runCtx, f.keeperOptions(cfg, app, ra.store, log, fromFile))
	if err != nil {
		ra.closeStore()
		return nil, fmt.Errorf("server: app %q: token keeper: %w", app.Name, err)
	}
	ra.keeper = k
	return ra, nil
}

// keeperOptions returns the token keeper's options of app.
func (f *fleet) keeperOptions(cfg config.Config, app config.App, store wechat.Store, log *slog.Logger, fromFile bool) wechat.Options {
	return wechat.Options{
		AppID:         app.AppID,
		AppSecret:     string(app.Secret),
		Store:         store,
		Upstream:      f.up,
		TokenAPI:      wechat.TokenAPI(app.TokenAPI),
		RefreshBefore: app.RefreshBefore,
		// The apps of a config file spread their refreshes; the single
		// app of the environment refreshes as it always has.
		SpreadRefresh: fromFile,
		Logger:        log,
		Clock:         f.o.Clock,
	}
}

// start runs the keepers of the apps not yet running.
func (f *fleet) start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ra := range f.apps {
		f.run(ra)
	}
}

// run starts ra's keeper's Run, unless it runs already. Called with f.mu
// held.
func (f *fleet) run(ra *runningApp) {
	if ra.stop != nil || f.closed {
		return
	}
	ctx, stop := context.WithCancel(f.runCtx)
	ra.stop, ra.done = stop, make(chan struct{})
	f.runs.Add(1)
	go func() {
		defer f.runs.Done()
		defer close(ra.done)
		_ = ra.keeper.Run(ctx) // returns when ctx is done
	}()
}

// halt stops ra's Run (waiting for it to return), closes its keeper and
// its store. Its stored credentials stay.
func (ra *runningApp) halt() {
	if ra.stop != nil {
		ra.stop()
		<-ra.done
	}
	ra.keeper.Close()
	ra.closeStore()
}

// publish makes cfg's apps the ones the admin API and the public
// listener serve. Called with f.mu held, or before the fleet is shared.
func (f *fleet) publish(cfg config.Config) error {
	var (
		apps []central.App
		gws  []gateway.App
	)
	router := mux.NewRouter()
	for _, app := range cfg.AppList() {
		ra := f.apps[app.AppID]
		apps = append(apps, central.App{ID: app.AppID, Name: app.Name, Kind: app.Kind, Keeper: ra.keeper, Store: ra.store})
		gws = append(gws, gateway.App{ID: app.AppID, Kind: app.Kind, Secret: string(app.Secret), Keeper: ra.keeper})
		if app.CallbackPath == "" {
			continue
		}
		if want := callbackSettingsOf(cfg, app); ra.callback == nil || ra.callbackOf != want {
			h, err := f.callbacks(cfg, app, ra.store)
			if err != nil {
				return err
			}
			ra.callback, ra.callbackOf = h, want
		}
		router.Handle(app.CallbackPath, ra.callback)
	}
	if err := f.admin.SetApps(apps); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if f.gw != nil {
		if err := f.gw.SetApps(gws); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	var h http.Handler = router
	f.h.Store(&h)
	return nil
}

// callbacks returns app's callback handler: Options.Handler (the
// reference echo bot by default) behind the callback middleware with the
// app's token and safe-mode keys, its callback metric, and retry dedupe
// through the store's Redis when it is a Redis store.
func (f *fleet) callbacks(cfg config.Config, app config.App, store wechat.Store) (http.Handler, error) {
	log := f.log.With("app", app.Name, "app_id", app.AppID)
	opts := []middleware.Option{
		middleware.WithPreviousToken(string(app.PreviousCallbackToken)),
		middleware.WithTimestampWindow(cfg.TimestampWindow),
		middleware.WithLogger(log),
		middleware.WithTrustedProxies(cfg.TrustedProxyPrefixes()),
		middleware.WithResultFunc(f.admin.CallbackResultFor(app.AppID)),
	}
	if app.EncodingAESKey != "" {
		aes, err := safeModeKeys(app.AppID, app.EncodingAESKey, app.PreviousEncodingAESKey)
		if err != nil {
			return nil, fmt.Errorf("server: app %q: %w", app.Name, err)
		}
		opts = append(opts, aes)
	}
	if opt, ok := dedupeFor(store, app.AppID); ok {
		opts = append(opts, opt)
	}
	h := f.o.Handler
	if h == nil {
		h = ReferenceHandler(log)
	}
	return middleware.New(string(app.CallbackToken), h, opts...), nil
}

// ServeHTTP serves the public listener: the callbacks of every app.
func (f *fleet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*f.h.Load()).ServeHTTP(w, r)
}

// A reloadResult says what a reload changed, by AppID.
type reloadResult struct {
	Added, Removed, Rebuilt, Updated []string
}

// reload makes cfg the running configuration: apps added start, apps
// removed stop (their stored credentials stay), apps whose secret, token
// API or refresh window changed get a new keeper on the same store (which
// adopts the stored token: no fetch; a changed secret also ends a
// credential cooldown the old one caused), and any other change (name, kind,
// callback settings) applies to the admin API and the callbacks at once.
// A global setting that only a restart applies (listeners, store, API
// base, admin key) is logged and otherwise ignored. If any app cannot be
// built, nothing changes.
func (f *fleet) reload(cfg config.Config) (reloadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var res reloadResult
	if f.closed {
		return res, errors.New("server: shutting down")
	}
	f.warnRestart(cfg)
	// Keep what only a restart changes.
	cfg.Listen, cfg.AdminListen, cfg.Store, cfg.APIBase = f.cfg.Listen, f.cfg.AdminListen, f.cfg.Store, f.cfg.APIBase
	cfg.AdminKey, cfg.AdminHosts = f.cfg.AdminKey, f.cfg.AdminHosts

	next := map[string]*runningApp{}
	var built []*runningApp
	var errs []error
	fromFile := len(cfg.Apps()) > 0
	for _, app := range cfg.AppList() {
		old := f.apps[app.AppID]
		if old != nil && !needsNewKeeper(old.app, app) {
			next[app.AppID] = &runningApp{app: app, store: old.store, closeStore: old.closeStore,
				keeper: old.keeper, stop: old.stop, done: old.done, callback: old.callback, callbackOf: old.callbackOf}
			if !sameApp(old.app, app) {
				res.Updated = append(res.Updated, app.AppID)
			}
			continue
		}
		ra, err := f.build(cfg, app, fromFile)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		built = append(built, ra)
		next[app.AppID] = ra
		if old != nil {
			// A new keeper, the same callbacks: publish keeps the handler
			// if its settings are unchanged.
			ra.callback, ra.callbackOf = old.callback, old.callbackOf
			res.Rebuilt = append(res.Rebuilt, app.AppID)
		} else {
			res.Added = append(res.Added, app.AppID)
		}
	}
	if len(errs) > 0 {
		for _, ra := range built {
			ra.halt()
		}
		return reloadResult{}, errors.Join(errs...)
	}
	prev, prevCfg := f.apps, f.cfg
	f.apps, f.cfg = next, cfg
	if err := f.publish(cfg); err != nil {
		f.apps, f.cfg = prev, prevCfg
		for _, ra := range built {
			ra.halt()
		}
		return reloadResult{}, err
	}
	// The new set is served; stop what it no longer has.
	for id, old := range prev {
		if ra, kept := next[id]; kept && ra.keeper == old.keeper {
			continue
		}
		if _, kept := next[id]; !kept {
			res.Removed = append(res.Removed, id)
		}
		old.halt()
	}
	// A corrected secret may fetch at once: the pause that the rejected
	// one started ends, for every process on the store.
	for _, id := range res.Rebuilt {
		if prev[id].app.Secret != next[id].app.Secret {
			next[id].keeper.EndCooldown(f.runCtx)
		}
	}
	for _, ra := range next {
		f.run(ra)
	}
	for _, l := range []*[]string{&res.Added, &res.Removed, &res.Rebuilt, &res.Updated} {
		slices.Sort(*l)
	}
	return res, nil
}

// reread re-reads the configuration with Options.Reload and applies it,
// logging what changed or why the new one was refused.
func (f *fleet) reread() (res reloadResult, err error) {
	defer func() {
		if f.o.reloaded != nil {
			f.o.reloaded(res, err)
		}
	}()
	f.mu.Lock()
	file := f.cfg.ConfigFile
	f.mu.Unlock()
	if f.o.Reload == nil || file == "" {
		err = errors.New("server: nothing to reload: the configuration names no config file (WECHAT_CONFIG)")
		f.log.Warn("server: reload asked for", "err", err)
		return res, err
	}
	cfg, err := f.o.Reload()
	if err == nil {
		res, err = f.reload(cfg)
	}
	if err != nil {
		f.log.Error("server: reload refused; the running configuration is kept", "config", file, "err", err)
		return res, err
	}
	f.log.Info("server: reloaded", "config", file, "apps", len(cfg.AppList()),
		"added", res.Added, "removed", res.Removed, "rebuilt", res.Rebuilt, "updated", res.Updated)
	return res, nil
}

// sameApp reports whether a and b configure an app alike (where in the
// file they were given aside).
func sameApp(a, b config.App) bool {
	return a.Name == b.Name && a.Kind == b.Kind && a.AppID == b.AppID && a.Secret == b.Secret &&
		a.TokenAPI == b.TokenAPI && a.RefreshBefore == b.RefreshBefore && a.CallbackPath == b.CallbackPath &&
		a.CallbackToken == b.CallbackToken && a.PreviousCallbackToken == b.PreviousCallbackToken &&
		a.EncodingAESKey == b.EncodingAESKey && a.PreviousEncodingAESKey == b.PreviousEncodingAESKey
}

// needsNewKeeper reports whether going from app a to b changes what the
// keeper was built with.
func needsNewKeeper(a, b config.App) bool {
	return a.Secret != b.Secret || a.TokenAPI != b.TokenAPI || a.RefreshBefore != b.RefreshBefore
}

// warnRestart logs the global settings of cfg that differ from the
// running ones and that a reload does not apply.
func (f *fleet) warnRestart(cfg config.Config) {
	for _, s := range []struct {
		name     string
		old, new string
	}{
		{"WECHAT_LISTEN", f.cfg.Listen, cfg.Listen},
		{"WECHAT_ADMIN_LISTEN", f.cfg.AdminListen, cfg.AdminListen},
		{"WECHAT_STORE", f.cfg.RedactedStore(), cfg.RedactedStore()},
		{"WECHAT_API_BASE", f.cfg.APIBase, cfg.APIBase},
		{"WECHAT_GATEWAY", onOff(!f.cfg.GatewayOff), onOff(!cfg.GatewayOff)},
		{"WECHAT_ADMIN_KEY", string(f.cfg.AdminKey), string(cfg.AdminKey)},
		{"WECHAT_ADMIN_HOSTS", f.cfg.AdminHosts, cfg.AdminHosts},
	} {
		if s.old != s.new {
			f.log.Warn("server: reload: a changed setting applies only after a restart; keeping the running one", "setting", s.name)
		}
	}
}

// close stops every app and releases the shared store client.
func (f *fleet) close() {
	f.mu.Lock()
	f.closed = true
	apps := f.apps
	f.apps = map[string]*runningApp{}
	f.mu.Unlock()
	for _, ra := range apps {
		ra.halt()
	}
	f.runs.Wait()
	if f.redis != nil {
		f.redis.Close()
	}
	if f.db != nil {
		f.db.Close()
	}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
