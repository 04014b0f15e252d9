package wechattest

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Endpoint paths the Platform serves. They are also the keys of Stats and
// the endpoint argument of Fail, WithDailyQuota and SetDailyQuota.
const (
	PathToken         = "/cgi-bin/token"
	PathStableToken   = "/cgi-bin/stable_token"
	PathTicket        = "/cgi-bin/ticket/getticket"
	PathAPIDomainIP   = "/cgi-bin/get_api_domain_ip"
	PathCallbackIP    = "/cgi-bin/getcallbackip"
	PathClearQuota    = "/cgi-bin/clear_quota"
	PathClearQuotaV2  = "/cgi-bin/clear_quota/v2"
	PathQuotaGet      = "/cgi-bin/openapi/quota/get"
	pathStableForce   = QuotaStableForce
	defaultLifetime   = 7200 * time.Second
	defaultGrace      = 300 * time.Second
	defaultRenewal    = 300 * time.Second
	defaultForceSpace = 30 * time.Second
)

// QuotaStableForce names the daily budget of stable_token force_refresh
// calls (20 by default) for WithDailyQuota, SetDailyQuota and Used.
const QuotaStableForce = "/cgi-bin/stable_token#force"

// shanghai is Beijing time (UTC+8 all year since 1991), the default zone of
// the quota day and month.
var shanghai = time.FixedZone("Asia/Shanghai", 8*60*60)

// defaultQuotas are the daily limits per app. /cgi-bin/token and
// /cgi-bin/stable_token are documented; the others are not published and
// are chosen to be out of a test's way (override with WithDailyQuota).
func defaultQuotas() map[string]int {
	return map[string]int{
		PathToken:       2000,
		PathStableToken: 500000,
		pathStableForce: 20,
		PathTicket:      100000,
		PathAPIDomainIP: 100000,
		PathCallbackIP:  100000,
		// The published examples of business API limits.
		PathMenuCreate:   1000,
		PathMenuGet:      10000,
		PathCustomSend:   500000,
		PathUserInfo:     5000000,
		PathQRCodeCreate: 100000,
	}
}

// A Platform is the fake WeChat platform: the apps, their tokens and
// tickets, quotas, a clock, injected faults and counters. It is an
// http.Handler serving the API paths of api.weixin.qq.com; use NewServer to
// run it on a loopback port, or NewPlatform to mount it where you like.
//
// All methods are safe for concurrent use.
type Platform struct {
	// Configuration, fixed after NewPlatform.
	frozen         bool
	start          time.Time
	lifetime       time.Duration
	ticketLifetime time.Duration
	grace          time.Duration
	renewal        time.Duration
	forceSpacing   time.Duration
	minuteLimit    int
	clearLimit     int
	loc            *time.Location
	expiredCode    int
	badSecretCode  int
	whitelistCode  int
	clearStable    bool
	clearKeepsTok  map[Kind]bool // kinds whose clear_quota leaves the token counters
	ticketFollows  bool
	noRID          bool
	log            *slog.Logger
	miniTicketCode int
	controlKey     string
	noControl      bool
	opts           []Option // what NewPlatform was given, for Reset

	offset atomic.Int64 // added to the clock by Advance, in nanoseconds
	rid    atomic.Uint64
	stop   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	quotas  map[string]int
	apps    map[string]*app
	order   []string             // app IDs in registration order
	tokens  map[string]*tokenRec // every access token ever issued
	faults  map[string][]*pendingFault
	stats   Stats
	perApp  map[string]*AppStats // per-app counters; Stats copies them into Stats.Apps
	pending []func(*Platform)    // per-app options applied after all apps exist
}

// An app is one registered official account.
type app struct {
	id, secret string
	kind       Kind
	whitelist  []netip.Prefix // nil: any caller
	frozen     bool

	day    string         // quota day the counts belong to
	used   map[string]int // endpoint path → successful calls on day
	month  string
	clears int // clear_quota calls in month

	minute      int64 // Unix minute of minuteCount
	minuteCount int   // stable_token calls in that minute

	token      *tokenRec // latest /cgi-bin/token token
	stableCur  *tokenRec
	stablePrev *tokenRec
	lastForce  time.Time
	tickets    map[string]*ticket

	biz bizState // menus, users' tags, media, QR codes, messages sent
}

// A tokenRec is one access token. It is valid while now is before both
// expires (its natural end: 42001 afterwards) and deadline (set when it is
// superseded: 40001 afterwards).
type tokenRec struct {
	value    string
	app      *app
	expires  time.Time
	deadline time.Time
	stable   bool
}

type ticket struct {
	value   string
	expires time.Time
}

type pendingFault struct {
	f    Fault
	left int
}

// Stats counts what the platform answered. Stats returns a deep copy; its
// JSON form is what GET /_fake/stats answers (with the clock added).
type Stats struct {
	// Fetches counts successful answers of the credential endpoints, keyed
	// by path (PathToken, PathStableToken, PathTicket): the tokens and
	// tickets handed out. A stable_token call that returns the
	// still-current token counts too.
	Fetches map[string]int `json:"fetches"`

	// Issued counts credentials newly minted, keyed like Fetches. For
	// /cgi-bin/token it equals Fetches; for stable_token and getticket it
	// counts only new values.
	Issued map[string]int `json:"issued"`

	// Attempts counts every call by path, failed and faulted ones
	// included (the control plane under /_fake/ and the files under
	// /_media/ are not counted).
	Attempts map[string]int `json:"attempts"`

	// Errors counts answers with an errcode other than 0, by path and then
	// errcode, injected faults included.
	Errors map[string]map[int]int `json:"errors"`

	// Accepted counts calls that presented a valid access_token (business
	// calls, getticket, clear_quota, openapi/quota/get).
	Accepted int `json:"accepted"`

	// Rejected counts calls refused because of their access_token, by
	// errcode: 41001 missing, 40014 unknown, 40001 superseded, 42001
	// expired.
	Rejected map[int]int `json:"rejected"`

	// Apps holds the same figures per registered app, keyed by AppID.
	Apps map[string]AppStats `json:"apps"`
}

// AppStats are the figures of one app in Stats.
type AppStats struct {
	Kind Kind `json:"kind"`

	// Fetches, Issued, Accepted and Rejected count as in Stats, for
	// this app's credentials and tokens. A call with an unknown token
	// (40014) or none (41001) belongs to no app.
	Fetches  map[string]int `json:"fetches"`
	Issued   map[string]int `json:"issued"`
	Accepted int            `json:"accepted"`
	Rejected map[int]int    `json:"rejected"`

	// Used is the app's use of each daily quota in the current quota
	// day, keyed by path (see Used).
	Used map[string]int `json:"used"`

	// TokenValid and TokenExpiresIn describe the newest /cgi-bin/token
	// token: whether it works now, and its remaining life in whole
	// seconds (0 when there is none or it no longer works).
	TokenValid     bool `json:"token_valid"`
	TokenExpiresIn int  `json:"token_expires_in"`
}

func newAppStats(k Kind) *AppStats {
	return &AppStats{Kind: k, Fetches: map[string]int{}, Issued: map[string]int{}, Rejected: map[int]int{}}
}

func (s Stats) clone() Stats {
	c := Stats{
		Fetches:  maps.Clone(s.Fetches),
		Issued:   maps.Clone(s.Issued),
		Attempts: maps.Clone(s.Attempts),
		Errors:   make(map[string]map[int]int, len(s.Errors)),
		Accepted: s.Accepted,
		Rejected: maps.Clone(s.Rejected),
	}
	for k, v := range s.Errors {
		c.Errors[k] = maps.Clone(v)
	}
	return c
}

func newStats() Stats {
	return Stats{
		Fetches:  map[string]int{},
		Issued:   map[string]int{},
		Attempts: map[string]int{},
		Errors:   map[string]map[int]int{},
		Rejected: map[int]int{},
	}
}

// appStats returns a's counters. The caller holds p.mu.
func (p *Platform) appStats(a *app) *AppStats {
	s := p.perApp[a.id]
	if s == nil {
		s = newAppStats(a.kind)
		p.perApp[a.id] = s
	}
	return s
}

// countFetch counts a successful answer of a credential endpoint for a,
// and whether it minted a new value. The caller holds p.mu.
func (p *Platform) countFetch(a *app, path string, issued bool) {
	s := p.appStats(a)
	p.stats.Fetches[path]++
	s.Fetches[path]++
	if issued {
		p.stats.Issued[path]++
		s.Issued[path]++
	}
}

// NewPlatform returns a Platform configured by opts. Without WithApp it has
// no apps and every credential request fails with 40013.
func NewPlatform(opts ...Option) *Platform {
	p := &Platform{
		lifetime:       defaultLifetime,
		grace:          defaultGrace,
		renewal:        -1,
		forceSpacing:   defaultForceSpace,
		minuteLimit:    10000,
		clearLimit:     10,
		loc:            shanghai,
		expiredCode:    42001,
		badSecretCode:  40125,
		whitelistCode:  40164,
		clearStable:    true,
		clearKeepsTok:  map[Kind]bool{KindMiniProgram: true, KindMiniGame: true},
		stop:           make(chan struct{}),
		quotas:         defaultQuotas(),
		apps:           map[string]*app{},
		tokens:         map[string]*tokenRec{},
		faults:         map[string][]*pendingFault{},
		stats:          newStats(),
		perApp:         map[string]*AppStats{},
		opts:           slices.Clone(opts),
		miniTicketCode: 48001,
	}
	for _, o := range opts {
		o(p)
	}
	for _, f := range p.pending {
		f(p)
	}
	p.pending = nil
	if p.ticketLifetime == 0 {
		p.ticketLifetime = p.lifetime
	}
	if p.renewal < 0 {
		// A token must outlive its renewal window, or normal mode would
		// mint a new one on every call.
		p.renewal = min(defaultRenewal, p.lifetime/2)
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p
}

// Now returns the platform's time: the frozen clock of WithClock, or the
// real time, plus everything passed to Advance. A Platform can serve as the
// wechat.Clock of the code under test so both sides agree on the time.
func (p *Platform) Now() time.Time {
	base := p.start
	if !p.frozen {
		base = time.Now()
	}
	return base.Add(time.Duration(p.offset.Load()))
}

// Advance moves the platform's clock forward by d (backward if d < 0).
// Tokens, tickets, grace periods, quota days and months all follow it.
func (p *Platform) Advance(d time.Duration) {
	p.offset.Add(int64(d))
}

// Stats returns a snapshot of the counters.
func (p *Platform) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.stats.clone()
	now := p.Now()
	c.Apps = make(map[string]AppStats, len(p.order))
	for _, id := range p.order {
		a := p.apps[id]
		s := newAppStats(a.kind)
		if o := p.perApp[id]; o != nil {
			s.Fetches, s.Issued, s.Rejected = maps.Clone(o.Fetches), maps.Clone(o.Issued), maps.Clone(o.Rejected)
			s.Accepted = o.Accepted
		}
		p.roll(a, now)
		s.Used = maps.Clone(a.used)
		if a.token != nil && p.validAt(a.token, now) == 0 {
			s.TokenValid = true
			s.TokenExpiresIn = int(minTime(a.token.expires, a.token.deadline).Sub(now) / time.Second)
		}
		c.Apps[id] = *s
	}
	return c
}

// ResetStats zeroes the counters. Tokens, quotas and faults are untouched.
func (p *Platform) ResetStats() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats = newStats()
	clear(p.perApp)
}

// Apps returns the registered app IDs in registration order.
func (p *Platform) Apps() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.order...)
}

// Token returns the newest access token /cgi-bin/token issued for appID and
// whether it is still valid now.
func (p *Platform) Token(appID string) (token string, valid bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[appID]
	if a == nil || a.token == nil {
		return "", false
	}
	return a.token.value, p.validAt(a.token, p.Now()) == 0
}

// StableToken returns the current token of /cgi-bin/stable_token for appID
// and whether it is still valid now.
func (p *Platform) StableToken(appID string) (token string, valid bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[appID]
	if a == nil || a.stableCur == nil {
		return "", false
	}
	return a.stableCur.value, p.validAt(a.stableCur, p.Now()) == 0
}

// Ticket returns the current ticket of type typ ("jsapi" or "wx_card") for
// appID and whether it is still valid now.
func (p *Platform) Ticket(appID, typ string) (value string, valid bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[appID]
	if a == nil || a.tickets[typ] == nil {
		return "", false
	}
	t := a.tickets[typ]
	return t.value, p.Now().Before(t.expires)
}

// IssueToken issues a new /cgi-bin/token token for appID exactly as a
// successful GET /cgi-bin/token would (the previous token gets its grace
// period, the call counts against the quota and in Stats). It stands in for
// another process fetching behind the back of the code under test. It
// returns "" if appID is not registered or its quota is used up.
func (p *Platform) IssueToken(appID string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[appID]
	if a == nil {
		return ""
	}
	now := p.Now()
	p.roll(a, now)
	if p.overQuota(a, PathToken) {
		return ""
	}
	a.used[PathToken]++
	rec := p.issueClassic(a, now)
	p.countFetch(a, PathToken, true)
	return rec.value
}

// Used returns how many successful calls of endpoint appID made in the
// current quota day.
func (p *Platform) Used(appID, endpoint string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[appID]
	if a == nil {
		return 0
	}
	p.roll(a, p.Now())
	return a.used[endpoint]
}

// SetDailyQuota sets the daily limit of endpoint for every app; n <= 0
// removes the limit. Use QuotaStableForce for the budget of force_refresh
// calls.
func (p *Platform) SetDailyQuota(endpoint string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.quotas[endpoint] = n
}

// SetFrozen freezes (or unfreezes) appID's AppSecret: /cgi-bin/token and
// /cgi-bin/stable_token then answer 40243.
func (p *Platform) SetFrozen(appID string, frozen bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.apps[appID]; a != nil {
		a.frozen = frozen
	}
}

// Fail makes the next f.Times calls of endpoint (a path such as
// PathToken) fail as f says, before any other processing. Faults given for
// the same endpoint queue up in order.
func (p *Platform) Fail(endpoint string, f Fault) {
	n := f.Times
	if n <= 0 {
		n = 1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[endpoint] = append(p.faults[endpoint], &pendingFault{f: f, left: n})
}

// takeFault returns the fault for the next call of path, if one is queued.
func (p *Platform) takeFault(path string) (Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.faults[path]
	if len(q) == 0 {
		return Fault{}, false
	}
	f := q[0].f
	if q[0].left--; q[0].left == 0 {
		q = q[1:]
		if len(q) == 0 {
			delete(p.faults, path)
		} else {
			p.faults[path] = q
		}
	}
	return f, true
}

// addApp registers (or re-registers) an app. Callers hold no lock: it runs
// from NewPlatform only.
func (p *Platform) addApp(id, secret string, kind Kind) {
	if kind == "" {
		kind = KindOfficialAccount
	}
	if a, ok := p.apps[id]; ok {
		a.secret, a.kind = secret, kind
		return
	}
	p.apps[id] = &app{id: id, secret: secret, kind: kind, used: map[string]int{}, tickets: map[string]*ticket{},
		biz: newBusiness()}
	p.order = append(p.order, id)
}

// roll starts a new quota day or month for a if now has left the current one.
func (p *Platform) roll(a *app, now time.Time) {
	local := now.In(p.loc)
	if day := local.Format(time.DateOnly); day != a.day {
		a.day = day
		clear(a.used)
	}
	if month := local.Format("2006-01"); month != a.month {
		a.month = month
		a.clears = 0
	}
}

// overQuota reports whether a has used up endpoint's daily quota.
func (p *Platform) overQuota(a *app, endpoint string) bool {
	limit := p.quotas[endpoint]
	return limit > 0 && a.used[endpoint] >= limit
}

// validAt returns 0 if rec is valid at now, otherwise the errcode a
// business call presenting it gets.
func (p *Platform) validAt(rec *tokenRec, now time.Time) int {
	switch {
	case !now.Before(rec.expires):
		return p.expiredCode
	case !now.Before(rec.deadline):
		return 40001
	}
	return 0
}

// issueClassic mints a /cgi-bin/token token for a; the previous one keeps
// working for the grace period at most.
func (p *Platform) issueClassic(a *app, now time.Time) *tokenRec {
	if old := a.token; old != nil {
		old.deadline = minTime(old.deadline, now.Add(p.grace))
	}
	rec := p.mint(a, now, false)
	a.token = rec
	if p.ticketFollows {
		clear(a.tickets)
	}
	p.log.Info("wechattest: issued access_token", "app", a.id, "endpoint", PathToken)
	return rec
}

// mint creates and records a new token for a.
func (p *Platform) mint(a *app, now time.Time, stable bool) *tokenRec {
	exp := now.Add(p.lifetime)
	rec := &tokenRec{value: randomString(96), app: a, expires: exp, deadline: exp, stable: stable}
	p.tokens[rec.value] = rec
	return rec
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// randomBytes returns n unpredictable bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic("wechattest: crypto/rand failed: " + err.Error())
	}
	return b
}

// randomString returns n unpredictable bytes as URL-safe base64 (4n/3
// characters), the alphabet WeChat's tokens and tickets use.
func randomString(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic("wechattest: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// seconds converts d to the whole seconds of an expires_in field: rounded
// down, at least 1.
func seconds(d time.Duration) int {
	return max(1, int(d/time.Second))
}
