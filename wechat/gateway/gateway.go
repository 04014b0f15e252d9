// Package gateway answers WeChat's own API for the accounts a central
// server keeps, so that any WeChat SDK, in any language, shares the
// server's tokens by changing its API base URL alone, and only the
// gateway's address needs to be on each account's IP whitelist.
//
// A Gateway is an http.Handler. It answers the token endpoints itself and
// proxies every other API to WeChat with the right token:
//
//	GET  /cgi-bin/token?grant_type=client_credential&appid=&secret=
//	     {"access_token":"<the kept token>","expires_in":<seconds left>}
//	POST /cgi-bin/stable_token  {"grant_type","appid","secret","force_refresh"}
//	     the same; force_refresh:true is a passive refresh of the token
//	     held, under every guard of the keeper
//	GET  /cgi-bin/ticket/getticket?access_token=&type=jsapi|wx_card
//	     {"errcode":0,"errmsg":"ok","ticket":"…","expires_in":N}
//	/sns/…  passed through untouched (user OAuth tokens, jscode2session)
//	any other path  proxied with the caller's access_token replaced by the
//	     account's current token
//
// The token endpoints check the AppSecret (in constant time) against the
// configured account's and answer WeChat's own errors (40002, 41002,
// 40013, 41004, 40125, 44002, 47001); they never fetch unless the keeper
// itself must. A proxied call must carry a token this gateway issued: the
// current token of an account, or one it replaced less than the grace
// ago (Options.Grace, WeChat's five minutes). Any other token is refused
// here with 40014 and never forwarded: the gateway is not an open
// forwarder. A retired token past its grace gets 40001, as WeChat would
// answer it, so that SDKs fetch the current one.
//
// Only the query's access_token is rewritten; the body, and headers such
// as Content-Type, Content-Disposition and Wechatmp-* (the Mini Program's
// API signature), pass byte for byte both ways, so signed bodies (xpay,
// API security) stay valid. Token issuers other than the two answered
// here (third-party platform tokens) and third-party platform APIs are
// refused: this gateway keeps no component token.
//
// When WeChat rejects the injected token (a JSON answer with 40001, 40014
// or 42001) the gateway makes a passive refresh of exactly that token
// (concurrent rejections share one) and retries once with the new one: a
// GET always, a POST when its body was at most Options.MaxRetryBody (1 MiB
// by default) and so could be kept. A larger POST (a media upload) streams
// through and is not retried: its caller sees WeChat's answer. The SDK
// behind the gateway thus never sees a token error it could not fix.
//
// Calls go through a wechat.Upstream, so they fail over across API bases
// with the keepers. The gateway counts its calls in
// wxcentral_gateway_calls_total{app_id,family,outcome} (outcome ok,
// errcode, token_retried, refused, upstream_error) and their latency in
// wxcentral_gateway_call_duration_seconds{family}, and logs every refused
// or retried call without any token.
package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/wechat"
)

// A Keeper is what the gateway needs of an account's token keeper;
// *wechat.Wechat is one.
type Keeper interface {
	// Token returns a valid token, refreshing if it must.
	Token(ctx context.Context) (wechat.Credential, error)
	// Held returns the valid token in memory, without waiting.
	Held() (wechat.Credential, bool)
	// Replaced returns the token held before, and when it was replaced.
	Replaced() (wechat.Credential, time.Time, bool)
	// Refresh is the passive refresh of the rejected token stale.
	Refresh(ctx context.Context, stale string) (string, error)
	// Ticket returns a valid ticket of kind (jsapi_ticket, wx_card).
	Ticket(ctx context.Context, kind wechat.Kind) (wechat.Credential, error)
}

// An App is one account the gateway serves.
type App struct {
	// ID is the account's AppID.
	ID string
	// Kind is the account's kind; only an official account has tickets.
	Kind config.AppKind
	// Secret is the AppSecret the token endpoints check callers against.
	Secret string
	// Keeper keeps the account's token.
	Keeper Keeper
}

// Options configure New. The zero value is usable but for Upstream.
type Options struct {
	// Upstream is where proxied calls go (required): the server's, so
	// that the gateway fails over with the keepers. The gateway sends with
	// a client of its own (no overall timeout, for large media) on the
	// same switch (Upstream.WithClient) unless HTTPClient is set.
	Upstream *wechat.Upstream
	// HTTPClient, if set, sends the proxied calls.
	HTTPClient *http.Client
	// Grace is how long a token the gateway issued is still accepted from
	// a caller after the account's token was replaced. Default 5 min,
	// WeChat's grace for the previous token.
	Grace time.Duration
	// MaxRetryBody is the largest request body kept for a retry after a
	// token error (and a failover). Default 1 MiB.
	MaxRetryBody int64
	// Registerer receives the gateway's metrics. Default: none.
	Registerer prometheus.Registerer
	// Logger receives a line per refused or retried call. Default: none.
	Logger *slog.Logger
	// Clock tells the time of the grace. Default: the system clock.
	Clock util.Clock
}

// Defaults of Options.
const (
	DefaultGrace        = 5 * time.Minute
	DefaultMaxRetryBody = 1 << 20
)

// A Gateway is WeChat's API for the accounts of a central server (see the
// package documentation). Build it with New; it is safe for concurrent
// use.
type Gateway struct {
	up      *wechat.Upstream
	grace   time.Duration
	maxKeep int64
	log     *slog.Logger
	clock   util.Clock
	m       *metrics

	apps atomic.Pointer[map[string]*App]

	mu      sync.Mutex
	issued  map[string]issue  // by token
	current map[string]string // each app's current token, by AppID
}

// An issue is a token the gateway knows it handed out or injected.
type issue struct {
	app     string
	retired time.Time // when it was replaced; zero while current
}

// New returns a Gateway with no apps (see SetApps).
func New(o Options) (*Gateway, error) {
	if o.Upstream == nil {
		return nil, errors.New("gateway: Options.Upstream is nil")
	}
	g := &Gateway{grace: o.Grace, maxKeep: o.MaxRetryBody, log: o.Logger, clock: o.Clock,
		issued: map[string]issue{}, current: map[string]string{}}
	if o.HTTPClient != nil {
		g.up = o.Upstream.WithClient(o.HTTPClient)
	} else {
		g.up = o.Upstream.WithClient(streamingClient())
	}
	if g.grace <= 0 {
		g.grace = DefaultGrace
	}
	if g.maxKeep <= 0 {
		g.maxKeep = DefaultMaxRetryBody
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.clock == nil {
		g.clock = util.SystemClock{}
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	g.m = m
	empty := map[string]*App{}
	g.apps.Store(&empty)
	return g, nil
}

// SetApps makes apps the accounts the gateway serves. Tokens issued for an
// account no longer listed are refused from now on.
func (g *Gateway) SetApps(apps []App) error {
	m := make(map[string]*App, len(apps))
	for i := range apps {
		a := apps[i]
		switch {
		case a.ID == "":
			return errors.New("gateway: an app has no ID")
		case a.Keeper == nil:
			return fmt.Errorf("gateway: app %s has no keeper", a.ID)
		case m[a.ID] != nil:
			return fmt.Errorf("gateway: app %s is listed twice", a.ID)
		}
		m[a.ID] = &a
	}
	g.apps.Store(&m)
	g.mu.Lock()
	defer g.mu.Unlock()
	for tok, is := range g.issued {
		if m[is.app] == nil {
			delete(g.issued, tok)
		}
	}
	for id := range g.current {
		if m[id] == nil {
			delete(g.current, id)
		}
	}
	g.m.forget(m)
	return nil
}

func (g *Gateway) app(id string) *App { return (*g.apps.Load())[id] }

// ServeHTTP answers one call of WeChat's API.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := &call{g: g, w: w, r: r, family: familyOf(r.URL.Path)}
	switch r.URL.Path {
	case "/cgi-bin/token":
		c.family = "token"
		g.serveToken(c)
	case "/cgi-bin/stable_token":
		c.family = "token"
		g.serveStableToken(c)
	case "/cgi-bin/ticket/getticket":
		g.serveTicket(c)
	default:
		g.proxy(c)
	}
	g.m.observe(c, time.Since(start))
}

// A call is one request to the gateway and what became of it.
type call struct {
	g       *Gateway
	w       http.ResponseWriter
	r       *http.Request
	family  string
	app     string // AppID, once known
	outcome string
}

// errcode answers WeChat's error shape with code and msg (WeChat's own
// message for code when msg is empty), HTTP 200 as WeChat does.
func (c *call) errcode(code int, msg string, outcome string) {
	if msg == "" {
		msg = errmsgs[code]
	}
	c.outcome = outcome
	writeJSON(c.w, map[string]any{"errcode": code, "errmsg": msg})
}

// refuse answers a call refused here, and logs it.
func (c *call) refuse(code int, msg, why string) {
	c.g.log.Info("gateway: refused a call", "path", c.r.URL.Path, "app_id", c.app, "errcode", code, "why", why,
		"remote", c.r.RemoteAddr)
	c.errcode(code, msg, outcomeRefused)
}

// errmsgs are WeChat's messages of the errcodes the gateway answers
// itself.
var errmsgs = map[int]string{
	-1:    "system error",
	40001: "invalid credential, access_token is invalid or not latest",
	40002: "invalid grant_type",
	40013: "invalid appid",
	40014: "invalid access_token",
	40097: "invalid args",
	40125: "invalid appsecret",
	41001: "access_token missing",
	41002: "appid missing",
	41004: "appsecret missing",
	43001: "require GET method",
	43002: "require POST method",
	44002: "empty post data",
	47001: "data format error",
	48001: "api unauthorized",
}

func writeJSON(w http.ResponseWriter, v any) {
	data, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

// checkSecret returns the app of appID when secret is its AppSecret, or
// WeChat's errcode for why not, in WeChat's order of checks.
func (g *Gateway) checkSecret(grantType, appID, secret string) (*App, int) {
	switch {
	case grantType != "client_credential":
		return nil, 40002
	case appID == "":
		return nil, 41002
	}
	a := g.app(appID)
	switch {
	case a == nil:
		return nil, 40013
	case secret == "":
		return nil, 41004
	case subtle.ConstantTimeCompare([]byte(secret), []byte(a.Secret)) != 1:
		return nil, 40125
	}
	return a, 0
}

// tokenReply is WeChat's answer of both token endpoints.
type tokenReply struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

func (g *Gateway) serveToken(c *call) {
	if c.r.Method != http.MethodGet {
		c.errcode(43001, "", outcomeRefused)
		return
	}
	q := c.r.URL.Query()
	a, code := g.checkSecret(q.Get("grant_type"), q.Get("appid"), q.Get("secret"))
	if code != 0 {
		c.app = q.Get("appid")
		c.refuse(code, "", "the token endpoint's credentials")
		return
	}
	c.app = a.ID
	g.answerToken(c, a, false)
}

func (g *Gateway) serveStableToken(c *call) {
	if c.r.Method != http.MethodPost {
		c.errcode(43002, "", outcomeRefused)
		return
	}
	var req struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	body, err := readSmall(c.r, 64<<10)
	switch {
	case err != nil:
		c.errcode(47001, "", outcomeRefused)
		return
	case len(strings.TrimSpace(string(body))) == 0:
		c.errcode(44002, "", outcomeRefused)
		return
	case json.Unmarshal(body, &req) != nil:
		c.errcode(47001, "", outcomeRefused)
		return
	}
	a, code := g.checkSecret(req.GrantType, req.AppID, req.Secret)
	if code != 0 {
		c.app = req.AppID
		c.refuse(code, "", "the token endpoint's credentials")
		return
	}
	c.app = a.ID
	g.answerToken(c, a, req.ForceRefresh)
}

// answerToken answers a's token, after a passive refresh of the one held
// when force is set.
func (g *Gateway) answerToken(c *call, a *App, force bool) {
	ctx := c.r.Context()
	cred, err := a.Keeper.Token(ctx)
	if err == nil && force {
		// A passive refresh of the token held, under the keeper's guards:
		// when they refuse, the token held is still valid and is served.
		if _, rerr := a.Keeper.Refresh(ctx, cred.Value); rerr != nil {
			g.log.Warn("gateway: a forced refresh was refused; serving the token held", "app_id", a.ID, "err", rerr)
		}
		cred, err = a.Keeper.Token(ctx)
	}
	if err != nil {
		g.log.Warn("gateway: no token to hand out", "app_id", a.ID, "err", err)
		c.errcode(-1, "system error: the central server has no token for this app now", outcomeUpstream)
		return
	}
	g.note(a.ID, cred)
	c.outcome = outcomeOK
	writeJSON(c.w, tokenReply{AccessToken: cred.Value, ExpiresIn: secondsLeft(cred, g.clock.Now())})
}

// secondsLeft is the whole seconds of cred's life left at now, at least 1.
func secondsLeft(cred wechat.Credential, now time.Time) int64 {
	return max(int64(cred.ExpiresAt.Sub(now)/time.Second), 1)
}

func (g *Gateway) serveTicket(c *call) {
	if c.r.Method != http.MethodGet {
		c.errcode(43001, "", outcomeRefused)
		return
	}
	q := c.r.URL.Query()
	a, ok := g.caller(c, q["access_token"])
	if !ok {
		return
	}
	var kind wechat.Kind
	switch q.Get("type") {
	case "jsapi":
		kind = wechat.KindJSAPITicket
	case "wx_card":
		kind = wechat.KindCardTicket
	default:
		c.errcode(40097, "invalid args, type must be jsapi or wx_card", outcomeRefused)
		return
	}
	if a.Kind == config.MiniProgram || a.Kind == config.MiniGame {
		c.refuse(48001, "api unauthorized: a "+string(a.Kind)+" has no "+q.Get("type")+" ticket", "no ticket for the kind")
		return
	}
	t, err := a.Keeper.Ticket(c.r.Context(), kind)
	if err != nil {
		g.log.Warn("gateway: no ticket to hand out", "app_id", a.ID, "type", q.Get("type"), "err", err)
		c.errcode(-1, "system error: the central server has no ticket for this app now", outcomeUpstream)
		return
	}
	c.outcome = outcomeOK
	writeJSON(c.w, struct {
		Errcode   int    `json:"errcode"`
		Errmsg    string `json:"errmsg"`
		Ticket    string `json:"ticket"`
		ExpiresIn int64  `json:"expires_in"`
	}{0, "ok", t.Value, secondsLeft(t, g.clock.Now())})
}

// caller returns the app whose token the call carries (the access_token
// values of its query), or answers the call's refusal.
func (g *Gateway) caller(c *call, tokens []string) (*App, bool) {
	switch {
	case len(tokens) == 0 || tokens[0] == "":
		c.refuse(41001, "", "no access_token")
		return nil, false
	case len(tokens) > 1:
		c.refuse(40014, "invalid access_token: the query carries more than one", "several access_token parameters")
		return nil, false
	}
	a, retired := g.recognise(tokens[0])
	switch {
	case a != nil:
		c.app = a.ID
		return a, true
	case retired != "":
		c.app = retired
		c.refuse(40001, "", "a token this gateway replaced more than the grace ago")
	default:
		c.refuse(40014, "invalid access_token: not issued by this gateway (get one from its /cgi-bin/token)", "a token not issued here")
	}
	return nil, false
}

// recognise returns the app of a token the gateway issued: the current
// token of an app, or one replaced less than the grace ago. For a token
// replaced longer ago it returns the AppID as retired.
func (g *Gateway) recognise(tok string) (a *App, retired string) {
	now := g.clock.Now()
	g.mu.Lock()
	is, ok := g.issued[tok]
	g.mu.Unlock()
	if !ok {
		// Not seen yet: one of the tokens held now, or just replaced?
		// (A caller may have it from /v1/token, or from before the
		// gateway restarted.)
		for _, app := range *g.apps.Load() {
			if cur, ok := app.Keeper.Held(); ok {
				g.note(app.ID, cur)
				if cur.Value == tok {
					return app, ""
				}
			}
			if prev, at, ok := app.Keeper.Replaced(); ok && prev.Value == tok && now.Sub(at) < g.grace {
				g.mu.Lock()
				if _, seen := g.issued[tok]; !seen {
					g.issued[tok] = issue{app: app.ID, retired: at}
				}
				g.mu.Unlock()
				return app, ""
			}
		}
		return nil, ""
	}
	app := g.app(is.app)
	if app == nil {
		return nil, ""
	}
	if cur, ok := app.Keeper.Held(); ok {
		g.note(app.ID, cur) // retires tok if the keeper moved on
	}
	g.mu.Lock()
	is, ok = g.issued[tok]
	g.mu.Unlock()
	if ok && (is.retired.IsZero() || now.Sub(is.retired) < g.grace) {
		return app, ""
	}
	return nil, app.ID
}

// forgetAfter is how long a retired token is remembered, to be answered
// 40001 (which makes SDKs fetch anew) rather than 40014: a token's life.
const forgetAfter = 2 * time.Hour

// note records that cred is app's current token: the one it replaces is
// retired from cred's fetch time (when WeChat's grace for it began), and
// tokens retired longer than forgetAfter ago are forgotten.
func (g *Gateway) note(app string, cred wechat.Credential) {
	g.mu.Lock()
	defer g.mu.Unlock()
	prev, ok := g.current[app]
	if ok && prev == cred.Value {
		return
	}
	now := g.clock.Now()
	if ok {
		at := cred.FetchedAt
		if at.IsZero() || at.After(now) {
			at = now
		}
		g.issued[prev] = issue{app: app, retired: at}
	}
	g.current[app] = cred.Value
	g.issued[cred.Value] = issue{app: app}
	for tok, is := range g.issued {
		if !is.retired.IsZero() && now.Sub(is.retired) >= forgetAfter {
			delete(g.issued, tok)
		}
	}
}
