package wechat

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ticketKinds are the tickets a keeper holds, in the order of Wechat.tickets.
var ticketKinds = [...]Kind{KindJSAPITicket, KindCardTicket}

// ticketType is the getticket type parameter of each ticket kind.
var ticketType = [...]string{"jsapi", "wx_card"}

func ticketIndex(k Kind) (int, error) {
	for i, t := range ticketKinds {
		if t == k {
			return i, nil
		}
	}
	return 0, fmt.Errorf("wechat: %q is not a ticket kind (want %q or %q)", k, KindJSAPITicket, KindCardTicket)
}

// Ticket returns a valid ticket of kind (KindJSAPITicket or KindCardTicket)
// with its expiry. Tickets are kept like the token: in memory, in the
// Store, refreshed under the Store's lock with adoption of a ticket another
// process saved. A getticket answer of 40001/40014/42001 makes a passive
// refresh of the access token and one retry.
func (w *Wechat) Ticket(ctx context.Context, kind Kind) (Credential, error) {
	i, err := ticketIndex(kind)
	if err != nil {
		return Credential{}, err
	}
	if h := w.tickets[i].Load(); h != nil {
		now := w.clock.Now()
		if now.Before(h.staleAt) {
			return h.Credential, nil
		}
		if now.Before(h.ExpiresAt) {
			w.inBackground(&w.ticketBusy[i], func(ctx context.Context) {
				_, _ = w.refreshTicket(ctx, i) // logged inside; the next call retries
			})
			return h.Credential, nil
		}
	}
	return w.refreshTicket(ctx, i)
}

// JSAPITicket returns a valid jsapi_ticket.
func (w *Wechat) JSAPITicket(ctx context.Context) (Credential, error) {
	return w.Ticket(ctx, KindJSAPITicket)
}

// refreshTicket refreshes ticket i once per process at a time.
func (w *Wechat) refreshTicket(ctx context.Context, i int) (Credential, error) {
	ch := w.flight.DoChan("ticket:"+string(ticketKinds[i]), func() (any, error) {
		fctx, done, ok := w.startWork(ctx)
		if !ok {
			return Credential{}, ErrClosed
		}
		defer done()
		for attempt := 0; ; attempt++ {
			// The token first, outside the lock: a token refresh takes it too.
			tok, err := w.AccessToken(fctx)
			if err != nil {
				return Credential{}, err
			}
			c, err := w.ticketLocked(fctx, i, tok)
			var apiErr *APIError
			if attempt == 0 && errors.As(err, &apiErr) && isTokenError(apiErr.Code) {
				w.log.Info("wechat: getticket rejected the access token; refreshing it", "errcode", apiErr.Code)
				if _, rerr := w.Refresh(fctx, tok); rerr != nil {
					return Credential{}, fmt.Errorf("%w (and the token refresh failed: %w)", err, rerr)
				}
				continue
			}
			if err != nil {
				w.warnRepeat("ticket:"+string(ticketKinds[i])+":"+errClass(err), "wechat: ticket refresh failed",
					"kind", string(ticketKinds[i]), "err", err)
			} else {
				w.endRepeats("ticket:"+string(ticketKinds[i])+":", "wechat: ticket refreshes succeed again")
			}
			return c, err
		}
	})
	return await(ctx, ch, "ticket")
}

// ticketLocked adopts or fetches ticket i under the Store's lock.
func (w *Wechat) ticketLocked(ctx context.Context, i int, tok string) (Credential, error) {
	kind := ticketKinds[i]
	unlock, err := w.lockStore(ctx)
	if err != nil {
		return Credential{}, fmt.Errorf("wechat: ticket refresh: %w", err)
	}
	defer unlock()
	stored, err := w.store.Load(ctx, kind)
	if err != nil {
		return Credential{}, fmt.Errorf("wechat: ticket refresh: reading the store: %w", err)
	}
	now := w.clock.Now()
	if w.freshAt(stored, now) {
		w.tickets[i].Store(w.hold(stored))
		return stored, nil
	}
	day := QuotaDay(now)
	q := url.Values{"access_token": {tok}, "type": {ticketType[i]}}
	const path = "/cgi-bin/ticket/getticket"
	for attempt := 0; ; attempt++ {
		used, err := w.readCount(ctx, DayCounter(APITicket, now))
		if err != nil {
			return Credential{}, fmt.Errorf("wechat: reading the ticket fetch count: %w", err)
		}
		if used >= w.opts.TicketDailyBudget {
			return Credential{}, fmt.Errorf("%w: %d of %d getticket calls used on %s", ErrQuotaExhausted, used, w.opts.TicketDailyBudget, day)
		}
		if _, err := w.addCount(ctx, DayCounter(APITicket, now), 1); err != nil {
			return Credential{}, fmt.Errorf("wechat: counting the ticket fetch: %w", err)
		}
		res, err := call(ctx, w.opts.HTTPClient, http.MethodGet, w.opts.APIBase+path+"?"+q.Encode(), path, nil)
		if err == nil {
			c, clamped, err := parseCredential(res, "ticket", path, w.clock.Now())
			if err != nil {
				w.stats.tickets[fetchError].Add(1)
				return Credential{}, err
			}
			w.noteLife(path, c, clamped)
			w.stats.tickets[fetchOK].Add(1)
			c, _, serr := w.saveOrAdopt(ctx, kind, c, now)
			if serr != nil {
				w.log.Error("wechat: cannot save the new ticket", "kind", string(kind), "err", serr)
			}
			w.tickets[i].Store(w.hold(c))
			return c, nil
		}
		if isTransient(err) && attempt+1 < w.opts.MaxAttempts {
			w.stats.tickets[fetchRetry].Add(1)
			if serr := w.sleep(ctx, backoff(w.opts.RetryBackoff, attempt)); serr != nil {
				return Credential{}, fmt.Errorf("%w (gave up retrying: %w)", err, serr)
			}
			continue
		}
		w.stats.tickets[fetchError].Add(1)
		return Credential{}, err
	}
}

// JSSDKConfig is what a page passes to wx.config, signed for one page URL.
type JSSDKConfig struct {
	AppID     string `json:"appId"`
	Timestamp int64  `json:"timestamp"`
	NonceStr  string `json:"nonceStr"`
	Signature string `json:"signature"`
	URL       string `json:"url"` // the URL signed: the page URL without its #fragment
}

// JSSDKConfig signs a JS-SDK configuration for pageURL (the full URL of
// the page, as the browser shows it; a #fragment is ignored) with the
// current jsapi_ticket, a fresh random nonce and the current time.
func (w *Wechat) JSSDKConfig(ctx context.Context, pageURL string) (JSSDKConfig, error) {
	u, err := url.Parse(pageURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return JSSDKConfig{}, fmt.Errorf("wechat: JS-SDK config: %q is not an absolute http(s) URL", pageURL)
	}
	t, err := w.JSAPITicket(ctx)
	if err != nil {
		return JSSDKConfig{}, fmt.Errorf("wechat: JS-SDK config: %w", err)
	}
	pageURL, _, _ = strings.Cut(pageURL, "#")
	cfg := JSSDKConfig{
		AppID:     w.opts.AppID,
		Timestamp: w.clock.Now().Unix(),
		NonceStr:  rand.Text(),
		URL:       pageURL,
	}
	cfg.Signature = JSSDKSignature(t.Value, cfg.NonceStr, cfg.Timestamp, pageURL)
	return cfg, nil
}

// JSSDKSignature returns the JS-SDK signature: the hex sha1 of
// "jsapi_ticket=T&noncestr=N&timestamp=S&url=U", with the page URL's
// #fragment removed and nothing escaped.
func JSSDKSignature(ticket, nonceStr string, timestamp int64, pageURL string) string {
	pageURL, _, _ = strings.Cut(pageURL, "#")
	h := sha1.New()
	for _, s := range [...]string{"jsapi_ticket=", ticket, "&noncestr=", nonceStr,
		"&timestamp=", strconv.FormatInt(timestamp, 10), "&url=", pageURL} {
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}
