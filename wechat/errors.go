package wechat

import (
	"errors"
	"fmt"
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
)

// An APIError is an error WeChat reported in a response body
// ({"errcode":N,"errmsg":"…"}). Use errors.As to get at the code.
type APIError struct {
	Code int    // errcode
	Msg  string // errmsg as WeChat sent it
	API  string // the path called, e.g. "/cgi-bin/token"; never a query
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("wechat: %s: errcode %d: %s", e.API, e.Code, e.Msg)
	if h := Hint(e.Code); h != "" {
		s += " (" + h + ")"
	}
	return s
}

// Hint says, for the errcodes a person has to act on, what to do.
// It returns "" for the others.
func Hint(code int) string {
	switch code {
	case 40001:
		return "the token was superseded by a newer fetch, or the AppSecret is wrong"
	case 40002:
		return "grant_type must be client_credential"
	case 40013:
		return "the AppID is wrong: check WECHAT_APP_ID"
	case 40125:
		return "the AppSecret is wrong: check WECHAT_APP_SECRET, or reset it on the official account platform"
	case 40164:
		return "this server's IP is not in the API IP whitelist: add the IP named in the message on the official account platform"
	case 40243:
		return "the AppSecret is frozen: unfreeze or reset it on the official account platform"
	case 41002:
		return "the AppID is missing: set WECHAT_APP_ID"
	case 41004:
		return "the AppSecret is missing: set WECHAT_APP_SECRET"
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
