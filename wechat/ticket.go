package wechat

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/wxcentral/wxcentral/util"
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
// with its expiry. Tickets are kept like the token, by the same refresh
// protocol and guards (see Wechat): in memory, in the Store, refreshed under
// the Store's lock with adoption of a ticket another process saved, a stale
// one served while one background refresh runs. A getticket answer of
// 40001/40014/42001 makes a passive refresh of the access token and one
// retry.
func (w *Wechat) Ticket(ctx context.Context, kind Kind) (Credential, error) {
	i, err := ticketIndex(kind)
	if err != nil {
		return Credential{}, err
	}
	return w.tickets[i].get(ctx, triggerStale)
}

// JSAPITicket returns a valid jsapi_ticket.
func (w *Wechat) JSAPITicket(ctx context.Context) (Credential, error) {
	return w.Ticket(ctx, KindJSAPITicket)
}

// newTicketRefresher is the refresher of ticket i: getticket with the
// access token, counted on APITicket against TicketDailyBudget.
func (w *Wechat) newTicketRefresher(i int) *refresher {
	typ := ticketType[i]
	return &refresher{w: w, kind: ticketKinds[i], what: "ticket", name: string(ticketKinds[i]), field: "ticket",
		cur: credCache{early: w.opts.RefreshBefore, spread: w.spread(ticketKinds[i])},
		lim: limits{API: APITicket, Calls: "getticket calls", DailyBudget: w.opts.TicketDailyBudget,
			MinInterval: w.opts.MinFetchInterval, HourlyCap: w.opts.MaxFetchesPerHour},
		fetch: func(ctx context.Context, req request) (gjson.Result, string, error) {
			const path = "/cgi-bin/ticket/getticket"
			q := url.Values{"access_token": {req.token}, "type": {typ}}
			res, err := call(ctx, w.up, http.MethodGet, path+"?"+q.Encode(), path, nil, true)
			return res, path, err
		},
		needsToken: true, fetches: &w.stats.tickets,
		retry: retryState{base: w.opts.RetryBackoff}}
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
	if _, err := util.ParseHTTPURL(pageURL); err != nil {
		return JSSDKConfig{}, fmt.Errorf("wechat: JS-SDK config: %q is not an absolute http(s) URL: %v", pageURL, err)
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
