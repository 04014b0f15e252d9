package wechat

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wxcentral/wxcentral/util"
)

// DefaultAPIBase is WeChat's API endpoint.
const DefaultAPIBase = "https://api.weixin.qq.com"

// DefaultStorePath is the file the original Koa app keeps its token in.
const DefaultStorePath = "wechat.txt"

// A TokenAPI names the WeChat endpoint a keeper fetches tokens from.
type TokenAPI string

// The two token endpoints. The values are those of WECHAT_TOKEN_API.
const (
	// TokenAPIClassic is GET /cgi-bin/token: every fetch issues a new token
	// and kills the previous one five minutes later; 2000 fetches a day.
	TokenAPIClassic TokenAPI = "token"
	// TokenAPIStable is POST /cgi-bin/stable_token: while a token is valid
	// the same one comes back; the secret travels in the body, not the URL.
	TokenAPIStable TokenAPI = "stable"
)

// Options configure New. Only AppID and AppSecret are required; every zero
// field takes the default its comment names.
type Options struct {
	AppID     string
	AppSecret string

	// Store keeps the credentials where every process of the app sees
	// them. Default: NewFileStore(DefaultStorePath, Logger).
	Store Store

	// APIBase is the scheme and host of the WeChat API. Default
	// DefaultAPIBase; a wechattest server's URL in tests.
	APIBase string

	// HTTPClient makes the upstream calls. Default: a client with a 10 s
	// overall timeout and 5 s dial and TLS handshake timeouts. The keeper
	// uses a copy that refuses redirects (see RedirectError); the client
	// given is not changed.
	HTTPClient *http.Client

	// Upstream, if set, is where the keeper's calls go instead of APIBase
	// and HTTPClient: a list of API bases with failover (see Upstream),
	// shared by the keepers and the gateway of a server. APIBase then
	// defaults to its primary.
	Upstream *Upstream

	// TokenAPI selects the token endpoint. Default TokenAPIClassic.
	TokenAPI TokenAPI

	// RefreshBefore is how long before expiry a token turns stale: it is
	// still served, and one refresh starts. Default 5 min; capped at half
	// the token's lifetime.
	RefreshBefore time.Duration

	// SpreadRefresh moves the instant each credential turns stale to a
	// stable point in the first half of its refresh window (RefreshBefore,
	// or half the life of a short-lived credential): the same point in
	// every process of the app, a different one for each app and
	// credential, chosen by a hash of the AppID and the credential's kind.
	// A server that keeps many apps sets it, so that apps whose tokens
	// were fetched in the same second (at its start, after an outage) do
	// not all refresh in the same second again: WeChat sees a trickle, not
	// a burst. A credential still turns stale at least half its window
	// before it expires. Run's re-reads of the Store (SyncInterval) are
	// spread too: each app's interval is shortened by a stable share of
	// up to a tenth. Default off: stale RefreshBefore before expiry.
	SpreadRefresh bool

	// Logger receives one line per event that matters: a failure repeated
	// within a minute is logged once, and its next line (or the line that
	// says refreshes succeed again) counts those suppressed. A refresh
	// waiting on the Store's lock for more than a few seconds is logged
	// once. Default: discard.
	Logger *slog.Logger

	// Clock tells the time (a util.Clock). Default: the system clock. A
	// *wechattest.Server can be passed to share the fake's clock.
	Clock Clock

	// DailyBudget is the number of token fetch attempts allowed per quota
	// day (Beijing time), counted in the Store across processes: every
	// call that may have reached WeChat counts, failed ones included.
	// Default 2000 for TokenAPIClassic, 10000 for TokenAPIStable.
	DailyBudget int

	// TicketDailyBudget is the number of getticket calls allowed per quota
	// day, all ticket types together. Default 1000.
	TicketDailyBudget int

	// MinFetchInterval is the least time between two token fetches,
	// checked against the fetch time of the stored token (a quarter of
	// that token's lifetime, if less, so that short-lived tokens can be
	// replaced). Default 10 s. A passive refresh within that time of the
	// last fetch gets ErrRateLimited instead of a fetch. Each ticket kind
	// is bounded the same way.
	MinFetchInterval time.Duration

	// MaxFetchesPerHour caps the tokens issued to this app (successful
	// fetches) per clock hour of Beijing time, counted in the Store across
	// processes: it bounds a fight with another program that fetches
	// tokens with the same AppSecret. Failed attempts do not count (the
	// back-off and DailyBudget govern them). While no valid token is held
	// (or only the one a passive refresh says WeChat rejected), one fetch
	// per 5 minutes passes the cap. Default 30. The tickets issued
	// (getticket, all types together) are capped by the same number, on
	// their own count.
	MaxFetchesPerHour int

	// MaxAttempts bounds the attempts of one fetch when WeChat answers -1
	// or -1000, an HTTP 5xx, or the network fails. Default 4.
	MaxAttempts int

	// RetryBackoff is the longest delay after the first failed fetch
	// attempt: the delay is uniformly random between half of it and all of
	// it (0.75 times it on average). It doubles with each failure in a row
	// up to 16 times its value, and carries over to the next refresh until
	// a fetch succeeds. Default 200 ms.
	RetryBackoff time.Duration

	// CredentialCooldown is how long fetches pause after WeChat rejects
	// the credentials (40125, 40164, …); it doubles on each rejection in a
	// row up to 32 times its value. The pause is kept in the Store
	// (KindCooldown): every process and host on it honours it, and a
	// restart does not end it. Default 1 min.
	CredentialCooldown time.Duration

	// SyncInterval is how often Run re-reads the Store to adopt a token
	// another process fetched out of turn (a passive or forced refresh).
	// It must stay well below WeChat's 5 min grace. Default 30 s.
	SyncInterval time.Duration

	// RefreshTimeout bounds one refresh (lock, load, fetch with retries,
	// save) done on behalf of callers. Default 30 s.
	RefreshTimeout time.Duration
}

// withDefaults returns o with defaults filled in, or one error naming every
// problem.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if o.AppID == "" {
		bad("AppID is empty: set it to the official account's AppID (wx…)")
	} else if strings.ContainsAny(o.AppID, " \t\r\n&?#/") {
		bad("AppID %q contains characters an AppID never has", o.AppID)
	}
	if o.AppSecret == "" {
		bad("AppSecret is empty: set it to the account's AppSecret")
	} else if strings.ContainsAny(o.AppSecret, " \t\r\n") {
		bad("AppSecret contains white space (check for a stray newline)")
	}
	if o.Upstream != nil {
		if o.APIBase != "" && strings.TrimRight(o.APIBase, "/") != o.Upstream.bases[0] {
			bad("APIBase %q and Upstream (primary %q) are both set: set one", redactURL(o.APIBase), o.Upstream.bases[0])
		}
		if o.HTTPClient != nil {
			bad("HTTPClient and Upstream are both set: the Upstream's client sends the calls")
		}
		o.APIBase = o.Upstream.bases[0]
	}
	if o.APIBase == "" {
		o.APIBase = DefaultAPIBase
	} else if _, err := util.ParseHTTPBase(o.APIBase); err != nil {
		bad("APIBase %q is not an http(s) URL with a host and no user, query or fragment: %v", redactURL(o.APIBase), err)
	}
	o.APIBase = strings.TrimRight(o.APIBase, "/")
	switch o.TokenAPI {
	case "":
		o.TokenAPI = TokenAPIClassic
	case TokenAPIClassic, TokenAPIStable:
	default:
		bad("TokenAPI %q is neither %q nor %q", o.TokenAPI, TokenAPIClassic, TokenAPIStable)
	}
	durations := []struct {
		name string
		p    *time.Duration
		def  time.Duration
	}{
		{"RefreshBefore", &o.RefreshBefore, 5 * time.Minute},
		{"MinFetchInterval", &o.MinFetchInterval, 10 * time.Second},
		{"RetryBackoff", &o.RetryBackoff, 200 * time.Millisecond},
		{"CredentialCooldown", &o.CredentialCooldown, time.Minute},
		{"SyncInterval", &o.SyncInterval, 30 * time.Second},
		{"RefreshTimeout", &o.RefreshTimeout, 30 * time.Second},
	}
	for _, d := range durations {
		switch {
		case *d.p < 0:
			bad("%s is negative (%v)", d.name, *d.p)
		case *d.p == 0:
			*d.p = d.def
		}
	}
	ints := []struct {
		name string
		p    *int
		def  int
	}{
		{"DailyBudget", &o.DailyBudget, 2000},
		{"TicketDailyBudget", &o.TicketDailyBudget, 1000},
		{"MaxFetchesPerHour", &o.MaxFetchesPerHour, 30},
		{"MaxAttempts", &o.MaxAttempts, 4},
	}
	if o.TokenAPI == TokenAPIStable {
		ints[0].def = 10000
	}
	for _, n := range ints {
		switch {
		case *n.p < 0:
			bad("%s is negative (%d)", n.name, *n.p)
		case *n.p == 0:
			*n.p = n.def
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = util.SystemClock{}
	}
	o.HTTPClient = upstreamClient(o.HTTPClient)
	if o.Store == nil {
		o.Store = NewFileStore(DefaultStorePath, o.Logger)
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("wechat: bad options: %w", errors.Join(errs...))
	}
	return o, nil
}
