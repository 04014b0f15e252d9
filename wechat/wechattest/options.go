package wechattest

import (
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// An Option configures a Platform (NewPlatform, NewServer).
type Option func(*Platform)

// WithApp registers an official account. Several apps may be registered;
// registering an appID again replaces its secret.
func WithApp(appID, secret string) Option {
	return func(p *Platform) { p.addApp(appID, secret, KindOfficialAccount) }
}

// WithAppKind registers an app of the given kind ("" means
// KindOfficialAccount); registering an appID again replaces its secret and
// kind.
func WithAppKind(appID, secret string, kind Kind) Option {
	return func(p *Platform) { p.addApp(appID, secret, kind) }
}

// WithMiniTicketCode sets the errcode getticket answers for a Mini Program
// or Mini Game token, which has no jsapi_ticket: 48001 "api
// unauthorized" (the default, as the notes on Mini Programs suggest; the
// live platform's answer is not documented) or 40048 "invalid url domain"
// (what wx.config fails with when JS-SDK is signed with a Mini Program's
// AppID). Any other code is ignored and 48001 stays: the refusal must be
// one of these errors, and 0 would look like a ticket without one.
func WithMiniTicketCode(code int) Option {
	return func(p *Platform) {
		if validMiniTicketCode(code) {
			p.miniTicketCode = code
		}
	}
}

// validMiniTicketCode reports whether WithMiniTicketCode and
// -mini-ticket-errcode accept code.
func validMiniTicketCode(code int) bool { return code == 48001 || code == 40048 }

// WithControlKey requires key on every control-plane request (header
// "Authorization: Bearer KEY" or "X-Fake-Key: KEY"), from any address.
// Without it the control plane answers local programs only: a loopback
// caller, a loopback Host, and no other site's web page behind it.
func WithControlKey(key string) Option {
	return func(p *Platform) { p.controlKey = key }
}

// WithoutControlPlane turns the HTTP control plane under /_fake/ off; its
// paths then get the answer of any unknown path.
func WithoutControlPlane() Option {
	return func(p *Platform) { p.noControl = true }
}

// WithIPWhitelist restricts appID's calls of /cgi-bin/token and
// /cgi-bin/stable_token to callers whose address is one of ips (an address
// such as "127.0.0.1" or a prefix such as "10.0.0.0/8"); the others get
// 40164 naming their IP. Entries that do not parse match no caller. Without
// it any caller is accepted. The app must be registered with WithApp, in any order.
func WithIPWhitelist(appID string, ips ...string) Option {
	return func(p *Platform) {
		p.pending = append(p.pending, func(p *Platform) {
			a := p.apps[appID]
			if a == nil {
				return
			}
			a.whitelist = make([]netip.Prefix, 0, len(ips))
			for _, s := range ips {
				if strings.Contains(s, "/") {
					if pr, err := netip.ParsePrefix(s); err == nil {
						a.whitelist = append(a.whitelist, pr.Masked())
					}
					continue
				}
				if ad, err := netip.ParseAddr(s); err == nil {
					ad = ad.Unmap()
					a.whitelist = append(a.whitelist, netip.PrefixFrom(ad, ad.BitLen()))
				}
			}
		})
	}
}

// WithFrozenSecret starts appID with its AppSecret frozen (40243 from the
// token endpoints); see also Platform.SetFrozen.
func WithFrozenSecret(appID string) Option {
	return func(p *Platform) {
		p.pending = append(p.pending, func(p *Platform) {
			if a := p.apps[appID]; a != nil {
				a.frozen = true
			}
		})
	}
}

// WithClock freezes the platform's clock at start; it then moves only by
// Advance. The default is the real time (which Advance also shifts).
func WithClock(start time.Time) Option {
	return func(p *Platform) { p.frozen, p.start = true, start }
}

// WithTokenLifetime sets how long an access token lives (default 7200 s).
// expires_in reports it in whole seconds, at least 1, so tests should use
// whole seconds. Tickets follow it unless WithTicketLifetime is given.
func WithTokenLifetime(d time.Duration) Option {
	return func(p *Platform) {
		if d > 0 {
			p.lifetime = d
		}
	}
}

// WithTicketLifetime sets how long a jsapi or wx_card ticket lives
// (default: the token lifetime).
func WithTicketLifetime(d time.Duration) Option {
	return func(p *Platform) {
		if d > 0 {
			p.ticketLifetime = d
		}
	}
}

// WithGrace sets how long a superseded token keeps working: a
// /cgi-bin/token token after the next fetch, a stable token after a renewal
// or force refresh (default 300 s). The old token's expiry becomes the
// earlier of its own and now+d, so a grace of 7200 s models "the old token
// keeps its full life", and 0 kills it at once.
func WithGrace(d time.Duration) Option {
	return func(p *Platform) {
		if d >= 0 {
			p.grace = d
		}
	}
}

// WithStableRenewal sets how long before its expiry a stable token is
// renewed by a normal-mode call (default 300 s, or half the token lifetime
// if that is shorter).
func WithStableRenewal(d time.Duration) Option {
	return func(p *Platform) {
		if d >= 0 {
			p.renewal = d
		}
	}
}

// WithStableForceSpacing sets how close together two force_refresh calls
// may be before the second is ignored (it returns the current token, no
// error, and does not count against the 20 a day). Default 30 s.
func WithStableForceSpacing(d time.Duration) Option {
	return func(p *Platform) {
		if d >= 0 {
			p.forceSpacing = d
		}
	}
}

// WithStableMinuteLimit sets the per-app, per-minute limit of
// /cgi-bin/stable_token (default 10 000; n <= 0 removes it). Calls beyond
// it get 45011.
func WithStableMinuteLimit(n int) Option {
	return func(p *Platform) { p.minuteLimit = n }
}

// WithDailyQuota sets the per-app daily limit of endpoint; calls beyond it
// get 45009 until the quota day changes or clear_quota is called. n <= 0
// removes the limit. Defaults: /cgi-bin/token 2000, /cgi-bin/stable_token
// 500 000, QuotaStableForce (force_refresh calls) 20; the published
// examples for menu/create 1000, menu/get 10 000, message/custom/send
// 500 000, user/info 5 000 000 and qrcode/create 100 000; 100 000 for
// getticket, get_api_domain_ip and getcallbackip; other paths have none.
func WithDailyQuota(endpoint string, n int) Option {
	return func(p *Platform) { p.quotas[endpoint] = n }
}

// WithMonthlyClears sets how many clear_quota calls (both versions
// together) an app may make in a calendar month (default 10; then 48006).
func WithMonthlyClears(n int) Option {
	return func(p *Platform) { p.clearLimit = n }
}

// WithClearQuotaKeepsStable makes clear_quota leave the stable_token
// counters alone. By default it resets them like every other count, as the
// documentation says; one community report says the live platform does not.
func WithClearQuotaKeepsStable() Option {
	return func(p *Platform) { p.clearStable = false }
}

// WithClearQuotaKeepsTokens says whether clear_quota leaves the counters
// of the token endpoints (/cgi-bin/token, /cgi-bin/stable_token and its
// force_refresh budget) alone for apps of kind. By default it does for Mini
// Programs and Mini Games, after WeChat staff said the token quota of a
// Mini Program cannot be reset, and resets them for official accounts, as
// the documentation says; neither is confirmed.
func WithClearQuotaKeepsTokens(kind Kind, keep bool) Option {
	return func(p *Platform) { p.clearKeepsTok[kind] = keep }
}

// WithDayLocation sets the zone whose midnight starts a new quota day and
// whose calendar months bound clear_quota (default Asia/Shanghai, UTC+8).
func WithDayLocation(loc *time.Location) Option {
	return func(p *Platform) {
		if loc != nil {
			p.loc = loc
		}
	}
}

// WithExpiredCode sets the errcode for a token past its natural expiry
// (default 42001; one report says the live platform answers 40014).
func WithExpiredCode(code int) Option {
	return func(p *Platform) { p.expiredCode = code }
}

// WithWrongSecretCode sets the errcode for a wrong AppSecret (default 40125,
// as live responses show; older documentation says 40001).
func WithWrongSecretCode(code int) Option {
	return func(p *Platform) { p.badSecretCode = code }
}

// WithWhitelistCode sets the errcode for a caller outside the IP whitelist
// (default 40164, as every live capture shows; the newer guide says 61004).
func WithWhitelistCode(code int) Option {
	return func(p *Platform) { p.whitelistCode = code }
}

// WithTicketFollowsToken makes every new /cgi-bin/token token discard the
// app's tickets, so the next getticket issues new ones. By default tickets
// are independent of tokens, as reports of the live platform say.
func WithTicketFollowsToken() Option {
	return func(p *Platform) { p.ticketFollows = true }
}

// WithoutRID leaves errmsg undecorated. By default errmsg ends in
// " rid: …" as on the live platform, so clients must key on errcode.
func WithoutRID() Option {
	return func(p *Platform) { p.noRID = true }
}

// WithLogger logs one line per credential issued and per injected fault.
// Tokens and secrets are never logged. The default logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(p *Platform) { p.log = l }
}
