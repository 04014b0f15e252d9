package wechat

import (
	"context"
	"time"

	"github.com/wxcentral/wxcentral/util"
)

// A TokenSource hands out access tokens. Business code depends on this
// interface alone, so the local keeper (*Wechat, built by New) and a client
// of a central server's admin API are interchangeable.
type TokenSource interface {
	// AccessToken returns a token that is valid now.
	AccessToken(ctx context.Context) (string, error)

	// Refresh is the passive refresh: stale is the token WeChat rejected
	// (errcode 40001, 40014 or 42001). If the shared store still holds
	// exactly stale, a new token is fetched; if it already holds another
	// one (someone refreshed meanwhile), that one is returned and nothing
	// is fetched. An empty stale token never forces a fetch.
	Refresh(ctx context.Context, stale string) (string, error)
}

// Clock is util.Clock, kept so existing code compiles: any util.Clock
// (util.SystemClock, a util.ClockFunc, a *wechattest.Server) is one.
type Clock = util.Clock

// shanghai is Beijing time, the zone in which WeChat's daily quotas reset.
// China has kept UTC+8 without daylight saving since 1991, so a fixed zone
// is exact and needs no time zone database.
var shanghai = time.FixedZone("Asia/Shanghai", 8*60*60)

// QuotaDay returns the day, in Beijing time, whose quota a call at t counts
// against, as "2006-01-02".
func QuotaDay(t time.Time) string {
	return t.In(shanghai).Format(time.DateOnly)
}

// NextQuotaDay returns the instant the quota day containing t ends:
// the next 00:00 Beijing time.
func NextQuotaDay(t time.Time) time.Time {
	y, m, d := t.In(shanghai).Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, shanghai)
}
