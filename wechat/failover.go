package wechat

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wxcentral/wxcentral/util"
)

// DefaultFailoverBase is WeChat's disaster-recovery API host (通用异地容灾域名),
// which its documentation says to use when DefaultAPIBase cannot be reached.
const DefaultFailoverBase = "https://api2.weixin.qq.com"

// DefaultStickyFor is how long an Upstream keeps using a fallback base
// before it tries the primary again (UpstreamOptions.StickyFor).
const DefaultStickyFor = time.Minute

// An Upstream is where the calls to WeChat go: an ordered list of API
// bases (the primary first, e.g. DefaultAPIBase then DefaultFailoverBase)
// and the HTTP client that sends to them. One Upstream is meant to be
// shared by every keeper and the gateway of a server, so that they all
// move to a fallback base together and come back together.
//
// Do fails over by these rules, which keep a call from running twice at
// WeChat:
//
//   - A call that failed before its request was written (DNS, connect,
//     TLS: the transport never sent its headers) moves to the next base, for
//     any method.
//   - A call that may have reached WeChat (a timeout or a reset after the
//     request was written, an HTTP 5xx from a front proxy) moves to the
//     next base only if the caller says it is idempotent. Otherwise Do
//     returns the failure (or the 5xx answer), and later calls go to the
//     next base.
//   - In-band errors (WeChat's errcode in an HTTP 200) never fail over.
//
// A switch is sticky: the base that answered is used for StickyFor, then
// the next call tries the primary again (that call is the probe: if the
// primary answers, everyone is back on it).
//
// An Upstream is safe for concurrent use. Its zero value is not usable:
// build one with NewUpstream.
type Upstream struct {
	bases  []string
	hc     *http.Client
	clock  util.Clock
	sticky time.Duration
	log    *slog.Logger
	state  *switchState // shared with the Upstreams of WithClient
}

// switchState is which base an Upstream uses.
type switchState struct {
	mu    sync.Mutex
	cur   int       // index of the base in use
	since time.Time // when cur was chosen, if cur != 0
}

// UpstreamOptions configure NewUpstream. The zero value is usable.
type UpstreamOptions struct {
	// HTTPClient sends the calls. It never follows a redirect (a copy is
	// made that refuses them, see RedirectError). Default: one client for
	// the whole process with a 10 s timeout and 5 s connect and TLS
	// timeouts.
	HTTPClient *http.Client
	// StickyFor is how long a fallback base stays in use before the
	// primary is tried again. Default DefaultStickyFor.
	StickyFor time.Duration
	// Clock tells the time of the sticky switch. Default: the system clock.
	Clock util.Clock
	// Logger receives a line when the base in use changes. Default: none.
	Logger *slog.Logger
}

// NewUpstream returns the Upstream of bases, in order of preference (the
// first is the primary). Each must be an http(s) URL with a host and no
// user, query or fragment; a trailing slash is dropped. With no bases it
// is DefaultAPIBase alone.
func NewUpstream(bases []string, o UpstreamOptions) (*Upstream, error) {
	if len(bases) == 0 {
		bases = []string{DefaultAPIBase}
	}
	u := &Upstream{hc: upstreamClient(o.HTTPClient), clock: o.Clock, sticky: o.StickyFor, log: o.Logger, state: &switchState{}}
	var errs []error
	seen := map[string]bool{}
	for _, b := range bases {
		b = strings.TrimRight(strings.TrimSpace(b), "/")
		if _, err := util.ParseHTTPBase(b); err != nil {
			errs = append(errs, fmt.Errorf("API base %q is not an http(s) URL with a host and no user, query or fragment: %v", redactBase(b), err))
			continue
		}
		if seen[b] {
			errs = append(errs, fmt.Errorf("API base %q is listed twice", b))
			continue
		}
		seen[b] = true
		u.bases = append(u.bases, b)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("wechat: upstream: %w", errors.Join(errs...))
	}
	if u.clock == nil {
		u.clock = util.SystemClock{}
	}
	if u.sticky <= 0 {
		u.sticky = DefaultStickyFor
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	return u, nil
}

// Bases returns the API bases in order of preference.
func (u *Upstream) Bases() []string { return append([]string(nil), u.bases...) }

// Base returns the API base the next call goes to first.
func (u *Upstream) Base() string { return u.bases[u.start()] }

// HTTPClient returns the client that sends the calls (it refuses
// redirects).
func (u *Upstream) HTTPClient() *http.Client { return u.hc }

// WithClient returns an Upstream of the same bases that sends with hc (a
// copy that refuses redirects) and shares u's switch: a failover seen by
// either moves both. The gateway streams large downloads with a client
// that has no overall timeout, on the keepers' switch.
func (u *Upstream) WithClient(hc *http.Client) *Upstream {
	v := *u
	v.hc = upstreamClient(hc)
	return &v
}

// start returns the index of the base to try first: the one in use, or
// the primary once the fallback has been in use for the sticky time.
func (u *Upstream) start() int {
	if len(u.bases) == 1 {
		return 0
	}
	st := u.state
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cur != 0 && u.clock.Now().Sub(st.since) >= u.sticky {
		return 0 // probe the primary
	}
	return st.cur
}

// settle records that base i answered (or, with failed, that it failed
// and next is to be used).
func (u *Upstream) settle(i int) {
	if len(u.bases) == 1 {
		return
	}
	st := u.state
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cur == i {
		if i != 0 && u.clock.Now().Sub(st.since) >= u.sticky {
			st.since = u.clock.Now() // the primary was probed and failed again
		}
		return
	}
	from := u.bases[st.cur]
	st.cur, st.since = i, u.clock.Now()
	if i == 0 {
		u.log.Info("wechat: upstream: back on the primary API base", "base", u.bases[0], "from", from)
	} else {
		u.log.Warn("wechat: upstream: switched to a fallback API base", "base", u.bases[i], "from", from,
			"for", u.sticky.String())
	}
}

// errSent marks a failed call that may have reached WeChat: its request
// was written before it failed (a timeout, a reset, an HTTP 5xx), so
// WeChat may have acted on it.
var errSent = errors.New("the request may have reached WeChat")

// maySent reports whether err says a call may have reached WeChat.
func maySent(err error) bool { return errors.Is(err, errSent) }

// sentError is a failure after the request was written.
type sentError struct{ err error }

func (e *sentError) Error() string   { return e.err.Error() }
func (e *sentError) Unwrap() []error { return []error{e.err, errSent} }

// Do sends req to the base in use, failing over as the Upstream's rules
// say (idempotent: the call may be repeated at another base after it
// may have reached WeChat). req.URL names the path and query only (or an
// absolute URL whose scheme and host are replaced); its body, if any,
// must be replayable through req.GetBody for a failover (http.NewRequest
// sets it for a bytes.Reader): without it, a failed call is not repeated.
//
// An HTTP 5xx answer is returned as the response when no other base is
// tried; a redirect is a *RedirectError. Errors are redacted (no query),
// and errors.Is(err, context.Canceled) and the like keep working.
func (u *Upstream) Do(req *http.Request, idempotent bool) (*http.Response, error) {
	ctx := req.Context()
	first := u.start()
	var lastErr error
	for n := range len(u.bases) {
		i := (first + n) % len(u.bases)
		more := n+1 < len(u.bases) && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil)
		out, err := u.outgoing(req, u.bases[i], n > 0)
		if err != nil {
			return nil, err
		}
		var wrote atomic.Bool
		out = out.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteHeaders: func() { wrote.Store(true) },
		}))
		resp, err := u.hc.Do(out)
		switch {
		case err == nil && resp.StatusCode < 500:
			u.settle(i)
			return resp, nil
		case err == nil: // a 5xx: the request reached a front at least
			if !more || !idempotent {
				u.settle((i + 1) % len(u.bases))
				return resp, nil
			}
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			lastErr = &sentError{fmt.Errorf("HTTP %s from %s", resp.Status, hostOf(u.bases[i]))}
		default:
			if re := (*RedirectError)(nil); errors.As(err, &re) || ctx.Err() != nil {
				return nil, redactError(err)
			}
			err = redactError(err)
			sent := wrote.Load()
			if sent {
				err = &sentError{err}
			}
			u.settle((i + 1) % len(u.bases))
			if !more || (sent && !idempotent) {
				return nil, err
			}
			lastErr = err
		}
		u.log.Warn("wechat: upstream: a call failed; trying the next API base", "api", req.URL.Path,
			"failed", hostOf(u.bases[i]), "next", hostOf(u.bases[(i+1)%len(u.bases)]), "err", lastErr)
	}
	return nil, lastErr
}

// outgoing returns req aimed at base, with a fresh body for a repeat.
func (u *Upstream) outgoing(req *http.Request, base string, repeat bool) (*http.Request, error) {
	out := req.Clone(req.Context())
	target := base + req.URL.EscapedPath()
	if req.URL.RawQuery != "" {
		target += "?" + req.URL.RawQuery
	}
	nu, err := req.URL.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("wechat: upstream: %s: %w", req.URL.Path, redactError(err))
	}
	out.URL, out.Host = nu, ""
	if repeat && req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		if out.Body, err = req.GetBody(); err != nil {
			return nil, fmt.Errorf("wechat: upstream: %s: replaying the body: %w", req.URL.Path, err)
		}
	}
	return out, nil
}

// redactBase returns an API base for an error: without its query, and
// with the password of a user in it masked.
func redactBase(b string) string {
	if u, err := url.Parse(b); err == nil && u.User != nil {
		b = u.Redacted()
	}
	return redactURL(b)
}

// hostOf returns the host of an API base, for log lines.
func hostOf(base string) string {
	_, h, _ := strings.Cut(base, "://")
	return h
}

// upstreamOf returns the keeper's upstream: o.Upstream, or one of
// o.APIBase alone sent with o.HTTPClient.
func upstreamOf(o Options) (*Upstream, error) {
	if o.Upstream != nil {
		return o.Upstream, nil
	}
	return NewUpstream([]string{o.APIBase}, UpstreamOptions{HTTPClient: o.HTTPClient, Clock: o.Clock, Logger: o.Logger})
}
