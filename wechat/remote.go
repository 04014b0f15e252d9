package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"golang.org/x/sync/singleflight"

	"github.com/wxcentral/wxcentral/util"
)

// DefaultRemoteEarlyExpiry is how long before a token's expiry a Remote
// stops serving it from memory and asks the central server again.
const DefaultRemoteEarlyExpiry = time.Minute

// A Remote is a TokenSource (and a CredentialSource) backed by the admin
// API of a central control server (wxcentral serve, or any server that
// speaks its admin API): the business servers of other processes and hosts
// use it so that the central server alone fetches tokens. Build it with
// NewRemote.
//
// AccessToken (and Token) serve the token from memory, without I/O or
// allocation, until shortly before the expiry the server gave (see
// RemoteOptions.EarlyExpiry), then ask GET /v1/token again; concurrent misses
// share one request. The token is held in the cache the local keeper
// holds its own in, with the same early-expiry rule. Refresh is the
// passive refresh, POST /v1/token/refresh. The admin key never appears in
// an error.
//
// A Remote is safe for concurrent use; wechat.Client{Source: remote} works
// with it unchanged.
type Remote struct {
	base   string // no trailing slash
	app    string // RemoteOptions.App
	auth   string // "Bearer <key>", or ""
	hc     *http.Client
	clock  Clock
	cache  credCache // the last token answered; early is RemoteOptions.EarlyExpiry
	flight singleflight.Group
}

// RemoteOptions configures NewRemote. The zero value is the defaults, as
// Options is the keeper's.
type RemoteOptions struct {
	// HTTPClient makes the admin API calls. Default: a client with a 35 s
	// timeout (a refresh on the server may take 30 s). The Remote uses a
	// copy that refuses redirects (see RedirectError).
	HTTPClient *http.Client

	// Clock is what the cache expires by. Default: the system clock.
	Clock Clock

	// EarlyExpiry is how long before its expiry a token is no longer
	// served from memory; 0 means DefaultRemoteEarlyExpiry. The rule is
	// the local keeper's (Options.RefreshBefore): for a token with less
	// than twice EarlyExpiry left when the answer arrived, half of what was
	// left is used instead, so short-lived tokens are still cached a while.
	//
	// Before the Remote shared the keeper's cache, the rule was a quarter
	// of what was left for a token with less than four times EarlyExpiry
	// left. A token with at least 4·EarlyExpiry left (with the defaults,
	// any token the server answers more than 4 minutes before its expiry)
	// is asked for again at the same instant as before; one with less left
	// is asked for again sooner: with 2 to 4 times EarlyExpiry left,
	// EarlyExpiry before its expiry (it was a quarter of what was left);
	// with less, half-way (it was three quarters of the way).
	EarlyExpiry time.Duration

	// App is the AppID of the account to ask for, on a server that keeps
	// several (its WECHAT_CONFIG lists them): the Remote then asks
	// /v1/apps/{App}/token and /v1/apps/{App}/token/refresh. Empty: the
	// single-app routes /v1/token and /v1/token/refresh, which a server
	// of several apps answers 400. A server of one app answers both.
	App string
}

// NewRemote returns a TokenSource on the admin API at baseURL, such as
// "http://127.0.0.1:3101", authenticating with key (WECHAT_ADMIN_KEY of the
// server; "" when it has none), with opts (the zero value for the
// defaults). It makes no request; the first AccessToken does.
func NewRemote(baseURL, key string, opts RemoteOptions) (*Remote, error) {
	if _, err := util.ParseHTTPBase(baseURL); err != nil {
		shown := "the URL given"
		if u, perr := url.Parse(baseURL); perr == nil {
			shown = fmt.Sprintf("%q", redactURL(u.Redacted()))
		}
		return nil, fmt.Errorf("wechat: NewRemote: %s is not the http(s) base URL of a central server (%v), like http://127.0.0.1:3101", shown, err)
	}
	if strings.ContainsAny(key, " \t\r\n") {
		return nil, errors.New("wechat: NewRemote: the admin key contains white space (a newline from a secret file?)")
	}
	if strings.ContainsFunc(opts.App, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune("/?#%&=\"'", r) }) {
		return nil, fmt.Errorf("wechat: NewRemote: App %q is not an AppID", opts.App)
	}
	r := &Remote{
		base:  strings.TrimRight(baseURL, "/"),
		app:   opts.App,
		hc:    &http.Client{Timeout: 35 * time.Second},
		clock: util.SystemClock{},
		cache: credCache{early: DefaultRemoteEarlyExpiry},
	}
	if key != "" {
		r.auth = "Bearer " + key
	}
	if opts.HTTPClient != nil {
		r.hc = opts.HTTPClient
	}
	if opts.Clock != nil {
		r.clock = opts.Clock
	}
	if opts.EarlyExpiry > 0 {
		r.cache.early = opts.EarlyExpiry
	}
	r.hc = upstreamClient(r.hc)
	return r, nil
}

// AccessToken returns the cached token while it is well within its
// lifetime, and otherwise asks the central server (GET /v1/token).
func (r *Remote) AccessToken(ctx context.Context) (string, error) {
	c, err := r.Token(ctx)
	return c.Value, err
}

// Token is AccessToken with the token's expiry (see CredentialSource).
// ExpiresAt is by the local clock: the instant the answer arrived plus the
// answer's expires_in (its expires_at is by the server's clock, which may
// differ); FetchedAt is the instant the answer arrived, not when the server
// fetched the token, which the admin API does not tell.
func (r *Remote) Token(ctx context.Context) (Credential, error) {
	if h := r.cache.Load(); h.stateAt(r.clock.Now()) == cacheFresh {
		return h.Credential, nil
	}
	return r.fetch(ctx, "token", http.MethodGet, r.route("/token"), nil)
}

// Refresh is the passive refresh: stale is the token WeChat rejected. If
// this Remote already holds another valid token (a concurrent refresh got
// it), that one is returned without a request; otherwise the central
// server is asked (POST /v1/token/refresh), which fetches a new token only
// if its store still holds stale. An empty stale is AccessToken.
func (r *Remote) Refresh(ctx context.Context, stale string) (string, error) {
	if stale == "" {
		return r.AccessToken(ctx)
	}
	if h := r.cache.Load(); h.stateAt(r.clock.Now()) != cacheInvalid && h.Value != stale {
		return h.Value, nil
	}
	body, _ := json.Marshal(struct {
		Stale string `json:"stale"`
	}{stale})
	// Callers with the same stale token share one request.
	c, err := r.fetch(ctx, "refresh:"+stale, http.MethodPost, r.route("/token/refresh"), body)
	return c.Value, err
}

// route is the admin API path of route (such as "/token") for r's app.
func (r *Remote) route(route string) string {
	if r.app == "" {
		return "/v1" + route
	}
	return "/v1/apps/" + r.app + route
}

// fetch makes one admin API call per key at a time and caches its token.
func (r *Remote) fetch(ctx context.Context, key, method, path string, body []byte) (Credential, error) {
	ch := r.flight.DoChan(key, func() (any, error) {
		// The request runs on even if the first caller gives up, so that
		// the others are not failed by its context.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 35*time.Second)
		defer cancel()
		c, err := r.call(fctx, method, path, body)
		if err != nil {
			return Credential{}, err
		}
		r.cache.Store(c)
		return c, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return Credential{}, res.Err
		}
		return res.Val.(Credential), nil
	case <-ctx.Done():
		return Credential{}, fmt.Errorf("wechat: waiting for the central server: %w", ctx.Err())
	}
}

// RemoteError is an error answer of a central server's admin API.
type RemoteError struct {
	StatusCode int    // the HTTP status
	Path       string // e.g. "/v1/token"
	Msg        string // the server's "error"
}

// Error names the admin route, the HTTP status and the server's reason.
func (e *RemoteError) Error() string {
	s := fmt.Sprintf("wechat: central server %s: HTTP %d: %s", e.Path, e.StatusCode, e.Msg)
	if e.StatusCode == http.StatusUnauthorized {
		s += " (the admin key given to NewRemote is missing or wrong: it must equal the server's WECHAT_ADMIN_KEY)"
	}
	return s
}

// call makes one admin API request and parses its token answer.
func (r *Remote) call(ctx context.Context, method, path string, body []byte) (Credential, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return Credential{}, fmt.Errorf("wechat: central server %s: %w", path, redactError(err))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := doHTTP(r.hc, req, path)
	if err != nil {
		var re *RedirectError
		if errors.As(err, &re) {
			return Credential{}, err
		}
		return Credential{}, fmt.Errorf("wechat: central server %s: %w (is the server running at %s?)", path, err, r.base)
	}
	defer resp.Body.Close()
	data, err := readBody(resp)
	if err != nil {
		return Credential{}, fmt.Errorf("wechat: central server %s: %w", path, err)
	}
	res := gjson.ParseBytes(data)
	if resp.StatusCode != http.StatusOK {
		msg := res.Get("error").String()
		if msg == "" || !gjson.ValidBytes(data) {
			msg = fmt.Sprintf("unexpected answer (Content-Type %q, %d bytes): is this a wxcentral admin URL?",
				resp.Header.Get("Content-Type"), len(data))
		}
		rerr := &RemoteError{StatusCode: resp.StatusCode, Path: path, Msg: msg}
		var errs []error
		errs = append(errs, rerr)
		if code := res.Get("errcode").Int(); code != 0 {
			errs = append(errs, &APIError{Code: int(code), Msg: msg, API: path})
		}
		// The server names why in "reason": the keeper's own sentinel. A
		// reason without one (upstream, timeout, internal), or a server
		// older than the reasons, leaves the status: a 503 means that no
		// token can be had now.
		switch sentinel := reasonError(res.Get("reason").String()); {
		case sentinel != nil:
			errs = append(errs, sentinel)
		case resp.StatusCode != http.StatusServiceUnavailable:
		case strings.Contains(msg, ErrQuotaExhausted.Error()): // an older server's quota answer
			errs = append(errs, ErrQuotaExhausted)
		default:
			errs = append(errs, ErrNoToken)
		}
		return Credential{}, &remoteErrors{errs}
	}
	tok, in := res.Get("access_token"), res.Get("expires_in")
	if tok.Type != gjson.String || tok.Str == "" || in.Type != gjson.Number {
		return Credential{}, fmt.Errorf("wechat: central server %s: the answer lacks access_token or expires_in (Content-Type %q, %d bytes): is this a wxcentral admin URL?",
			path, resp.Header.Get("Content-Type"), len(data))
	}
	now := r.clock.Now()
	return Credential{Value: tok.Str, ExpiresAt: now.Add(time.Duration(in.Int()) * time.Second), FetchedAt: now}, nil
}

// remoteErrors is a *RemoteError with the sentinels and *APIError it
// implies, for errors.Is and errors.As; it prints as the *RemoteError.
type remoteErrors struct{ errs []error }

func (e *remoteErrors) Error() string   { return e.errs[0].Error() }
func (e *remoteErrors) Unwrap() []error { return e.errs }
