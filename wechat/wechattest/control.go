package wechattest

import (
	"bytes"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// controlRoot and controlPrefix are where the control plane lives on the
// platform's listener.
const (
	controlRoot   = "/_fake"
	controlPrefix = controlRoot + "/"
)

// maxFaultDelay bounds the delay_ms of POST /_fake/fail.
const maxFaultDelay = 10 * time.Minute

// ErrUnknownApp is returned by the control methods given an AppID that
// was not registered.
var ErrUnknownApp = errors.New("wechattest: unknown app")

// SetClock sets the platform's clock to t. A frozen clock (WithClock)
// stays frozen at t; the real-time clock keeps running from t. Like
// Advance, it moves tokens, tickets, grace periods and quota days.
func (p *Platform) SetClock(t time.Time) {
	base := p.start
	if !p.frozen {
		base = time.Now()
	}
	p.offset.Store(int64(t.Sub(base)))
}

// ClearFaults drops the faults queued for endpoints by Fail, or every
// queued fault if none is given, and returns how many calls they would
// still have failed.
func (p *Platform) ClearFaults(endpoints ...string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	drop := func(path string) {
		for _, f := range p.faults[path] {
			n += f.left
		}
		delete(p.faults, path)
	}
	if len(endpoints) == 0 {
		for path := range p.faults {
			drop(path)
		}
	}
	for _, e := range endpoints {
		drop(e)
	}
	return n
}

// Invalidate kills appID's current access tokens, those of
// /cgi-bin/token and of /cgi-bin/stable_token, as if another program had
// fetched and the grace period had passed: the next call presenting one
// gets 40001, and the next fetch issues a new token. Tickets are left
// alone. It returns ErrUnknownApp for an AppID that is not registered.
func (p *Platform) Invalidate(appID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[appID]
	if a == nil {
		return fmt.Errorf("%w %q", ErrUnknownApp, appID)
	}
	now := p.Now()
	for _, rec := range p.tokens {
		if rec.app == a {
			rec.deadline = minTime(rec.deadline, now)
		}
	}
	p.log.Info("wechattest: invalidated tokens", "app", appID)
	return nil
}

// SetSecret gives appID a new AppSecret, as resetting it on the platform
// (重置 AppSecret) does: from now on only secret fetches its tokens, and
// the old one is answered as a wrong secret. Tokens already issued stay
// valid. With secret "" a random one is made. It returns the secret set,
// or ErrUnknownApp for an AppID that is not registered; Reset restores the
// secret of the options.
func (p *Platform) SetSecret(appID, secret string) (string, error) {
	if secret == "" {
		secret = hex.EncodeToString(randomBytes(16))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[appID]
	if a == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownApp, appID)
	}
	a.secret = secret
	p.log.Info("wechattest: the AppSecret was reset", "app", appID)
	return secret, nil
}

// Reset restores the state NewPlatform started with: the clock, tokens,
// tickets, quotas used and set, frozen secrets, faults, counters and every
// business object (menus, tags, media, QR codes, messages sent).
func (p *Platform) Reset() {
	fresh := NewPlatform(p.opts...)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.quotas, p.apps, p.order, p.tokens = fresh.quotas, fresh.apps, fresh.order, fresh.tokens
	p.faults, p.stats, p.perApp = fresh.faults, fresh.stats, fresh.perApp
	p.offset.Store(0)
	p.log.Info("wechattest: reset")
}

// controlRoutes are the control plane's paths under /_fake/, by method.
// GET /_fake/ lists them.
var controlRoutes = map[string]map[string]func(p *Platform, w http.ResponseWriter, r *http.Request){
	"":           {http.MethodGet: (*Platform).ctlIndex},
	"stats":      {http.MethodGet: (*Platform).ctlStats},
	"advance":    {http.MethodPost: (*Platform).ctlAdvance},
	"clock":      {http.MethodGet: (*Platform).ctlClockGet, http.MethodPost: (*Platform).ctlClock},
	"fail":       {http.MethodPost: (*Platform).ctlFail, http.MethodDelete: (*Platform).ctlClearFaults},
	"invalidate": {http.MethodPost: (*Platform).ctlInvalidate},
	"secret":     {http.MethodPost: (*Platform).ctlSecret},
	"reset":      {http.MethodPost: (*Platform).ctlReset},
	"messages":   {http.MethodGet: (*Platform).ctlMessages},
}

// controlDoc is what GET /_fake/ answers.
var controlDoc = map[string]string{
	"GET /_fake/stats":           "counters: fetches, issued, attempts, errors, accepted, rejected, apps",
	"POST /_fake/advance":        `move the clock: {"seconds":N}`,
	"GET /_fake/clock":           "the platform's time",
	"POST /_fake/clock":          `set the clock: {"time":"RFC3339"}`,
	"POST /_fake/fail":           `inject a fault: {"path","errcode","errmsg","status","body","delay_ms","drop","times"}`,
	"DELETE /_fake/fail":         "drop every queued fault (?path= for one path)",
	"POST /_fake/invalidate":     `kill an app's current tokens (next use: 40001): {"appid"}`,
	"POST /_fake/secret":         `reset an app's AppSecret (the old one is refused from then on): {"appid","secret"}; without secret a random one, answered`,
	"POST /_fake/reset":          "back to the start state",
	"GET /_fake/messages?appid=": "messages the app sent (custom and template)",
	"GET /_fake/media/{id}":      "the bytes of uploaded media, also at /_media/{id} without the control plane's checks (video_url, material url and down_url point there)",
}

// ctlError is the body of a refused control request.
type ctlError struct {
	Error string `json:"error"`
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	w.Write(b)
}

func ctlFail(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSONStatus(w, status, ctlError{fmt.Sprintf(format, args...)})
}

// controlKeyOf returns the key a control request carries.
func controlKeyOf(r *http.Request) string {
	if k := r.Header.Get("X-Fake-Key"); k != "" {
		return k
	}
	if k, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(k)
	}
	return ""
}

// notLocal says why r, a control request without a key, is refused, or
// returns "" if it comes from this machine and not from a web page. The
// caller's address must be loopback. So must the Host it asked for
// (localhost, 127.0.0.0/8 or [::1], any port): a page on a name the
// attacker controls that resolves to 127.0.0.1 (DNS rebinding) carries
// that name. And a browser's request must not come from another site: a
// page the developer visits may send a "simple" cross-site POST (a
// text/plain body needs no CORS preflight), which the browser marks with
// Sec-Fetch-Site and an Origin. curl and SDKs send neither header.
func notLocal(r *http.Request) string {
	if ip := clientAddr(r); !ip.IsLoopback() {
		return fmt.Sprintf("this caller is %s, not loopback", ip)
	}
	if !loopbackHost(r.Host) {
		return fmt.Sprintf("the request is for Host %q, not localhost, 127.0.0.1 or [::1]", r.Host)
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "cross-site", "same-site":
		return fmt.Sprintf("a browser sent it from another site (Sec-Fetch-Site: %s)", site)
	}
	if origin, ok := r.Header["Origin"]; ok && !loopbackOrigin(origin[0]) {
		return fmt.Sprintf("a browser sent it from the page origin %q, not a loopback one", origin[0])
	}
	return ""
}

// loopbackHost reports whether host, a Host header with or without a
// port, names this machine: localhost, an address in 127.0.0.0/8 or ::1
// (case-insensitive, a trailing dot allowed).
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}

// loopbackOrigin reports whether origin, an Origin header, is an http or
// https origin on a loopback host.
func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return false
	}
	return loopbackHost(u.Host)
}

// serveControl answers the control plane under /_fake/. It is not WeChat:
// errors are HTTP statuses with {"error":"…"}.
func (p *Platform) serveControl(w http.ResponseWriter, r *http.Request) {
	if p.controlKey != "" {
		k := controlKeyOf(r)
		if k == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fake-wechat control plane"`)
			ctlFail(w, http.StatusUnauthorized, "the control plane needs its key: send Authorization: Bearer KEY or X-Fake-Key: KEY")
			return
		}
		if subtle.ConstantTimeCompare([]byte(k), []byte(p.controlKey)) != 1 {
			ctlFail(w, http.StatusForbidden, "wrong control key")
			return
		}
	} else if why := notLocal(r); why != "" {
		ctlFail(w, http.StatusForbidden, "the control plane answers local callers only: %s; start the fake with -control-key to allow others", why)
		return
	}
	name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, controlRoot), "/")
	if id, ok := strings.CutPrefix(name, "media/"); ok {
		p.serveMediaFile(w, r, id) // the old name of /_media/{id}
		return
	}
	methods, ok := controlRoutes[name]
	if !ok {
		ctlFail(w, http.StatusNotFound, "no control route %s; GET /_fake/ lists them", r.URL.Path)
		return
	}
	h, ok := methods[r.Method]
	if !ok {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		ctlFail(w, http.StatusMethodNotAllowed, "%s %s: use %s", r.Method, r.URL.Path, strings.Join(allow, " or "))
		return
	}
	h(p, w, r)
}

// decodeControl reads a control request's JSON body into v, refusing
// unknown fields so a typo does not pass silently. It answers the error
// itself.
func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		ctlFail(w, http.StatusBadRequest, "reading the body: %v", err)
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		ctlFail(w, http.StatusBadRequest, "%s needs a JSON body", r.URL.Path)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		ctlFail(w, http.StatusBadRequest, "%s: bad JSON body: %v", r.URL.Path, err)
		return false
	}
	return true
}

// clockReply says what time the platform's clock shows.
type clockReply struct {
	Now    time.Time `json:"now"`
	Unix   int64     `json:"unix"`
	Frozen bool      `json:"frozen"`
}

func (p *Platform) clock() clockReply {
	now := p.Now()
	return clockReply{now, now.Unix(), p.frozen}
}

func (p *Platform) ctlIndex(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{"routes": controlDoc})
}

func (p *Platform) ctlStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, struct {
		clockReply
		Stats
	}{p.clock(), p.Stats()})
}

func (p *Platform) ctlClockGet(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, p.clock())
}

func (p *Platform) ctlAdvance(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Seconds *float64 `json:"seconds"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	if req.Seconds == nil {
		ctlFail(w, http.StatusBadRequest, `/_fake/advance: want {"seconds":N}`)
		return
	}
	if s := *req.Seconds; s > 1e9 || s < -1e9 {
		ctlFail(w, http.StatusBadRequest, "/_fake/advance: seconds %g is out of range", s)
		return
	}
	p.Advance(time.Duration(*req.Seconds * float64(time.Second)))
	writeJSON(w, p.clock())
}

func (p *Platform) ctlClock(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Time string `json:"time"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	t, err := time.Parse(time.RFC3339Nano, req.Time)
	if err != nil {
		ctlFail(w, http.StatusBadRequest, `/_fake/clock: want {"time":"2026-11-21T10:00:00+08:00"} (RFC 3339): %v`, err)
		return
	}
	p.SetClock(t)
	writeJSON(w, p.clock())
}

// faultRequest is the body of POST /_fake/fail: a Fault in JSON.
type faultRequest struct {
	Path    string `json:"path"`
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
	Status  int    `json:"status"`
	Body    string `json:"body"`
	DelayMS int64  `json:"delay_ms"`
	Drop    bool   `json:"drop"`
	Times   int    `json:"times"`
}

func (p *Platform) ctlFail(w http.ResponseWriter, r *http.Request) {
	var req faultRequest
	if !decodeControl(w, r, &req) {
		return
	}
	switch {
	case !strings.HasPrefix(req.Path, "/") || strings.HasPrefix(req.Path, controlPrefix):
		ctlFail(w, http.StatusBadRequest, `/_fake/fail: "path" must be an API path such as "/cgi-bin/token", got %q`, req.Path)
		return
	case req.Status != 0 && (req.Status < 100 || req.Status > 599):
		ctlFail(w, http.StatusBadRequest, "/_fake/fail: status %d is not an HTTP status", req.Status)
		return
	case req.DelayMS < 0 || time.Duration(req.DelayMS)*time.Millisecond > maxFaultDelay:
		ctlFail(w, http.StatusBadRequest, "/_fake/fail: delay_ms must be 0 to %d", maxFaultDelay.Milliseconds())
		return
	case req.Times < 0:
		ctlFail(w, http.StatusBadRequest, "/_fake/fail: times must be at least 0 (0 means 1)")
		return
	case req.Errcode == 0 && req.Status == 0 && req.Body == "" && req.DelayMS == 0 && !req.Drop:
		ctlFail(w, http.StatusBadRequest, "/_fake/fail: set errcode, status, body, delay_ms or drop")
		return
	}
	f := Fault{Times: req.Times, Errcode: req.Errcode, Errmsg: req.Errmsg, Status: req.Status, Body: req.Body,
		Delay: time.Duration(req.DelayMS) * time.Millisecond, Drop: req.Drop}
	p.Fail(req.Path, f)
	writeJSON(w, map[string]any{"ok": true, "path": req.Path, "times": max(1, req.Times)})
}

func (p *Platform) ctlClearFaults(w http.ResponseWriter, r *http.Request) {
	var n int
	if path := r.URL.Query().Get("path"); path != "" {
		n = p.ClearFaults(path)
	} else {
		n = p.ClearFaults()
	}
	writeJSON(w, map[string]any{"ok": true, "cleared": n})
}

func (p *Platform) ctlInvalidate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AppID string `json:"appid"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	if req.AppID == "" {
		ctlFail(w, http.StatusBadRequest, `/_fake/invalidate: want {"appid":"…"}`)
		return
	}
	if err := p.Invalidate(req.AppID); err != nil {
		ctlFail(w, http.StatusNotFound, "/_fake/invalidate: no app %q is registered (apps: %s)", req.AppID, strings.Join(p.Apps(), ", "))
		return
	}
	writeJSON(w, map[string]any{"ok": true, "appid": req.AppID})
}

func (p *Platform) ctlSecret(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AppID  string `json:"appid"`
		Secret string `json:"secret"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	if req.AppID == "" || strings.ContainsAny(req.Secret, " \t\r\n") {
		ctlFail(w, http.StatusBadRequest, `/_fake/secret: want {"appid":"…"} and, if set, a secret without white space`)
		return
	}
	secret, err := p.SetSecret(req.AppID, req.Secret)
	if err != nil {
		ctlFail(w, http.StatusNotFound, "/_fake/secret: no app %q is registered (apps: %s)", req.AppID, strings.Join(p.Apps(), ", "))
		return
	}
	writeJSON(w, map[string]any{"ok": true, "appid": req.AppID, "secret": secret})
}

func (p *Platform) ctlReset(w http.ResponseWriter, r *http.Request) {
	p.Reset()
	writeJSON(w, map[string]any{"ok": true, "now": p.Now()})
}

func (p *Platform) ctlMessages(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("appid")
	if id == "" {
		if apps := p.Apps(); len(apps) == 1 {
			id = apps[0]
		}
	}
	p.mu.Lock()
	_, ok := p.apps[id]
	p.mu.Unlock()
	if !ok {
		ctlFail(w, http.StatusNotFound, "/_fake/messages: no app %q is registered; give ?appid=", id)
		return
	}
	msgs := p.Messages(id)
	if msgs == nil {
		msgs = []SentMessage{}
	}
	writeJSON(w, map[string]any{"appid": id, "messages": msgs})
}
