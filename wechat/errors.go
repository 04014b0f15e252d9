package wechat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Errors a caller can test for with errors.Is.
var (
	// ErrQuotaExhausted: the day's budget of upstream fetches is used up
	// (by wxcentral's own count or because WeChat answered 45009). No more
	// fetches are made until the quota day changes.
	ErrQuotaExhausted = errors.New("wechat: daily fetch quota exhausted")

	// ErrSuperseded: a Store refused a save because it already holds a
	// credential fetched later.
	ErrSuperseded = errors.New("wechat: a newer credential is already stored")

	// ErrNoToken: no valid token is held and none could be obtained.
	ErrNoToken = errors.New("wechat: no valid access token")

	// ErrClosed: the keeper was closed, so it refreshes nothing more.
	ErrClosed = errors.New("wechat: keeper closed")
)

// An APIError is an error WeChat reported in a response body
// ({"errcode":N,"errmsg":"…"}). Use errors.As to get at the code.
type APIError struct {
	Code int    // errcode
	Msg  string // errmsg as WeChat sent it, but at most 256 bytes of valid UTF-8 without control characters
	API  string // the path called, e.g. "/cgi-bin/token"; never a query
}

// Error says which API failed with which errcode and errmsg, and for the
// codes a person must act on, what to do (see Hint).
func (e *APIError) Error() string {
	s := fmt.Sprintf("wechat: %s: errcode %d: %s", e.API, e.Code, e.Msg)
	if h := e.Hint(); h != "" {
		s += " (" + h + ")"
	}
	return s
}

// Hint is hint(e.Code), made specific where the message allows: for 40164
// it names the IP address to add to the whitelist.
func (e *APIError) Hint() string {
	if e.Code == 40164 {
		if ip := ipInMessage(e.Msg); ip != "" {
			return "this server's IP " + ip + " is not in the API IP whitelist: add " + ip +
				" on the official account platform (设置与开发 → 基本配置 → IP白名单)"
		}
	}
	return hint(e.Code)
}

// ipInMessage returns the address in an errmsg such as
// "invalid ip 1.2.3.4 ipv6 ::ffff:1.2.3.4, not in whitelist rid: …", or "".
func ipInMessage(msg string) string {
	_, rest, ok := strings.Cut(msg, "invalid ip ")
	if !ok {
		return ""
	}
	ip, _, _ := strings.Cut(rest, " ")
	ip = strings.TrimRight(ip, ",")
	if net.ParseIP(ip) == nil {
		return ""
	}
	return ip
}

// hint says, for the errcodes a person has to act on, what to do.
// It returns "" for the others.
func hint(code int) string {
	switch code {
	case 40001:
		return "the token was superseded by a newer fetch, or the AppSecret is wrong"
	case 40002:
		return "grant_type must be client_credential"
	case 40013:
		return "the AppID is wrong: check WECHAT_APP_ID (or the app's app_id in the config file)"
	case 40125:
		return "the AppSecret is wrong: check WECHAT_APP_SECRET (or the app's secret in the config file, then reload), or reset it on the official account platform"
	case 40164:
		return "this server's IP is not in the API IP whitelist: add the IP named in the message on the official account platform"
	case 40243:
		return "the AppSecret is frozen: unfreeze or reset it on the official account platform"
	case 41002:
		return "the AppID is missing: set WECHAT_APP_ID (or the app's app_id in the config file)"
	case 41004:
		return "the AppSecret is missing: set WECHAT_APP_SECRET (or the app's secret in the config file)"
	case 45009:
		return "the daily quota is exhausted; it resets at 00:00 Beijing time, or use clear_quota"
	case 45011:
		return "the per-minute quota is exhausted; retry next minute"
	case 89503:
		return "an administrator must confirm this IP on the official account platform"
	case 89501:
		return "this IP is waiting for an administrator's confirmation"
	case 89506:
		return "an administrator refused this IP twice; blocked for 24 hours"
	case 89507:
		return "an administrator refused this IP; blocked for 1 hour"
	}
	return ""
}

// More errors a caller can test for with errors.Is.
var (
	// ErrRateLimited: a fetch was refused because the previous one was too
	// recent (Options.MinFetchInterval, checked against the stored token's
	// fetch time) or the hour's cap of issued tokens
	// (Options.MaxFetchesPerHour) is reached while a valid token is held
	// (or was passed less than 5 minutes ago). It guards the daily quota
	// against storms of passive refreshes and against a fight with another
	// program that also fetches tokens.
	ErrRateLimited = errors.New("wechat: token fetch rate limited")

	// ErrCooldown: a fetch was refused because WeChat recently rejected the
	// credentials (a wrong AppSecret, an IP not in the whitelist, …).
	// The error also wraps the *APIError that started the cooldown.
	ErrCooldown = errors.New("wechat: fetches paused after a credential error")
)

// A CooldownError is the error of a fetch refused while fetches are paused
// after WeChat rejected the credentials. errors.Is(err, ErrCooldown) holds
// for it, and errors.As finds the *APIError that started the pause.
type CooldownError struct {
	Until time.Time // when the pause ends; zero if unknown
	Err   error     // what WeChat answered when it started, an *APIError
}

// Error says that fetches are paused, until when, and after what.
func (e *CooldownError) Error() string {
	s := ErrCooldown.Error()
	if !e.Until.IsZero() {
		s += " until " + e.Until.UTC().Format(time.RFC3339)
	}
	if e.Err != nil {
		s += ", after: " + e.Err.Error()
	}
	return s
}

// Is reports whether target is ErrCooldown.
func (e *CooldownError) Is(target error) bool { return target == ErrCooldown }

// Unwrap returns the error that started the pause.
func (e *CooldownError) Unwrap() error { return e.Err }

// isCredentialError reports whether code says the AppID, the AppSecret or
// the caller's IP is not accepted: retrying will not help, a person must act.
func isCredentialError(code int) bool {
	switch code {
	case 40001, 40002, 40013, 40125, 40164, 40243, 41002, 41004:
		return true
	}
	return code >= 89500 && code < 89600
}

// isTokenError reports whether code says the access token used for a call
// was rejected (superseded, unknown or expired): a passive refresh helps.
func isTokenError(code int) bool {
	return code == 40001 || code == 40014 || code == 42001
}

// The reasons ErrorReason gives, and that the admin API sends in the
// "reason" field of an error body. They are stable: clients match them.
const (
	ReasonRateLimited    = "rate_limited"    // ErrRateLimited
	ReasonQuotaExhausted = "quota_exhausted" // ErrQuotaExhausted
	ReasonCooldown       = "cooldown"        // ErrCooldown
	ReasonNoToken        = "no_token"        // ErrNoToken
	ReasonClosed         = "closed"          // ErrClosed
	ReasonUpstream       = "upstream"        // WeChat answered an error or could not be reached
	ReasonTimeout        = "timeout"         // the request's deadline passed first
	ReasonInternal       = "internal"        // anything else (the store failed, …)
)

// reasons pairs each sentinel with its reason, most specific first: a
// cooldown error also wraps the *APIError that started it.
var reasons = [...]struct {
	err    error
	reason string
}{
	{ErrClosed, ReasonClosed},
	{ErrCooldown, ReasonCooldown},
	{ErrQuotaExhausted, ReasonQuotaExhausted},
	{ErrRateLimited, ReasonRateLimited},
	{ErrNoToken, ReasonNoToken},
}

// ErrorReason names, as one of the Reason constants, why a refresh or a
// token request failed: the machine-readable half of err that survives the
// admin API, so that a Remote gives the same errors.Is answers as the
// keeper behind it.
func ErrorReason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	var apiErr *APIError
	var redirect *RedirectError
	switch {
	case errors.As(err, &apiErr), errors.As(err, &redirect):
		return ReasonUpstream
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ReasonTimeout
	}
	return ReasonInternal
}

// reasonError returns the sentinel a reason names, or nil for a reason
// without one (upstream, timeout, internal, or one this version does not
// know).
func reasonError(reason string) error {
	for _, r := range reasons {
		if r.reason == reason {
			return r.err
		}
	}
	return nil
}
