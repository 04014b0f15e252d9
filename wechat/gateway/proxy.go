package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/wxcentral/wxcentral/wechat"
)

// maxPeek is the largest JSON answer the gateway reads whole to look for a
// token error; a larger one streams through unread.
const maxPeek = 64 << 10

// proxy forwards a call of any other path: /sns/ untouched, the rest with
// the account's token in place of the caller's.
func (g *Gateway) proxy(c *call) {
	p := c.r.URL.Path
	switch {
	case strings.HasPrefix(p, "/sns/component/"), strings.HasPrefix(p, "/sns/oauth2/component/"),
		strings.HasPrefix(p, "/cgi-bin/component/"):
		c.refuse(48001, "api unauthorized: this gateway keeps no third-party platform (component) token", "a third-party platform API")
		return
	case strings.HasPrefix(p, "/sns/"):
		// User OAuth tokens and jscode2session: not the account's token.
		g.passThrough(c)
		return
	}
	tokens, at := tokenParams(c.r.URL.RawQuery)
	a, ok := g.caller(c, tokens)
	if !ok {
		return
	}
	cred, err := a.Keeper.Token(c.r.Context())
	if err != nil {
		g.log.Warn("gateway: no token to inject", "app_id", a.ID, "path", p, "err", err)
		c.upstreamError(http.StatusServiceUnavailable, "system error: the central server has no token for this app now")
		return
	}
	g.note(a.ID, cred)
	body, err := g.keepBody(c.r)
	if err != nil {
		c.upstreamError(http.StatusBadRequest, "system error: reading the request body failed")
		return
	}
	resp, err := g.send(c, withToken(c.r.URL.RawQuery, at, cred.Value), body)
	if err != nil {
		return
	}
	peeked, code := peekErrcode(resp)
	if isTokenError(code) && body.replayable() {
		fresh, rerr := a.Keeper.Refresh(c.r.Context(), cred.Value)
		if rerr == nil && fresh != cred.Value {
			resp.Body.Close()
			g.note(a.ID, wechatCred(a, fresh))
			g.log.Info("gateway: WeChat rejected the token; retried with a fresh one", "app_id", a.ID, "path", p, "errcode", code)
			if resp, err = g.send(c, withToken(c.r.URL.RawQuery, at, fresh), body); err != nil {
				return
			}
			peeked, code = peekErrcode(resp)
			c.outcome = outcomeRetried
			if code != 0 {
				c.outcome = outcomeErrcode
			}
			c.respond(resp, peeked)
			return
		}
		g.log.Warn("gateway: WeChat rejected the token and no other could be had; answering its error", "app_id", a.ID,
			"path", p, "errcode", code, "err", rerr)
	}
	c.outcome = outcomeOK
	if code != 0 {
		c.outcome = outcomeErrcode
	}
	c.respond(resp, peeked)
}

// wechatCred is the credential note needs of a token a Refresh returned:
// what the keeper holds when it is that one, else the token alone.
func wechatCred(a *App, tok string) (cr wechat.Credential) {
	if h, ok := a.Keeper.Held(); ok && h.Value == tok {
		return h
	}
	cr.Value = tok
	return cr
}

// passThrough forwards a call untouched (its query and body as sent).
func (g *Gateway) passThrough(c *call) {
	body, err := g.keepBody(c.r)
	if err != nil {
		c.upstreamError(http.StatusBadRequest, "system error: reading the request body failed")
		return
	}
	resp, err := g.send(c, c.r.URL.RawQuery, body)
	if err != nil {
		return
	}
	peeked, code := peekErrcode(resp)
	c.outcome = outcomeOK
	if code != 0 {
		c.outcome = outcomeErrcode
	}
	c.respond(resp, peeked)
}

// A body is a request body as the gateway forwards it: kept whole when it
// is small enough (to be sent again), else streamed once.
type body struct {
	kept   []byte    // the whole body, if kept
	stream io.Reader // else the body to stream
	length int64     // the caller's Content-Length (-1 unknown)
	used   bool      // the stream was sent
}

func (b *body) replayable() bool { return b.stream == nil }

// keepBody reads r's body whole if it is at most MaxRetryBody bytes long,
// and otherwise prepares to stream it.
func (g *Gateway) keepBody(r *http.Request) (*body, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return &body{}, nil
	}
	if r.ContentLength > g.maxKeep {
		return &body{stream: r.Body, length: r.ContentLength}, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, g.maxKeep+1))
	if err != nil {
		return nil, err
	}
	if int64(len(buf)) > g.maxKeep {
		return &body{stream: io.MultiReader(bytes.NewReader(buf), r.Body), length: r.ContentLength}, nil
	}
	return &body{kept: buf}, nil
}

// reader returns the body to send, or nil for none.
func (b *body) reader() io.Reader {
	switch {
	case b.stream != nil:
		b.used = true
		return b.stream
	case b.kept != nil:
		return bytes.NewReader(b.kept)
	}
	return nil
}

// send forwards c's request with the query rawQuery and body b through
// the upstream. On failure it answers the caller and returns the error.
func (g *Gateway) send(c *call, rawQuery string, b *body) (*http.Response, error) {
	target := c.r.URL.EscapedPath()
	if rawQuery != "" {
		target += "?" + rawQuery
	}
	out, err := http.NewRequestWithContext(c.r.Context(), c.r.Method, target, b.reader())
	if err != nil {
		c.upstreamError(http.StatusBadRequest, "system error: the request cannot be forwarded")
		return nil, err
	}
	if b.stream != nil {
		out.ContentLength = b.length
	}
	copyHeader(out.Header, c.r.Header)
	for _, h := range requestDrop {
		out.Header.Del(h)
	}
	idempotent := c.r.Method == http.MethodGet || c.r.Method == http.MethodHead
	resp, err := g.up.Do(out, idempotent)
	if err != nil {
		msg := "system error: WeChat could not be reached"
		status := http.StatusBadGateway
		if ctxErr := c.r.Context().Err(); ctxErr != nil {
			msg, status = "system error: the call was cancelled", http.StatusServiceUnavailable
		} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			status = http.StatusGatewayTimeout
			msg = "system error: WeChat did not answer in time"
		}
		g.log.Warn("gateway: a call to WeChat failed", "app_id", c.app, "path", c.r.URL.Path, "err", err)
		c.upstreamError(status, msg)
		return nil, err
	}
	return resp, nil
}

// requestDrop are the caller's headers not forwarded: the admin API's key
// is not WeChat's business, and the transport negotiates compression
// itself (so that a JSON answer can be read for token errors).
var requestDrop = []string{"Authorization", "Accept-Encoding", "X-Forwarded-For", "Forwarded"}

// upstreamError answers a call that WeChat did not answer, in WeChat's
// error shape with errcode -1 (system busy: SDKs may retry).
func (c *call) upstreamError(status int, msg string) {
	c.outcome = outcomeUpstream
	c.w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	c.w.WriteHeader(status)
	io.WriteString(c.w, `{"errcode":-1,"errmsg":`+quote(msg)+`}`)
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// respond writes resp to the caller: its status, headers and body byte for
// byte, the first bytes from peeked when they were read already.
func (c *call) respond(resp *http.Response, peeked []byte) {
	defer resp.Body.Close()
	h := c.w.Header()
	copyHeader(h, resp.Header)
	c.w.WriteHeader(resp.StatusCode)
	if peeked != nil {
		c.w.Write(peeked)
	}
	if _, err := io.Copy(c.w, resp.Body); err != nil {
		c.g.log.Warn("gateway: streaming WeChat's answer failed", "app_id", c.app, "path", c.r.URL.Path, "err", err)
	}
}

// peekErrcode reads a small JSON answer whole and returns it with its
// errcode; it reads nothing of a large or non-JSON answer (peeked nil,
// code 0). After it, resp.Body holds what is left.
func peekErrcode(resp *http.Response) (peeked []byte, code int64) {
	ct := resp.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "text/plain") {
		return nil, 0
	}
	if resp.ContentLength > maxPeek {
		return nil, 0
	}
	buf, err := io.ReadAll(io.LimitReader(resp.Body, maxPeek+1))
	if err != nil || len(buf) > maxPeek {
		// Stream what was read and the rest.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), resp.Body), resp.Body}
		return nil, 0
	}
	return buf, gjson.GetBytes(buf, "errcode").Int()
}

// isTokenError reports whether WeChat's errcode says the token was refused.
func isTokenError(code int64) bool { return code == 40001 || code == 40014 || code == 42001 }

// tokenParams returns the access_token values of a raw query and the
// index, among its &-separated fields, of the first one (-1 for none).
func tokenParams(rawQuery string) (values []string, at int) {
	at = -1
	i := 0
	for field := range strings.SplitSeq(rawQuery, "&") {
		key, value, _ := strings.Cut(field, "=")
		if k, err := url.QueryUnescape(key); err == nil && k == "access_token" {
			v, err := url.QueryUnescape(value)
			if err != nil {
				v = value
			}
			values = append(values, v)
			if at < 0 {
				at = i
			}
		}
		i++
	}
	return values, at
}

// withToken returns rawQuery with its field at (an access_token, see
// tokenParams) replaced by tok; every other byte is kept.
func withToken(rawQuery string, at int, tok string) string {
	fields := strings.Split(rawQuery, "&")
	fields[at] = "access_token=" + url.QueryEscape(tok)
	return strings.Join(fields, "&")
}

// hopHeaders are the hop-by-hop headers (RFC 9110 §7.6.1), never
// forwarded either way.
var hopHeaders = map[string]bool{"Connection": true, "Proxy-Connection": true, "Keep-Alive": true,
	"Proxy-Authenticate": true, "Proxy-Authorization": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true}

// copyHeader copies src's end-to-end headers into dst: neither the
// hop-by-hop ones nor those its Connection header names.
func copyHeader(dst, src http.Header) {
	var named []string
	for _, v := range src["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			named = append(named, http.CanonicalHeaderKey(strings.TrimSpace(name)))
		}
	}
	for k, vs := range src {
		if !hopHeaders[k] && !slices.Contains(named, k) {
			dst[k] = append(dst[k][:0:0], vs...)
		}
	}
}

// streamingClient sends the gateway's calls: connect and TLS bounded like
// the keepers' (5 s), WeChat's answer header within 30 s, and no bound on
// the whole call, which may stream a large media file (the caller's
// request context and the admin listener's timeouts bound it).
func streamingClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: t}
}

// readSmall reads a request body of at most limit bytes.
func readSmall(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = io.ErrUnexpectedEOF
	}
	return data, err
}
