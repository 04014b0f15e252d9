package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tidwall/gjson"
)

// A Client calls WeChat APIs with a token from any TokenSource: the local
// keeper (*Wechat) or a client of a central server. It puts the token in
// the query, turns an errcode ≠ 0 into an *APIError, and when WeChat
// rejects the token (40001, 40014, 42001) asks the source for a passive
// refresh of exactly that token and retries once. Neither the token nor
// any secret appears in an error it returns.
//
// The zero value is not usable: Source is required. A Client is safe for
// concurrent use. Like every upstream client of this package it refuses
// redirects (see RedirectError).
type Client struct {
	Source TokenSource

	// APIBase is the scheme and host of the WeChat API. Default: the
	// source's, when it has a method APIBase() string (the keeper has: its
	// Options.APIBase, so a keeper on a fake WeChat gives a Client on the
	// same fake), and otherwise DefaultAPIBase.
	APIBase string

	// HTTPClient makes the calls (a copy that refuses redirects is used).
	// Default http.DefaultClient; bound calls with ctx.
	HTTPClient *http.Client

	// Upstream, if set, is where the calls go, with its failover (see
	// Upstream); APIBase and HTTPClient are then unused. Default, when
	// APIBase and HTTPClient are unset too: the source's, when it has a
	// method Upstream() *Upstream (the keeper has).
	Upstream *Upstream
}

// upstreamer is a TokenSource that knows where its calls go; *Wechat is
// one.
type upstreamer interface{ Upstream() *Upstream }

// apiBaser is a TokenSource that knows the WeChat API base its tokens
// belong to; *Wechat is one.
type apiBaser interface{ APIBase() string }

// Get calls GET APIBase+path?query&access_token=… and returns the JSON
// body (its Raw field holds the bytes).
func (c *Client) Get(ctx context.Context, path string, query url.Values) (gjson.Result, error) {
	return c.do(ctx, http.MethodGet, path, query, nil)
}

// PostJSON calls POST APIBase+path?access_token=… with body encoded as
// JSON (a []byte or json.RawMessage is sent as is) and returns the JSON
// body of the response.
func (c *Client) PostJSON(ctx context.Context, path string, body any) (gjson.Result, error) {
	var data []byte
	switch b := body.(type) {
	case []byte:
		data = b
	case json.RawMessage:
		data = b
	default:
		var err error
		if data, err = json.Marshal(body); err != nil {
			return gjson.Result{}, fmt.Errorf("wechat: %s: encoding the body: %w", path, err)
		}
	}
	return c.do(ctx, http.MethodPost, path, nil, data)
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte) (gjson.Result, error) {
	if c.Source == nil {
		return gjson.Result{}, errors.New("wechat: Client.Source is nil")
	}
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?#") {
		return gjson.Result{}, fmt.Errorf("wechat: API path %q must start with / and carry no query (pass it separately)", path)
	}
	up, err := c.upstream()
	if err != nil {
		return gjson.Result{}, fmt.Errorf("wechat: %s: %w", path, err)
	}
	tok, err := c.Source.AccessToken(ctx)
	if err != nil {
		return gjson.Result{}, fmt.Errorf("wechat: %s: getting a token: %w", path, err)
	}
	for attempt := 0; ; attempt++ {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("access_token", tok)
		res, err := call(ctx, up, method, path+"?"+q.Encode(), path, body, method == http.MethodGet)
		var apiErr *APIError
		if attempt == 0 && errors.As(err, &apiErr) && isTokenError(apiErr.Code) {
			if tok, err = c.Source.Refresh(ctx, tok); err != nil {
				return gjson.Result{}, fmt.Errorf("wechat: %s: the token was rejected (errcode %d) and the passive refresh failed: %w",
					path, apiErr.Code, err)
			}
			continue
		}
		var t *transientError
		if errors.As(err, &t) {
			err = t.err // retrying is the caller's business here
		}
		return res, err
	}
}

// upstream returns where c's calls go.
func (c *Client) upstream() (*Upstream, error) {
	if c.Upstream != nil {
		return c.Upstream, nil
	}
	if u, ok := c.Source.(upstreamer); ok && c.APIBase == "" && c.HTTPClient == nil {
		return u.Upstream(), nil
	}
	base := c.APIBase
	if b, ok := c.Source.(apiBaser); ok && base == "" {
		base = b.APIBase()
	}
	if base == "" {
		base = DefaultAPIBase
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	return NewUpstream([]string{base}, UpstreamOptions{HTTPClient: hc})
}
