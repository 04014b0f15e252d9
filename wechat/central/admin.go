package central

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/wechat"
)

// A Keeper is what the admin API needs of a token keeper. *wechat.Wechat
// is one.
type Keeper interface {
	Token(ctx context.Context) (wechat.Credential, error)
	Refresh(ctx context.Context, stale string) (string, error)
	JSAPITicket(ctx context.Context) (wechat.Credential, error)
	JSSDKConfig(ctx context.Context, pageURL string) (wechat.JSSDKConfig, error)
	Status(ctx context.Context) wechat.Status
	Stats() wechat.Stats
}

// maxRefreshBody bounds the body of POST /v1/token/refresh.
const maxRefreshBody = 16 << 10

// AdminOptions configure NewAdmin. The zero value is usable: no key, no
// logs, the system clock.
type AdminOptions struct {
	// Key, if set, is the bearer key every /v1/ request must carry in
	// "Authorization: Bearer <key>"; others get 401. /healthz and
	// /metrics stay open.
	Key string

	// Logger receives a line per failed request. Default: discard.
	Logger *slog.Logger

	// Clock computes expires_in. Default: the system clock.
	Clock util.Clock

	// Store, if it is an ErrorCounter (as redisstore.Store is), is
	// exported as the metric wxcentral_store_errors_total.
	Store wechat.Store

	// Timeout bounds the work of one request (a refresh included).
	// Default 30 s.
	Timeout time.Duration

	// AllowedHosts are the Host names, besides localhost and loopback
	// addresses, that an Admin without a Key answers (any port). A
	// key-less Admin refuses every other Host with 403, so that a web page
	// cannot read the token through a DNS rebinding name that resolves to
	// 127.0.0.1. With a Key the Host is not checked: a browser does not
	// send the bearer key on its own.
	AllowedHosts []string

	// TrustedProxies are the reverse proxies in front of the admin API,
	// by address prefix: a request from one of them is logged with the
	// client address from its X-Forwarded-For or X-Real-IP (see
	// middleware.WithTrustedProxies). Default: none, r.RemoteAddr is
	// logged.
	TrustedProxies []netip.Prefix

	// Reload, if set, is what POST /v1/reload does: re-read the
	// configuration and SetApps the result. Its error (a bad file) is
	// answered 422 with reason "reload_refused"; it must never hold a
	// secret. Without it POST /v1/reload is 404.
	Reload func(ctx context.Context) error
}

// An Admin is the admin API of the central control server, an
// http.Handler, serving one app or several (see App and SetApps):
//
//	GET  /v1/apps                           [{"app_id","name","kind","state","expires_at",…}], never a token
//	GET  /v1/apps/{app_id}/token            {"access_token","expires_at","expires_in"}
//	POST /v1/apps/{app_id}/token/refresh    {"stale":"…"} → the same shape (passive refresh)
//	GET  /v1/apps/{app_id}/ticket/jsapi     {"ticket","expires_at","expires_in"} (official accounts)
//	GET  /v1/apps/{app_id}/jssdk/config?url=…  {"appId","timestamp","nonceStr","signature"}
//	GET  /v1/token, POST /v1/token/refresh, GET /v1/ticket/jsapi, GET /v1/jssdk/config
//	                                        the same for the one app of a single-app server
//	POST /v1/reload                         re-read the configuration (AdminOptions.Reload)
//	GET  /status                            the status page, HTML (see below)
//	GET  /v1/status                         its data: every app's state, quota, refreshes; never a credential
//	GET  /healthz[?app_id=…]                200 while a valid token is held, else 503
//	GET  /metrics                           Prometheus text format, per-app series labelled app_id
//
// An unknown app_id is 404; a single-app route on a server of several
// apps is 400, naming the per-app route; a ticket route of a Mini
// Program or Mini Game is 400 (it has no jsapi_ticket). With several
// apps, /healthz is 200 while at least one app holds a valid token
// (status "ok", or "degraded" listing the apps that do not) and 503 when
// none does; /healthz?app_id= is one app's, as a single-app server's.
//
// Errors are {"error":"…","reason":"…","errcode":N}: error is for people,
// errcode is WeChat's (present only when WeChat gave one), and reason is
// stable and machine-readable, the one field a client should match on
// (wechat.NewRemote maps it back to the same sentinel errors, so that
// errors.Is answers alike locally and through the admin API). The
// refusals of the request itself:
//
//	400 bad_request         bad input
//	401 unauthorized        a missing or wrong key (with WWW-Authenticate)
//	403 forbidden_host      a Host that is not loopback on an Admin without
//	                        a key (see AdminOptions.AllowedHosts)
//	404 not_found           no such route
//	405 method_not_allowed  the route takes another method
//
// and the failures of the keeper, with the status StatusOf gives (503
// when waiting may help, else 502):
//
//	shutting_down    503 the server is shutting down (ErrShuttingDown)
//	cooldown         503 fetches are paused after a credential error;
//	                     Retry-After says when the pause ends
//	quota_exhausted  503 the day's fetch budget is used up
//	rate_limited     503 the last fetch was too recent, or the hour's cap
//	                     is reached
//	closed           503 the keeper is closed
//	timeout          503 the request's deadline passed
//	no_token         no valid token can be had: 503 while the keeper is
//	                 starting or WeChat is busy (errcode -1), 502 after
//	                 another WeChat error or a store failure
//	upstream         502 WeChat answered an error or could not be reached
//	internal         502 anything else (the store failed, …)
//
// /status and /v1/status also accept HTTP Basic with the key as the
// password (any user name), which a browser can send.
//
// No answer and no log line holds a secret.
//
// A failed request (5xx) is logged at WARN when its failure differs from
// the last one, by status and kind (WeChat's errcode, not its errmsg,
// which ends in a per-call request id); the same failure again is counted
// and logged at most once a minute with the number of repeats, and the
// first success after failures is logged once. Refused requests (4xx, a
// foreign Host among them) are logged at INFO the same way, with the
// caller's address and Host. Build it with NewAdmin; it is safe for concurrent use.
type Admin struct {
	apps     atomic.Pointer[appSet]
	store    wechat.Store // AdminOptions.Store: SetKeeper's app's
	reloadFn func(context.Context) error
	key      [sha256.Size]byte
	hasKey   bool
	log      *slog.Logger
	clock    util.Clock
	timeout  time.Duration
	router   *mux.Router
	metrics  *metrics
	hosts    map[string]bool // AllowedHosts, lower case
	trusted  []netip.Prefix
	failures failLog // 5xx answers: the keeper or the store failed
	refusals failLog // 4xx answers: the caller's mistake, or a foreign Host
}

// NewAdmin returns the admin API on k, the keeper of a single-app server
// (see SetKeeper). k may be nil while the keeper is still starting, or
// when the apps are set with SetApps: until there is an app, every route
// but /metrics answers 503.
func NewAdmin(k Keeper, o AdminOptions) *Admin {
	a := &Admin{log: o.Logger, clock: o.Clock, timeout: o.Timeout, trusted: o.TrustedProxies,
		store: o.Store, reloadFn: o.Reload,
		refusals: failLog{line: "central: admin request refused", level: slog.LevelInfo}}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.clock == nil {
		a.clock = util.SystemClock{}
	}
	if a.timeout <= 0 {
		a.timeout = 30 * time.Second
	}
	if o.Key != "" {
		a.key, a.hasKey = sha256.Sum256([]byte(o.Key)), true
	}
	a.hosts = map[string]bool{}
	for _, h := range o.AllowedHosts {
		a.hosts[config.NormalizeHost(h)] = true
	}
	a.metrics = newMetrics(a)
	a.SetKeeper(k)

	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, http.StatusNotFound, errors.New("no such admin route: see GET /v1/apps, GET /v1/apps/{app_id}/token, POST /v1/apps/{app_id}/token/refresh, GET /v1/apps/{app_id}/ticket/jsapi, GET /v1/apps/{app_id}/jssdk/config (or /v1/token … on a single-app server), POST /v1/reload, GET /healthz, GET /metrics"))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed here", r.Method))
	})
	a.route(r, "/v1/apps", http.MethodGet, true, a.listApps)
	a.route(r, "/v1/reload", http.MethodPost, true, a.reload)
	a.appRoute(r, "/token", http.MethodGet, a.token)
	a.appRoute(r, "/token/refresh", http.MethodPost, a.refresh)
	a.appRoute(r, "/ticket/jsapi", http.MethodGet, a.ticket)
	a.appRoute(r, "/jssdk/config", http.MethodGet, a.jssdk)
	a.route(r, "/status", http.MethodGet, false, a.authorizePage(a.serveStatusPage))
	a.route(r, "/v1/status", http.MethodGet, false, a.authorizePage(a.serveStatusJSON))
	a.route(r, "/healthz", http.MethodGet, false, a.healthz)
	a.route(r, "/metrics", http.MethodGet, false, a.metrics.handler.ServeHTTP)
	a.router = r
	return a
}

// route adds h at path, behind the key check if auth, with its latency
// measured under path.
func (a *Admin) route(r *mux.Router, path, method string, auth bool, fn http.HandlerFunc) {
	var h http.Handler = fn
	if auth {
		h = a.authorize(h)
	}
	r.Handle(path, a.metrics.instrument(path, h)).Methods(method)
}

// SetKeeper makes k the one keeper the admin API serves, the app of a
// single-app server, with AdminOptions.Store (nil: no app yet). Its ID is
// k's AppID when k has an AppID method, as *wechat.Wechat has.
func (a *Admin) SetKeeper(k Keeper) {
	if k == nil {
		a.apps.Store(&appSet{})
		return
	}
	app := App{Keeper: k, Store: a.store}
	if id, ok := k.(interface{ AppID() string }); ok {
		app.ID = id.AppID()
	}
	if err := a.SetApps([]App{app}); err != nil {
		panic(err) // one app with a keeper is always accepted
	}
}

// ServeHTTP serves the admin API.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.hasKey && !a.hostAllowed(r.Host) {
		a.refuse(w, r, http.StatusForbidden, "foreign Host", fmt.Errorf("Host %q is not a loopback name: without WECHAT_ADMIN_KEY the admin API answers only Host localhost, 127.0.0.1 or [::1] (any port), against DNS rebinding; list other names in WECHAT_ADMIN_HOSTS or set WECHAT_ADMIN_KEY", r.Host))
		return
	}
	a.router.ServeHTTP(w, r)
}

// hostAllowed reports whether a key-less Admin answers a request with
// this Host header: localhost, a loopback address or an allowed name, with
// any port.
func (a *Admin) hostAllowed(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = config.NormalizeHost(host)
	if host == "" {
		return false
	}
	if host == "localhost" || a.hosts[host] {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// CallbackResult counts one callback check by outcome in the metric
// wxcentral_callback_checks_total, labelled with the app_id of the one
// app served ("" with several: use CallbackResultFor). Pass it to
// middleware.WithResultFunc.
func (a *Admin) CallbackResult(r *http.Request, res middleware.Result) {
	id := ""
	if set := a.apps.Load(); len(set.list) == 1 {
		id = set.list[0].ID
	}
	a.metrics.callbacks.WithLabelValues(id, res.Outcome.String()).Inc()
}

// CallbackResultFor returns CallbackResult for the callbacks of app
// appID, for middleware.WithResultFunc.
func (a *Admin) CallbackResultFor(appID string) func(*http.Request, middleware.Result) {
	return func(r *http.Request, res middleware.Result) {
		a.metrics.callbacks.WithLabelValues(appID, res.Outcome.String()).Inc()
	}
}

// Registry returns the Prometheus registry /metrics serves, to which a
// program may add collectors of its own.
func (a *Admin) Registry() *prometheus.Registry { return a.metrics.reg }

// authorize checks the bearer key in constant time.
func (a *Admin) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.hasKey {
			h := r.Header.Get("Authorization")
			scheme, got, _ := strings.Cut(h, " ")
			sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
			ok := strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare(sum[:], a.key[:]) == 1
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="wxcentral admin"`)
				msg := "the Authorization header is missing: send Authorization: Bearer <WECHAT_ADMIN_KEY>"
				if h != "" {
					msg = "the admin key is wrong: send Authorization: Bearer <WECHAT_ADMIN_KEY>"
				}
				a.fail(w, r, http.StatusUnauthorized, errors.New(msg))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Keeper returns the keeper of the one app the admin API serves now, or
// nil when it serves none or several (see SetKeeper, SetApps).
func (a *Admin) Keeper() Keeper {
	if set := a.apps.Load(); len(set.list) == 1 {
		return set.list[0].Keeper
	}
	return nil
}

func (a *Admin) notReady() error {
	return fmt.Errorf("%w: the token keeper is starting", wechat.ErrNoToken)
}

// credentialJSON is the answer of the token and ticket routes.
type credentialJSON struct {
	AccessToken string `json:"access_token,omitempty"`
	Ticket      string `json:"ticket,omitempty"`
	ExpiresAt   string `json:"expires_at"`
	ExpiresIn   int64  `json:"expires_in"`
}

func (a *Admin) credential(c wechat.Credential, ticket bool) credentialJSON {
	left := int64(c.ExpiresAt.Sub(a.clock.Now()) / time.Second)
	out := credentialJSON{ExpiresAt: c.ExpiresAt.UTC().Format(time.RFC3339), ExpiresIn: max(left, 0)}
	if ticket {
		out.Ticket = c.Value
	} else {
		out.AccessToken = c.Value
	}
	return out
}

func (a *Admin) token(w http.ResponseWriter, r *http.Request, app *App) {
	a.serveCredential(w, r, app.Keeper, false, Keeper.Token)
}

// serveCredential answers with the credential get returns: the access
// token, or the jsapi_ticket when ticket is set.
func (a *Admin) serveCredential(w http.ResponseWriter, r *http.Request, k Keeper, ticket bool,
	get func(Keeper, context.Context) (wechat.Credential, error)) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	c, err := get(k, ctx)
	if err != nil {
		a.failErr(w, r, err, "")
		return
	}
	a.failures.succeeded(a.log)
	writeJSON(w, http.StatusOK, a.credential(c, ticket))
}

func (a *Admin) refresh(w http.ResponseWriter, r *http.Request, app *App) {
	stale, err := staleToken(w, r)
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, err)
		return
	}
	k := app.Keeper
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	tok, err := k.Refresh(ctx, stale)
	if err != nil {
		a.failErr(w, r, err, stale)
		return
	}
	c, err := k.Token(ctx)
	if err != nil {
		a.failErr(w, r, err, stale)
		return
	}
	if c.Value != tok {
		// Another refresh replaced tok meanwhile; c is newer and valid.
		a.log.Debug("central: the token changed during a passive refresh; answering the newer one")
	}
	a.failures.succeeded(a.log)
	writeJSON(w, http.StatusOK, a.credential(c, false))
}

// staleToken reads the stale token from a JSON body {"stale":"…"} or a
// form field stale.
func staleToken(w http.ResponseWriter, r *http.Request) (string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxRefreshBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var stale string
	switch ct {
	case "application/json":
		var body struct {
			Stale *string `json:"stale"`
		}
		dec := json.NewDecoder(r.Body)
		if err := dec.Decode(&body); err != nil {
			return "", fmt.Errorf("the body is not a JSON object like {\"stale\":\"<token WeChat rejected>\"}: %w", err)
		}
		if body.Stale != nil {
			stale = *body.Stale
		}
	case "", "application/x-www-form-urlencoded", "multipart/form-data":
		if err := r.ParseForm(); err != nil {
			return "", fmt.Errorf("the form does not parse: %w", err)
		}
		stale = r.PostForm.Get("stale")
		if stale == "" && ct == "" {
			// No form: maybe a JSON body sent without a Content-Type.
			return "", errors.New("stale is missing: send {\"stale\":\"<token WeChat rejected>\"} with Content-Type: application/json, or a form field stale")
		}
	default:
		return "", fmt.Errorf("Content-Type %q is not supported: send application/json or a form", ct)
	}
	if stale == "" {
		return "", errors.New("stale is missing: give the token WeChat rejected (errcode 40001, 40014 or 42001); GET /v1/token returns the current one")
	}
	if strings.ContainsAny(stale, " \t\r\n") || len(stale) > 1024 {
		return "", errors.New("stale does not look like an access token")
	}
	return stale, nil
}

func (a *Admin) ticket(w http.ResponseWriter, r *http.Request, app *App) {
	if a.noJSAPI(w, r, app) {
		return
	}
	a.serveCredential(w, r, app.Keeper, true, Keeper.JSAPITicket)
}

// noJSAPI answers 400 and reports true for an app without a
// jsapi_ticket: a Mini Program or Mini Game, for which WeChat answers
// getticket with 40048.
func (a *Admin) noJSAPI(w http.ResponseWriter, r *http.Request, app *App) bool {
	if app.hasJSAPI() {
		return false
	}
	a.fail(w, r, http.StatusBadRequest, fmt.Errorf("app %q is a %s: only an official account has a jsapi_ticket and JS-SDK signatures (WeChat answers 40048 for the others)", app.ID, app.Kind))
	return true
}

func (a *Admin) jssdk(w http.ResponseWriter, r *http.Request, app *App) {
	if a.noJSAPI(w, r, app) {
		return
	}
	page := r.URL.Query().Get("url")
	if _, err := util.ParseHTTPURL(page); err != nil {
		a.fail(w, r, http.StatusBadRequest, errors.New("url must be the page's absolute http(s) URL, query-escaped: /v1/jssdk/config?url=https%3A%2F%2Fexample.com%2Fpage"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	cfg, err := app.Keeper.JSSDKConfig(ctx, page)
	if err != nil {
		a.failErr(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, struct {
		AppID     string `json:"appId"`
		Timestamp int64  `json:"timestamp"`
		NonceStr  string `json:"nonceStr"`
		Signature string `json:"signature"`
	}{cfg.AppID, cfg.Timestamp, cfg.NonceStr, cfg.Signature})
}

// healthJSON is the answer of /healthz.
type healthJSON struct {
	Status      string `json:"status"`
	State       string `json:"state"`
	ExpiresAt   string `json:"expires_at,omitempty"`
	ExpiresIn   int64  `json:"expires_in"`
	QuotaUsed   int    `json:"quota_used"`
	QuotaBudget int    `json:"quota_budget"`
	Store       string `json:"store"`
	// LockWaitSince and LockWaitSeconds say that a refresh has been
	// waiting since then for the store's lock, held by another process or
	// host.
	LockWaitSince   string `json:"lock_wait_since,omitempty"`
	LockWaitSeconds int64  `json:"lock_wait_seconds,omitempty"`
	Error           string `json:"error,omitempty"`
}

func (a *Admin) healthz(w http.ResponseWriter, r *http.Request) {
	set := a.apps.Load()
	var app *App
	if id := r.URL.Query().Get("app_id"); id != "" {
		if app = set.byID[id]; app == nil {
			a.fail(w, r, http.StatusNotFound, fmt.Errorf("no app %q is configured: GET /v1/apps lists the apps", id))
			return
		}
	} else {
		switch len(set.list) {
		case 0:
			writeJSON(w, http.StatusServiceUnavailable, healthJSON{Status: "unavailable", State: string(wechat.StateInvalid),
				Store: "unknown", Error: a.notReady().Error()})
			return
		case 1:
			app = set.list[0]
		default:
			a.appHealth(w, set)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	st := app.Keeper.Status(ctx)
	h := healthJSON{Status: "ok", State: string(st.State), QuotaUsed: st.QuotaUsed, QuotaBudget: st.QuotaBudget, Store: "ok"}
	if !st.StoreReachable {
		h.Store = "unreachable"
	}
	if !st.ExpiresAt.IsZero() {
		h.ExpiresAt = st.ExpiresAt.UTC().Format(time.RFC3339)
		h.ExpiresIn = max(int64(st.ExpiresAt.Sub(a.clock.Now())/time.Second), 0)
	}
	blocked := ""
	if !st.LockWaitSince.IsZero() {
		waited := max(a.clock.Now().Sub(st.LockWaitSince), 0).Truncate(time.Second)
		h.LockWaitSince = st.LockWaitSince.UTC().Format(time.RFC3339)
		h.LockWaitSeconds = int64(waited / time.Second)
		blocked = fmt.Sprintf("refreshes are blocked: waiting %v for the store's lock, held by another process or host", waited)
	}
	code := http.StatusOK
	if !st.Healthy {
		code = http.StatusServiceUnavailable
		h.Status = "unavailable"
		h.Error = "no valid access token"
		if blocked != "" {
			h.Error += "; " + blocked
		}
		if st.LastError != "" {
			h.Error += ": " + st.LastError
		}
	} else if blocked != "" {
		h.Error = blocked
	}
	writeJSON(w, code, h)
}

// errorJSON is the body of every error answer.
type errorJSON struct {
	Error   string `json:"error"`
	Reason  string `json:"reason"`
	Errcode int    `json:"errcode,omitempty"`
}

// failErr answers err from the keeper with the status its cause calls for.
// secret, if set, is blotted out of the message.
func (a *Admin) failErr(w http.ResponseWriter, r *http.Request, err error, secret string) {
	code, errcode := StatusOf(err)
	msg := err.Error()
	if secret != "" {
		msg = strings.ReplaceAll(msg, secret, "[redacted]")
	}
	key := failKey(code, err)
	reason := ErrorReason(err)
	now := a.clock.Now()
	if errors.Is(context.Cause(r.Context()), ErrShuttingDown) {
		code, msg = http.StatusServiceUnavailable, ErrShuttingDown.Error()+": "+msg
		key, reason = failKey(code, ErrShuttingDown), ReasonShuttingDown
	} else if ra := retryAfter(err, now); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	a.failures.failed(a.log, now, r.URL.Path, code, key, msg)
	writeJSON(w, code, errorJSON{Error: msg, Reason: reason, Errcode: errcode})
}

// ErrShuttingDown is the cause with which a server (package
// wechat/server's Serve) cancels the admin requests still waiting when its
// shutdown grace ends; the Admin answers them 503 with reason
// "shutting_down".
var ErrShuttingDown = errors.New("the server is shutting down")

// fail answers a request error.
func (a *Admin) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	if code >= 500 {
		a.failures.failed(a.log, a.clock.Now(), r.URL.Path, code, failKey(code, err), err.Error())
		writeJSON(w, code, errorJSON{Error: err.Error(), Reason: ErrorReason(err)})
		return
	}
	a.refuse(w, r, code, err.Error(), err)
}

// refuse answers a 4xx and logs it through the refusals' limiter under
// kind, with the caller's address and Host: a web page looping on a
// rebinding name, or a client with a wrong key, makes a line a minute.
func (a *Admin) refuse(w http.ResponseWriter, r *http.Request, code int, kind string, err error) {
	remote := middleware.ClientAddr(r, a.trusted)
	attrs := []any{"remote", remote, "host", r.Host}
	if remote != r.RemoteAddr {
		attrs = append(attrs, "peer", r.RemoteAddr)
	}
	a.refusals.failed(a.log, a.clock.Now(), r.URL.Path, code, strconv.Itoa(code)+" "+kind, err.Error(), attrs...)
	writeJSON(w, code, errorJSON{Error: err.Error(), Reason: refusalReason(code)})
}

// ridPattern matches the request id WeChat appends to every errmsg.
var ridPattern = regexp.MustCompile(` ?rid: [0-9A-Za-z-]+`)

// failKey is what makes two failed admin requests the same failure for
// the log's limiter: the status and the kind of error, WeChat's errcode
// and API for a WeChat error, else a reason that names one condition
// (cooldown, quota, …), never text that differs from call to call
// (WeChat's errmsg ends in a request id, " rid: …", so keying on it logged
// every failure). Other errors (no_token, internal: one reason, many
// causes) are keyed on their text without request ids.
func failKey(code int, err error) string {
	var apiErr *wechat.APIError
	if errors.As(err, &apiErr) {
		return fmt.Sprintf("%d %s errcode %d", code, apiErr.API, apiErr.Code)
	}
	switch reason := ErrorReason(err); reason {
	case ReasonShuttingDown, wechat.ReasonClosed, wechat.ReasonCooldown, wechat.ReasonQuotaExhausted,
		wechat.ReasonRateLimited, wechat.ReasonTimeout:
		return strconv.Itoa(code) + " " + reason
	}
	return strconv.Itoa(code) + " " + ridPattern.ReplaceAllString(err.Error(), "")
}

// StatusOf maps an error of the token keeper to the admin API's HTTP
// status, and the WeChat errcode it carries (0 if none):
//
//   - 503 when the server is shutting down (ErrShuttingDown) or the keeper
//     is closed (wechat.ErrClosed); when fetches are paused after a
//     credential error (wechat.ErrCooldown, which ends by itself: the
//     admin API sets Retry-After to its end), whatever WeChat error started
//     the pause; when the daily quota is exhausted (wechat.ErrQuotaExhausted)
//     or fetches are rate limited (wechat.ErrRateLimited); when WeChat said
//     it is busy (errcode -1 or -1000: retry later); and when the request
//     timed out or was cancelled;
//   - 502 for every other error: WeChat answered another error (errcode
//     set), could not be reached, or the store failed.
func StatusOf(err error) (status, errcode int) {
	var apiErr *wechat.APIError
	hasAPI := errors.As(err, &apiErr)
	if hasAPI {
		errcode = apiErr.Code
	}
	switch {
	case errors.Is(err, ErrShuttingDown),
		errors.Is(err, wechat.ErrClosed),
		errors.Is(err, wechat.ErrCooldown),
		errors.Is(err, wechat.ErrQuotaExhausted),
		errors.Is(err, wechat.ErrRateLimited),
		hasAPI && (apiErr.Code == -1 || apiErr.Code == -1000),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, errcode
	}
	return http.StatusBadGateway, errcode
}

// The reasons of the admin API's error bodies that are not the keeper's
// (those are wechat.ErrorReason's, the wechat.Reason constants). Like
// those they are stable: clients match them.
const (
	ReasonShuttingDown     = "shutting_down"      // 503, ErrShuttingDown
	ReasonBadRequest       = "bad_request"        // 400, the request's input is wrong
	ReasonUnauthorized     = "unauthorized"       // 401, the bearer key is missing or wrong
	ReasonForbiddenHost    = "forbidden_host"     // 403, a Host a key-less Admin does not answer
	ReasonNotFound         = "not_found"          // 404, no such route
	ReasonMethodNotAllowed = "method_not_allowed" // 405, the route takes another method
	ReasonReloadRefused    = "reload_refused"     // 422, POST /v1/reload found the configuration bad; the running one is kept
)

// ErrorReason names why a request of the admin API failed with err: the
// "reason" of its error body. It is ReasonShuttingDown for
// ErrShuttingDown, else wechat.ErrorReason(err).
func ErrorReason(err error) string {
	if errors.Is(err, ErrShuttingDown) {
		return ReasonShuttingDown
	}
	return wechat.ErrorReason(err)
}

// refusalReason is the reason of a 4xx answer with status code.
func refusalReason(code int) string {
	switch code {
	case http.StatusUnauthorized:
		return ReasonUnauthorized
	case http.StatusForbidden:
		return ReasonForbiddenHost
	case http.StatusNotFound:
		return ReasonNotFound
	case http.StatusMethodNotAllowed:
		return ReasonMethodNotAllowed
	}
	return ReasonBadRequest
}

// retryAfter returns the Retry-After value, in whole seconds rounded up,
// for a request failed with err at now: for a cooldown, the time left
// until it ends; otherwise "".
func retryAfter(err error, now time.Time) string {
	var cd *wechat.CooldownError
	if !errors.As(err, &cd) || !cd.Until.After(now) {
		return ""
	}
	left := cd.Until.Sub(now)
	secs := int64(left / time.Second)
	if left%time.Second != 0 {
		secs++
	}
	return strconv.FormatInt(secs, 10)
}

// writeJSON answers v as JSON with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	b = append(b, '\n')
	_, _ = w.Write(b)
}

// failLogEvery is how often a repeated admin failure is logged again.
const failLogEvery = time.Minute

// failLog keeps the log of failed admin requests to state changes: a
// failure unlike the last one is logged at once, the same failure again
// at most once per failLogEvery with the count of repeats, and the first
// success after failures once. A business server looping on GET /v1/token
// while no token can be had so makes a line a minute, not two a call.
type failLog struct {
	line  string     // the log message; "" is "central: admin request failed"
	level slog.Level // of the line; the zero value is Info, so "" means Warn

	failing  atomic.Bool // read without the lock on the success path
	mu       sync.Mutex
	last     string    // failKey of the failure last logged
	loggedAt time.Time // when it was last logged
	repeats  int       // of last, since loggedAt
	total    int       // failures since the last success
}

// failed logs, or counts, one failed request: key says which failures
// are the same, msg (the latest's message) and attrs are logged with it.
func (f *failLog) failed(log *slog.Logger, now time.Time, route string, code int, key, msg string, extra ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing.Store(true)
	f.total++
	if key == f.last && now.Sub(f.loggedAt) < failLogEvery {
		f.repeats++
		return
	}
	attrs := append([]any{"route", route, "status", code, "err", msg}, extra...)
	if key == f.last {
		attrs = append(attrs, "repeated", f.repeats, "over", now.Sub(f.loggedAt).Truncate(time.Second))
	} else if f.repeats > 0 {
		attrs = append(attrs, "previous_repeated", f.repeats)
	}
	line, level := f.line, f.level
	if line == "" {
		line, level = "central: admin request failed", slog.LevelWarn
	}
	log.Log(context.Background(), level, line, attrs...)
	f.last, f.loggedAt, f.repeats = key, now, 0
}

// succeeded notes a successful request; the first after failures is
// logged.
func (f *failLog) succeeded(log *slog.Logger) {
	if !f.failing.Load() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.failing.Load() {
		return
	}
	log.Info("central: admin requests succeed again", "failed_requests", f.total)
	f.failing.Store(false)
	f.last, f.repeats, f.total = "", 0, 0
}
