package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// maxBody bounds what is read of one upstream response.
const maxBody = 1 << 20

// redactError returns err with the query string of any URL it carries
// removed: Go's *url.Error prints the whole URL, and WeChat URLs carry the
// AppSecret or the access_token in their query. Every error that crosses an
// upstream call in this package passes through it. errors.Is and errors.As
// keep working on the result (timeouts stay timeouts).
func redactError(err error) error {
	if se, ok := err.(*sentError); ok {
		return &sentError{redactError(se.err)}
	}
	var ue *url.Error
	if err == nil || !errors.As(err, &ue) {
		return err
	}
	return &url.Error{Op: ue.Op, URL: redactURL(ue.URL), Err: redactError(ue.Err)}
}

// redactURL returns u without its query string and fragment, or a
// placeholder if u does not parse.
func redactURL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i] + "?[redacted]"
	}
	return u
}

// errTransient marks an upstream failure worth retrying.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

func transient(err error) error { return &transientError{err} }

func isTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

// maxCredentialLen bounds the length of a token or ticket accepted from
// WeChat, which documents at most 512 characters: a longer one is a
// malformed response, not a credential to store and serve.
const maxCredentialLen = 2048

// A RedirectError is returned for an upstream response that redirects.
// WeChat's API never redirects, and following one would send the
// AppSecret (in the query of /cgi-bin/token, in the body of a 307/308 of
// /cgi-bin/stable_token) or a token to another host and accept whatever
// that host answers, so every upstream client of this package refuses
// redirects. It names the status and the host of the Location, never its
// path or query.
type RedirectError struct {
	API    string // the path called, e.g. "/cgi-bin/token"; never a query
	Status int    // the redirecting response's HTTP status, e.g. 302
	Host   string // the host (and port) the Location names
}

// Error says which call was redirected where, and that it was refused.
func (e *RedirectError) Error() string {
	return fmt.Sprintf("wechat: %s: refused a redirect (HTTP %d to host %q): WeChat's API never redirects; is APIBase right, or a proxy in the way?",
		e.API, e.Status, e.Host)
}

// refuseRedirect is the CheckRedirect of every upstream client: a second
// line of defence, as redirectRefuser turns every 3xx into an error before
// http.Client sees it.
func refuseRedirect(req *http.Request, _ []*http.Request) error {
	e := &RedirectError{Host: req.URL.Host}
	if req.Response != nil {
		e.Status = req.Response.StatusCode
		if req.Response.Request != nil {
			e.API = req.Response.Request.URL.Path
		}
	}
	return e
}

// unparseableHost is the RedirectError.Host of a Location that does not
// parse as a URL.
const unparseableHost = "unparseable"

// A redirectRefuser is the Transport of every upstream client: it turns
// any 3xx response into a *RedirectError (the body drained and closed)
// before http.Client reads its Location. http.Client parses Location
// before CheckRedirect runs, and a Location it cannot parse gives an error
// that quotes all of it, query (with the AppSecret or a token) included.
type redirectRefuser struct{ base http.RoundTripper }

// RoundTrip sends req with the base transport and refuses a redirect.
func (t *redirectRefuser) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode < 300 || resp.StatusCode > 399 {
		return resp, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	resp.Body.Close()
	e := &RedirectError{API: req.URL.Path, Status: resp.StatusCode, Host: unparseableHost}
	if u, err := req.URL.Parse(resp.Header.Get("Location")); err == nil {
		e.Host = u.Host
	}
	return nil, e
}

// CloseIdleConnections closes the idle connections of the base transport,
// for http.Client.CloseIdleConnections.
func (t *redirectRefuser) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// upstreamClient is the one place that builds the HTTP client of a call to
// WeChat (or to a central server): a copy of hc, or of the default client
// when hc is nil, whose transport refuses redirects (redirectRefuser), as
// does its CheckRedirect. hc itself is not changed.
func upstreamClient(hc *http.Client) *http.Client {
	if hc == nil {
		hc = defaultHTTPClient()
	}
	c := *hc
	c.CheckRedirect = refuseRedirect
	if _, ok := c.Transport.(*redirectRefuser); !ok {
		base := c.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		c.Transport = &redirectRefuser{base: base}
	}
	return &c
}

// defaultHTTPClient is the upstream client without Options.HTTPClient: a
// 10 s overall timeout and 5 s dial and TLS handshake timeouts. It is one
// client for the whole process, so that the keepers of a server of many
// apps share one pool of connections to WeChat (a thousand keepers held a
// thousand connections, and a TLS handshake each per refresh, with one
// transport each); upstreamClient copies it.
var defaultHTTPClient = sync.OnceValue(func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ResponseHeaderTimeout = 10 * time.Second
	return &http.Client{Timeout: 10 * time.Second, Transport: t}
})

// doUpstream sends req through up. A refused redirect is its
// *RedirectError, naming api; any other error is redacted, for the caller
// to name the call.
func doUpstream(up *Upstream, req *http.Request, api string, idempotent bool) (*http.Response, error) {
	resp, err := up.Do(req, idempotent)
	return named(resp, err, api)
}

// doHTTP sends req with hc (an upstreamClient), as doUpstream does.
func doHTTP(hc *http.Client, req *http.Request, api string) (*http.Response, error) {
	resp, err := hc.Do(req)
	return named(resp, err, api)
}

// named returns what sending a request gave, a refused redirect naming
// api, any other error redacted.
func named(resp *http.Response, err error, api string) (*http.Response, error) {
	if err == nil {
		return resp, nil
	}
	if resp != nil {
		resp.Body.Close()
	}
	var re *RedirectError
	if errors.As(err, &re) {
		e := *re
		e.API = api
		return nil, &e
	}
	return nil, redactError(err)
}

// readBody reads a response body of at most maxBody bytes. A read error
// is transient; a larger body is not (and is not quoted). The error is for
// the caller to name the call.
func readBody(resp *http.Response) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, transient(fmt.Errorf("reading the response: %w", redactError(err)))
	}
	if len(data) > maxBody {
		return nil, fmt.Errorf("the response is larger than %d bytes (Content-Type %q)",
			maxBody, resp.Header.Get("Content-Type"))
	}
	return data, nil
}

// describeBody says what is wrong with a body that is not a JSON object,
// without echoing any of it: an upstream body may hold a token.
func describeBody(data []byte) string {
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return fmt.Sprintf("is not a JSON object but empty (%d bytes)", len(data))
	case !gjson.ValidBytes(data):
		return fmt.Sprintf("is not a JSON object: not JSON at all (%d bytes)", len(data))
	default:
		return fmt.Sprintf("is not a JSON object: JSON of another type (%d bytes)", len(data))
	}
}

// call makes one HTTP request through up (pathQuery is the path and
// query; idempotent as Upstream.Do takes it) and returns the JSON body.
// api is the path (for messages, never with the query). A non-nil error
// is redacted and never quotes the body; it is transient (worth a retry)
// for network errors, timeouts, HTTP 5xx and errcode -1/-1000, a
// *RedirectError for a redirect, and an *APIError for any other errcode
// ≠ 0. A failure after the request was written (it may have reached
// WeChat) also matches maySent.
func call(ctx context.Context, up *Upstream, method, pathQuery, api string, body []byte, idempotent bool) (gjson.Result, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, pathQuery, rd)
	if err != nil {
		return gjson.Result{}, fmt.Errorf("wechat: %s: %w", api, redactError(err))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := doUpstream(up, req, api, idempotent)
	if err != nil {
		var re *RedirectError
		if errors.As(err, &re) {
			return gjson.Result{}, err // no retry
		}
		err = fmt.Errorf("wechat: %s: %w", api, err)
		if ctx.Err() != nil {
			return gjson.Result{}, err // the caller gave up: no retry
		}
		return gjson.Result{}, transient(err)
	}
	defer resp.Body.Close()
	data, err := readBody(resp)
	if err != nil {
		if t := (*transientError)(nil); errors.As(err, &t) {
			return gjson.Result{}, transient(fmt.Errorf("wechat: %s: %w", api, t.err))
		}
		return gjson.Result{}, fmt.Errorf("wechat: %s: %w", api, err)
	}
	if resp.StatusCode >= 500 {
		return gjson.Result{}, transient(&sentError{fmt.Errorf("wechat: %s: HTTP %s from WeChat", api, resp.Status)})
	}
	if resp.StatusCode != http.StatusOK {
		return gjson.Result{}, fmt.Errorf("wechat: %s: unexpected HTTP %s (is APIBase right?)", api, resp.Status)
	}
	if !gjson.ValidBytes(data) || !gjson.ParseBytes(data).IsObject() {
		return gjson.Result{}, fmt.Errorf("wechat: %s: the response %s (Content-Type %q): is APIBase right, or a proxy in the way?",
			api, describeBody(data), resp.Header.Get("Content-Type"))
	}
	res := gjson.ParseBytes(data)
	if code := res.Get("errcode").Int(); code != 0 {
		apiErr := &APIError{Code: int(code), Msg: cleanErrmsg(res.Get("errmsg").String()), API: api}
		if code == -1 || code == -1000 {
			return res, transient(apiErr)
		}
		return res, apiErr
	}
	return res, nil
}

// maxErrmsg bounds the bytes of an errmsg kept from WeChat: it goes into
// errors, log lines, /healthz and the Store's cooldown record. WeChat's own
// are short ("invalid ip 203.0.113.9 ipv6 ::ffff:203.0.113.9, not in
// whitelist rid: …").
const maxErrmsg = 256

// cleanErrmsg returns s as valid UTF-8 without control characters (each
// invalid byte or control character becomes a space) and, if that is
// longer than maxErrmsg bytes, cut at a character boundary and ended with
// "…" within maxErrmsg bytes.
func cleanErrmsg(s string) string {
	if len(s) > 4*maxErrmsg {
		s = s[:4*maxErrmsg] // enough to clean; a cut rune becomes a space
	}
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, " "))
	if len(s) <= maxErrmsg {
		return s
	}
	const ellipsis = "…"
	cut := maxErrmsg - len(ellipsis)
	for !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// backoff returns the delay before retry number i (0-based): for d =
// base·2^i, at most 16·base, half of d plus a uniformly random part of up
// to the other half (so between d/2 and d, 0.75·d on average).
func backoff(base time.Duration, i int) time.Duration {
	d := base << min(i, 4)
	return d/2 + rand.N(d/2+1)
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tokenRequest builds the request for the configured token endpoint.
func (w *Wechat) tokenRequest(force bool) (method, rawURL, api string, body []byte) {
	if w.opts.TokenAPI == TokenAPIStable {
		body, _ = json.Marshal(struct {
			GrantType    string `json:"grant_type"`
			AppID        string `json:"appid"`
			Secret       string `json:"secret"`
			ForceRefresh bool   `json:"force_refresh"`
		}{"client_credential", w.opts.AppID, w.opts.AppSecret, force})
		return http.MethodPost, "/cgi-bin/stable_token", "/cgi-bin/stable_token", body
	}
	q := url.Values{"grant_type": {"client_credential"}, "appid": {w.opts.AppID}, "secret": {w.opts.AppSecret}}
	return http.MethodGet, "/cgi-bin/token?" + q.Encode(), "/cgi-bin/token", nil
}

// maxExpiresIn is the longest lifetime WeChat documents for a token or a
// ticket; a longer expires_in is clamped to it.
const maxExpiresIn = 7200

// shortExpiresIn is a lifetime below which a credential is suspicious
// (logged): WeChat issues 7200 s.
const shortExpiresIn = 60

// parseCredential reads {"<field>":"…","expires_in":N} fetched at now. An
// expires_in above 7200 s is clamped to it (clamped is the value WeChat
// sent, 0 if none was). The error says which field is missing or
// malformed, never its value.
func parseCredential(res gjson.Result, field, api string, now time.Time) (c Credential, clamped int64, err error) {
	v, exp := res.Get(field), res.Get("expires_in")
	switch {
	case v.Type != gjson.String || v.Str == "":
		return Credential{}, 0, fmt.Errorf("wechat: %s: the response lacks %s (%d bytes)", api, field, len(res.Raw))
	case len(v.Str) > maxCredentialLen:
		return Credential{}, 0, fmt.Errorf("wechat: %s: malformed response: %s is %d characters long, more than %d",
			api, field, len(v.Str), maxCredentialLen)
	case exp.Type != gjson.Number || exp.Int() <= 0:
		return Credential{}, 0, fmt.Errorf("wechat: %s: the response lacks a positive expires_in", api)
	}
	in := exp.Int()
	if in > maxExpiresIn {
		clamped, in = in, maxExpiresIn
	}
	now = now.Truncate(time.Millisecond)
	return Credential{
		Value:     v.Str,
		FetchedAt: now,
		ExpiresAt: now.Add(time.Duration(in) * time.Second),
	}, clamped, nil
}
