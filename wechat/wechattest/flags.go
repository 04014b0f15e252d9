package wechattest

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Flags are the settings of the fake-wechat command, each one an Option.
// NewFlags registers them on a flag.FlagSet; after parsing, Options turns
// them into the Platform's options.
type Flags struct {
	Listen         string        // -listen: the address to serve on
	Apps           Apps          // -app ID:SECRET[:KIND], repeatable
	Lifetime       time.Duration // -lifetime: WithTokenLifetime
	Grace          time.Duration // -grace: WithGrace
	Quota          int           // -quota: WithDailyQuota(PathToken, …)
	Clock          string        // -clock: WithClock at this RFC 3339 time; "" is real time
	ControlKey     string        // -control-key: WithControlKey
	MiniTicketCode int           // -mini-ticket-errcode: WithMiniTicketCode

	errs []error // bad -app values, reported by Options
}

// appFlag is -app. It keeps a bad value's error for Options instead of
// failing the parse, because package flag would print the value, secret
// and all, in its message.
type appFlag struct{ f *Flags }

func (a appFlag) String() string {
	if a.f == nil {
		return ""
	}
	return a.f.Apps.String()
}

func (a appFlag) Set(s string) error {
	app, err := ParseApp(s)
	if err != nil {
		a.f.errs = append(a.f.errs, fmt.Errorf("-app %w", err))
		return nil
	}
	a.f.Apps = append(a.f.Apps, app)
	return nil
}

// NewFlags registers the fake-wechat flags on fs, with defaults as on the
// live platform, and returns where they land.
func NewFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Listen, "listen", "127.0.0.1:3200", "the address to serve the fake API and its control plane (/_fake/) on")
	fs.Var(appFlag{f}, "app", "register an app, ID:SECRET[:KIND], KIND official_account (default), mini_program or mini_game (repeatable)")
	fs.DurationVar(&f.Lifetime, "lifetime", defaultLifetime, "how long an access token (and a ticket) lives")
	fs.DurationVar(&f.Grace, "grace", defaultGrace, "how long a superseded token keeps working after the next fetch")
	fs.IntVar(&f.Quota, "quota", 2000, "daily /cgi-bin/token calls per app (0: no limit), then 45009")
	fs.StringVar(&f.Clock, "clock", "", "start the clock frozen at this RFC 3339 time (e.g. 2026-11-21T10:00:00+08:00); it then moves only by POST /_fake/advance or /_fake/clock (default: real time)")
	fs.StringVar(&f.ControlKey, "control-key", "", "require this key on the control plane (Authorization: Bearer KEY or X-Fake-Key) and accept it from any address; without it, local programs only (loopback caller and Host, no other site's web page)")
	fs.IntVar(&f.MiniTicketCode, "mini-ticket-errcode", 48001, "errcode of getticket for a Mini Program or Mini Game: 48001 or 40048")
	return f
}

// Options returns the Platform options the flags ask for; defaults become
// f.Apps when no -app was given. The error names the flag at fault.
func (f *Flags) Options(defaults ...App) ([]Option, error) {
	errs := append([]error(nil), f.errs...)
	if f.Lifetime < time.Second {
		errs = append(errs, fmt.Errorf("-lifetime %v: want at least 1s", f.Lifetime))
	}
	if f.Grace < 0 {
		errs = append(errs, fmt.Errorf("-grace %v: want 0 or more", f.Grace))
	}
	if f.Quota < 0 {
		errs = append(errs, fmt.Errorf("-quota %d: want 0 (no limit) or more", f.Quota))
	}
	if !validMiniTicketCode(f.MiniTicketCode) {
		errs = append(errs, fmt.Errorf("-mini-ticket-errcode %d: want 48001 (api unauthorized) or 40048 (invalid url domain)", f.MiniTicketCode))
	}
	var opts []Option
	if f.Clock != "" {
		t, err := time.Parse(time.RFC3339Nano, f.Clock)
		if err != nil {
			errs = append(errs, fmt.Errorf("-clock %q: want an RFC 3339 time such as 2026-11-21T10:00:00+08:00", f.Clock))
		}
		opts = append(opts, WithClock(t))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(f.Apps) == 0 {
		f.Apps = append(Apps(nil), defaults...)
	}
	opts = append(opts, f.Apps.Options()...)
	opts = append(opts, WithTokenLifetime(f.Lifetime), WithGrace(f.Grace), WithDailyQuota(PathToken, f.Quota),
		WithMiniTicketCode(f.MiniTicketCode))
	if f.ControlKey != "" {
		opts = append(opts, WithControlKey(f.ControlKey))
	}
	return opts, nil
}
