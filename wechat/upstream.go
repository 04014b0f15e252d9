package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// maxBody bounds what is read of one upstream response.
const maxBody = 1 << 20

// RedactError returns err with the query string of any URL it carries
// removed: Go's *url.Error prints the whole URL, and WeChat URLs carry the
// AppSecret or the access_token in their query. Every error that crosses an
// upstream call in this package passes through it. errors.Is and errors.As
// keep working on the result (timeouts stay timeouts).
func RedactError(err error) error {
	var ue *url.Error
	if err == nil || !errors.As(err, &ue) {
		return err
	}
	return &url.Error{Op: ue.Op, URL: RedactURL(ue.URL), Err: RedactError(ue.Err)}
}

// RedactURL returns u without its query string and fragment, or a
// placeholder if u does not parse.
func RedactURL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i] + "?[redacted]"
	}
	return u
}

// errTransient marks an upstream failure worth retrying.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

func transient(err error) error { return &transientError{err} }

func isTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

// call makes one HTTP request and returns the JSON body. api is the path
// (for messages, never with the query). A non-nil error is redacted; it is
// transient (worth a retry) for network errors, timeouts, HTTP 5xx and
// errcode -1/-1000, and an *APIError for any other errcode ≠ 0.
func call(ctx context.Context, hc *http.Client, method, rawURL, api string, body []byte) (gjson.Result, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return gjson.Result{}, fmt.Errorf("wechat: %s: %w", api, RedactError(err))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		err = fmt.Errorf("wechat: %s: %w", api, RedactError(err))
		if ctx.Err() != nil {
			return gjson.Result{}, err // the caller gave up: no retry
		}
		return gjson.Result{}, transient(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return gjson.Result{}, transient(fmt.Errorf("wechat: %s: reading the response: %w", api, RedactError(err)))
	}
	if resp.StatusCode >= 500 {
		return gjson.Result{}, transient(fmt.Errorf("wechat: %s: HTTP %s from WeChat", api, resp.Status))
	}
	if resp.StatusCode != http.StatusOK {
		return gjson.Result{}, fmt.Errorf("wechat: %s: unexpected HTTP %s (is APIBase right?)", api, resp.Status)
	}
	if !gjson.ValidBytes(data) || !gjson.ParseBytes(data).IsObject() {
		return gjson.Result{}, fmt.Errorf("wechat: %s: the response is not a JSON object (Content-Type %q, starts with %q): is APIBase right, or a proxy in the way?",
			api, resp.Header.Get("Content-Type"), snippet(data))
	}
	res := gjson.ParseBytes(data)
	if code := res.Get("errcode").Int(); code != 0 {
		apiErr := &APIError{Code: int(code), Msg: res.Get("errmsg").String(), API: api}
		if code == -1 || code == -1000 {
			return res, transient(apiErr)
		}
		return res, apiErr
	}
	return res, nil
}

// snippet returns the start of a body for an error message.
func snippet(b []byte) string {
	const n = 48
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// backoff returns the delay before retry number i (0-based): full jitter
// over base·2^i, at most 16·base.
func backoff(base time.Duration, i int) time.Duration {
	d := base << min(i, 4)
	return d/2 + rand.N(d/2+1)
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tokenRequest builds the request for the configured token endpoint.
func (w *Wechat) tokenRequest(force bool) (method, rawURL, api string, body []byte) {
	if w.opts.TokenAPI == TokenAPIStable {
		body, _ = json.Marshal(struct {
			GrantType    string `json:"grant_type"`
			AppID        string `json:"appid"`
			Secret       string `json:"secret"`
			ForceRefresh bool   `json:"force_refresh"`
		}{"client_credential", w.opts.AppID, w.opts.AppSecret, force})
		return http.MethodPost, w.opts.APIBase + "/cgi-bin/stable_token", "/cgi-bin/stable_token", body
	}
	q := url.Values{"grant_type": {"client_credential"}, "appid": {w.opts.AppID}, "secret": {w.opts.AppSecret}}
	return http.MethodGet, w.opts.APIBase + "/cgi-bin/token?" + q.Encode(), "/cgi-bin/token", nil
}

// parseCredential reads {"<field>":"…","expires_in":N} fetched at now.
func parseCredential(res gjson.Result, field, api string, now time.Time) (Credential, error) {
	v, exp := res.Get(field), res.Get("expires_in")
	if v.Type != gjson.String || v.Str == "" || exp.Type != gjson.Number || exp.Int() <= 0 {
		return Credential{}, fmt.Errorf("wechat: %s: the response lacks %s or a positive expires_in", api, field)
	}
	now = now.Truncate(time.Millisecond)
	return Credential{
		Value:     v.Str,
		FetchedAt: now,
		ExpiresAt: now.Add(time.Duration(exp.Int()) * time.Second),
	}, nil
}
