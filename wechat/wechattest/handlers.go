package wechattest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// errmsgs are the errmsg strings of the live platform, without the rid.
var errmsgs = map[int]string{
	-1:    "system error",
	40001: "invalid credential, access_token is invalid or not latest",
	40002: "invalid grant_type",
	40013: "invalid appid",
	40014: "invalid access_token",
	40003: "invalid openid",
	40004: "invalid media type",
	40005: "invalid file type",
	40007: "invalid media_id",
	40008: "invalid message type",
	40009: "invalid image size",
	40010: "invalid voice size",
	40011: "invalid video size",
	40012: "invalid thumb size",
	40016: "invalid button size",
	40023: "invalid sub button size",
	40029: "invalid code",
	40032: "invalid openid list size",
	40037: "invalid template_id",
	40048: "invalid url domain",
	40066: "invalid url",
	40097: "invalid args",
	40125: "invalid appsecret",
	40243: "appsecret is frozen",
	41001: "access_token missing",
	41002: "appid missing",
	41004: "appsecret missing",
	41005: "media data missing",
	41008: "missing code",
	42001: "access_token expired",
	43001: "require GET method",
	43002: "require POST method",
	44002: "empty post data",
	45009: "reach max api daily quota limit",
	45011: "api minute-quota reach limit mustslower retry next minute",
	45056: "too many tags",
	45058: "can't modify sys tag",
	45059: "too many tags on user",
	45157: "invalid tag name",
	45158: "tag name too long",
	45159: "invalid tag id",
	46003: "menu no exist",
	47001: "data format error",
	48001: "api unauthorized",
	48006: "forbid to clear quota because of reaching the limit",
	61004: "access clientip is not registered",
	76003: "invalid cgi_path",
	76021: "cgi_path not found, please check",
	76022: "could not use this cgi_path,no permission",
}

// ErrMsg returns the errmsg the platform sends with code, without the
// " rid: …" suffix ("" for codes it does not know).
func ErrMsg(code int) string { return errmsgs[code] }

const contentType = "application/json; encoding=utf-8"

// ServeHTTP answers a request as api.weixin.qq.com would, serves the
// files it handed out URLs for under /_media/ and the control plane under
// /_fake/ (see the package documentation). Every API
// answer, errors included, is HTTP 200 with a JSON body (media/get,
// material/get_material and showqrcode send the file itself): a wrong
// method gets 43001 or 43002, a path under an API family the platform does
// not model gets {"errcode":0,"errmsg":"ok"} after the access_token check,
// and any other path 40066 "invalid url".
func (p *Platform) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if id, ok := strings.CutPrefix(path, mediaPrefix); ok {
		p.serveMediaFile(w, r, id)
		return
	}
	if !p.noControl && (path == controlRoot || strings.HasPrefix(path, controlPrefix)) {
		p.serveControl(w, r)
		return
	}
	p.mu.Lock()
	p.stats.Attempts[path]++
	p.mu.Unlock()
	if f, ok := p.takeFault(path); ok {
		if p.applyFault(w, r, path, f) {
			return
		}
	}
	rt, ok := routes[path]
	if !ok {
		p.serveOther(w, r)
		return
	}
	if r.Method != rt.method {
		code := 43001
		if rt.method == http.MethodPost {
			code = 43002
		}
		p.mu.Lock()
		p.fail(w, path, code, "")
		p.mu.Unlock()
		return
	}
	rt.serve(p, w, r)
}

// A route is how the platform serves one API path.
type route struct {
	method string // the only method the path accepts; ServeHTTP answers others, so handlers need not check
	serve  func(p *Platform, w http.ResponseWriter, r *http.Request)
}

// routes are the API paths the platform models: those below and the
// business APIs of business.go.
var routes = withBusiness(map[string]route{
	PathToken:          {http.MethodGet, (*Platform).serveToken},
	PathStableToken:    {http.MethodPost, (*Platform).serveStableToken},
	PathTicket:         {http.MethodGet, (*Platform).serveTicket},
	PathAPIDomainIP:    {http.MethodGet, (*Platform).serveIPList},
	PathCallbackIP:     {http.MethodGet, (*Platform).serveIPList},
	PathClearQuota:     {http.MethodPost, (*Platform).serveClearQuota},
	PathClearQuotaV2:   {http.MethodPost, (*Platform).serveClearQuotaV2},
	PathQuotaGet:       {http.MethodPost, (*Platform).serveQuotaGet},
	PathJSCode2Session: {http.MethodGet, (*Platform).serveJSCode2Session},
	PathShowQRCode:     {http.MethodGet, (*Platform).serveShowQRCode},
})

// withBusiness adds businessRoutes to m and returns it.
func withBusiness(m map[string]route) map[string]route {
	for path, b := range businessRoutes {
		m[path] = route{b.method, b.serve}
	}
	return m
}

// apiFamilies are the path prefixes of the API families on
// api.weixin.qq.com that take ?access_token= (wechat-platform-2 §5.1).
var apiFamilies = []string{
	"/cgi-bin/", "/wxa/", "/wxaapi/", "/datacube/", "/customservice/", "/card/", "/cv/", "/semantic/",
	"/device/", "/marketing/", "/merchant/", "/product/", "/shop/", "/channels/", "/tcb/", "/xpay/",
	"/promoter/", "/user-order/", "/bizwifi/", "/shakearound/", "/componenttcb/", "/wxopen/",
}

// serveOther answers a path the platform does not model: under a known
// API family, {"errcode":0,"errmsg":"ok"} once the access_token checks
// out; elsewhere 40066 "invalid url".
func (p *Platform) serveOther(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	p.mu.Lock()
	defer p.mu.Unlock()
	known := false
	for _, f := range apiFamilies {
		if strings.HasPrefix(path, f) {
			known = true
			break
		}
	}
	if !known {
		p.fail(w, path, 40066, "")
		return
	}
	if p.authorize(w, path, r.URL.Query().Get("access_token"), p.Now()) == nil {
		return
	}
	writeJSON(w, okReply)
}

// okReply is the answer of a call that has nothing else to say.
var okReply = struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}{0, "ok"}

// writeJSON sends v with the live platform's content type.
func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Write(b)
}

// fail sends an in-band error and counts it. The caller holds p.mu.
func (p *Platform) fail(w http.ResponseWriter, path string, code int, msg string) {
	if msg == "" {
		msg = errmsgs[code]
	}
	if !p.noRID {
		msg += " rid: " + p.newRID()
	}
	m := p.stats.Errors[path]
	if m == nil {
		m = map[int]int{}
		p.stats.Errors[path] = m
	}
	m[code]++
	writeJSON(w, struct {
		Errcode int    `json:"errcode"`
		Errmsg  string `json:"errmsg"`
	}{code, msg})
}

// newRID returns a request id in the live format, e.g. 64b09fbb-56b7faa9-1054a9fe.
func (p *Platform) newRID() string {
	n := p.rid.Add(1)
	return fmt.Sprintf("%08x-%08x-%08x", uint32(p.Now().Unix()), uint32(n*2654435761), uint32(n))
}

// clientAddr returns the caller's IP address.
func clientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// credentials runs the checks both token endpoints share, in the order of
// the checklist: grant_type, appid, secret, whitelist, frozen. It returns
// the app, or 0 and an errcode with an optional errmsg. The caller holds p.mu.
func (p *Platform) credentials(r *http.Request, grantType, appID, secret string) (*app, int, string) {
	switch {
	case grantType != "client_credential":
		return nil, 40002, ""
	case appID == "":
		return nil, 41002, ""
	}
	a := p.apps[appID]
	switch {
	case a == nil:
		return nil, 40013, ""
	case secret == "":
		return nil, 41004, ""
	case secret != a.secret:
		return nil, p.badSecretCode, errmsgs[p.badSecretCode]
	}
	if a.whitelist != nil {
		ip := clientAddr(r)
		ok := false
		for _, pr := range a.whitelist {
			if pr.Contains(ip) {
				ok = true
				break
			}
		}
		if !ok {
			msg := errmsgs[p.whitelistCode]
			if p.whitelistCode == 40164 {
				msg = fmt.Sprintf("invalid ip %s ipv6 ::ffff:%s, not in whitelist", ip, ip)
			}
			return nil, p.whitelistCode, msg
		}
	}
	if a.frozen {
		return nil, 40243, ""
	}
	return a, 0, ""
}

type tokenReply struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

func (p *Platform) serveToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	defer p.mu.Unlock()
	a, code, msg := p.credentials(r, q.Get("grant_type"), q.Get("appid"), q.Get("secret"))
	if code != 0 {
		p.fail(w, PathToken, code, msg)
		return
	}
	now := p.Now()
	p.roll(a, now)
	if p.overQuota(a, PathToken) {
		p.fail(w, PathToken, 45009, "")
		return
	}
	a.used[PathToken]++
	rec := p.issueClassic(a, now)
	p.countFetch(a, PathToken, true)
	writeJSON(w, tokenReply{rec.value, seconds(p.lifetime)})
}

func (p *Platform) serveStableToken(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var req struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		p.fail(w, PathStableToken, 47001, "")
		return
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		p.fail(w, PathStableToken, 44002, "")
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		p.fail(w, PathStableToken, 47001, "")
		return
	}
	a, code, msg := p.credentials(r, req.GrantType, req.AppID, req.Secret)
	if code != 0 {
		p.fail(w, PathStableToken, code, msg)
		return
	}
	now := p.Now()
	p.roll(a, now)
	if m := now.Unix() / 60; m != a.minute {
		a.minute, a.minuteCount = m, 0
	}
	if p.minuteLimit > 0 && a.minuteCount >= p.minuteLimit {
		p.fail(w, PathStableToken, 45011, "")
		return
	}
	if p.overQuota(a, PathStableToken) {
		p.fail(w, PathStableToken, 45009, "")
		return
	}
	cur := a.stableCur
	renew := cur == nil || cur.expires.Sub(now) <= p.renewal || p.validAt(cur, now) != 0
	if req.ForceRefresh && (a.lastForce.IsZero() || now.Sub(a.lastForce) >= p.forceSpacing) {
		if p.overQuota(a, pathStableForce) {
			p.fail(w, PathStableToken, 45009, "")
			return
		}
		a.used[pathStableForce]++
		a.lastForce = now
		renew = true
	}
	a.minuteCount++
	a.used[PathStableToken]++
	if renew {
		// Two slots: the current token becomes the previous one and
		// keeps working for the grace period; the older previous dies.
		if prev := a.stablePrev; prev != nil {
			prev.deadline = minTime(prev.deadline, now)
		}
		if cur != nil {
			cur.deadline = minTime(cur.deadline, now.Add(p.grace))
		}
		a.stablePrev = cur
		a.stableCur = p.mint(a, now, true)
		p.log.Info("wechattest: issued access_token", "app", a.id, "endpoint", PathStableToken, "force", req.ForceRefresh)
	}
	p.countFetch(a, PathStableToken, renew)
	writeJSON(w, tokenReply{a.stableCur.value, seconds(a.stableCur.expires.Sub(now))})
}

// authorize checks the access_token of a call. It returns the token's app,
// or nil after answering with the error. The caller holds p.mu.
func (p *Platform) authorize(w http.ResponseWriter, path, token string, now time.Time) *app {
	code := 41001
	var rec *tokenRec
	if token != "" {
		rec = p.tokens[token]
		code = 40014
		if rec != nil {
			code = p.validAt(rec, now)
		}
	}
	if code != 0 {
		p.stats.Rejected[code]++
		if rec != nil {
			p.appStats(rec.app).Rejected[code]++
		}
		p.fail(w, path, code, "")
		return nil
	}
	p.stats.Accepted++
	p.appStats(rec.app).Accepted++
	p.roll(rec.app, now)
	return rec.app
}

func (p *Platform) serveTicket(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.Now()
	a := p.authorize(w, PathTicket, q.Get("access_token"), now)
	if a == nil {
		return
	}
	if a.kind.mini() {
		p.fail(w, PathTicket, p.miniTicketCode, "")
		return
	}
	typ := q.Get("type")
	if typ != "jsapi" && typ != "wx_card" {
		p.fail(w, PathTicket, 40097, "invalid args, type must be jsapi or wx_card")
		return
	}
	if p.overQuota(a, PathTicket) {
		p.fail(w, PathTicket, 45009, "")
		return
	}
	a.used[PathTicket]++
	t := a.tickets[typ]
	issued := t == nil || !now.Before(t.expires)
	if issued {
		t = &ticket{value: randomString(64), expires: now.Add(p.ticketLifetime)}
		a.tickets[typ] = t
		p.log.Info("wechattest: issued ticket", "app", a.id, "type", typ)
	}
	p.countFetch(a, PathTicket, issued)
	writeJSON(w, struct {
		Errcode   int    `json:"errcode"`
		Errmsg    string `json:"errmsg"`
		Ticket    string `json:"ticket"`
		ExpiresIn int    `json:"expires_in"`
	}{0, "ok", t.value, seconds(p.ticketLifetime)})
}

// ipList is what get_api_domain_ip and getcallbackip answer: documentation
// addresses, not WeChat's.
var ipList = map[string][]string{
	PathAPIDomainIP: {"101.89.47.18", "101.91.34.103", "101.226.103.0/25"},
	PathCallbackIP:  {"101.226.62.77", "101.226.62.78", "101.226.62.79"},
}

func (p *Platform) serveIPList(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.authorize(w, path, r.URL.Query().Get("access_token"), p.Now())
	if a == nil {
		return
	}
	if p.overQuota(a, path) {
		p.fail(w, path, 45009, "")
		return
	}
	a.used[path]++
	writeJSON(w, struct {
		IPList []string `json:"ip_list"`
	}{ipList[path]})
}

// decodeBody reads a JSON POST body into v, answering 44002 or 47001
// itself when it cannot. ServeHTTP's route table has answered any other
// method with 43002. The caller holds p.mu.
func (p *Platform) decodeBody(w http.ResponseWriter, r *http.Request, path string, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		p.fail(w, path, 47001, "")
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		p.fail(w, path, 44002, "")
		return false
	}
	if json.Unmarshal(body, v) != nil {
		p.fail(w, path, 47001, "")
		return false
	}
	return true
}

func (p *Platform) serveClearQuota(w http.ResponseWriter, r *http.Request) {
	const path = PathClearQuota
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.Now()
	a := p.authorize(w, path, r.URL.Query().Get("access_token"), now)
	if a == nil {
		return
	}
	var req struct {
		AppID string `json:"appid"`
	}
	if !p.decodeBody(w, r, path, &req) {
		return
	}
	switch {
	case req.AppID == "":
		p.fail(w, path, 41002, "")
	case req.AppID != a.id:
		p.fail(w, path, 40013, "")
	default:
		p.clearQuota(w, path, a)
	}
}

func (p *Platform) serveClearQuotaV2(w http.ResponseWriter, r *http.Request) {
	const path = PathClearQuotaV2
	p.mu.Lock()
	defer p.mu.Unlock()
	var req struct {
		AppID     string `json:"appid"`
		AppSecret string `json:"appsecret"`
	}
	if !p.decodeBody(w, r, path, &req) {
		return
	}
	a := p.apps[req.AppID]
	switch {
	case req.AppID == "":
		p.fail(w, path, 41002, "")
	case a == nil:
		p.fail(w, path, 40013, "")
	case req.AppSecret == "":
		p.fail(w, path, 41004, "")
	case req.AppSecret != a.secret:
		p.fail(w, path, p.badSecretCode, "")
	default:
		p.roll(a, p.Now())
		p.clearQuota(w, path, a)
	}
}

// clearQuota resets a's daily counts if its monthly budget allows. The
// caller holds p.mu and has rolled a to now.
func (p *Platform) clearQuota(w http.ResponseWriter, path string, a *app) {
	if p.clearLimit > 0 && a.clears >= p.clearLimit {
		p.fail(w, path, 48006, "")
		return
	}
	a.clears++
	for k := range a.used {
		if !p.clearStable && (k == PathStableToken || k == pathStableForce) {
			continue
		}
		if p.clearKeepsTok[a.kind] && (k == PathToken || k == PathStableToken || k == pathStableForce) {
			continue
		}
		delete(a.used, k)
	}
	p.log.Info("wechattest: cleared quota", "app", a.id, "clears_this_month", a.clears)
	writeJSON(w, struct {
		Errcode int    `json:"errcode"`
		Errmsg  string `json:"errmsg"`
	}{0, "ok"})
}

type quotaInfo struct {
	DailyLimit int `json:"daily_limit"`
	Used       int `json:"used"`
	Remain     int `json:"remain"`
}

type rateLimit struct {
	CallCount     int `json:"call_count"`
	RefreshSecond int `json:"refresh_second"`
}

func (p *Platform) serveQuotaGet(w http.ResponseWriter, r *http.Request) {
	const path = PathQuotaGet
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.authorize(w, path, r.URL.Query().Get("access_token"), p.Now())
	if a == nil {
		return
	}
	var req struct {
		CGIPath string `json:"cgi_path"`
	}
	if !p.decodeBody(w, r, path, &req) {
		return
	}
	cgi := req.CGIPath
	switch {
	case !strings.HasPrefix(cgi, "/") || strings.Contains(cgi, "://") || strings.ContainsAny(cgi, "?# "):
		p.fail(w, path, 76003, "")
		return
	case strings.HasPrefix(cgi, "/sns/"):
		p.fail(w, path, 76022, "")
		return
	}
	limit, ok := p.quotas[cgi]
	if !ok || strings.Contains(cgi, "#") {
		p.fail(w, path, 76021, "")
		return
	}
	used := a.used[cgi]
	resp := struct {
		Errcode   int        `json:"errcode"`
		Errmsg    string     `json:"errmsg"`
		Quota     quotaInfo  `json:"quota"`
		RateLimit *rateLimit `json:"rate_limit,omitempty"`
	}{Errmsg: "ok", Quota: quotaInfo{limit, used, max(0, limit-used)}}
	if cgi == PathStableToken && p.minuteLimit > 0 {
		resp.RateLimit = &rateLimit{p.minuteLimit, 60}
	}
	writeJSON(w, resp)
}

// applyFault carries out f for a call of path. It reports whether the call
// was answered (or dropped); false means carry on as normal (a pure delay).
func (p *Platform) applyFault(w http.ResponseWriter, r *http.Request, path string, f Fault) bool {
	p.log.Info("wechattest: injecting fault", "path", path, "errcode", f.Errcode, "status", f.Status, "delay", f.Delay, "drop", f.Drop)
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true
		case <-p.stop:
			return true
		}
	}
	switch {
	case f.Drop:
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		conn.Close()
	case f.Status != 0:
		body := f.Body
		if body == "" {
			body = "<html>\r\n<head><title>" + strconv.Itoa(f.Status) + " " + http.StatusText(f.Status) +
				"</title></head>\r\n<body>\r\n<center><h1>" + strconv.Itoa(f.Status) + " " + http.StatusText(f.Status) +
				"</h1></center>\r\n</body>\r\n</html>\r\n"
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.Status)
		io.WriteString(w, body)
	case f.Body != "":
		ct := contentType
		if strings.HasPrefix(strings.TrimSpace(f.Body), "<") {
			ct = "text/html"
		}
		w.Header().Set("Content-Type", ct)
		io.WriteString(w, f.Body)
	case f.Errcode != 0:
		p.mu.Lock()
		p.fail(w, path, f.Errcode, f.Errmsg)
		p.mu.Unlock()
	default:
		return false
	}
	return true
}
