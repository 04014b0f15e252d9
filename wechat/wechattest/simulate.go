package wechattest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// SimulateConfig says what Simulate talks to.
type SimulateConfig struct {
	URL     string // the developer's callback URL
	Token   string // the callback Token
	Message string // the text a user sends; "" means "hello from wxcentral"

	HTTPClient *http.Client  // nil means http.DefaultClient
	Timeout    time.Duration // per request; 0 means 5 s, as WeChat
	Deliveries int           // 0 means 3; 1 reports a slow server at once
	Sealer     Sealer        // safe mode; nil means plain mode
}

// Simulate does to cfg.URL what WeChat does: the check made when you press
// 提交 (Submit) on the server configuration page, then a user sending a text
// message. It writes one line per step to out, "PASS <step>: …" or
// "FAIL <step>: <reason>", with a hint at the likely cause, and reports
// whether every step passed. It is the logic of `wxcentral simulate`.
func Simulate(ctx context.Context, out io.Writer, cfg SimulateConfig) bool {
	cb := &Callback{
		URL:        cfg.URL,
		Token:      cfg.Token,
		HTTPClient: cfg.HTTPClient,
		Timeout:    cfg.Timeout,
		Deliveries: cfg.Deliveries,
		Sealer:     cfg.Sealer,
	}
	ok := true
	if err := cb.Verify(ctx); err != nil {
		fmt.Fprintf(out, "FAIL check: %v%s\n", err, hint(err, cfg, true))
		ok = false
	} else {
		fmt.Fprintf(out, "PASS check: %s answered the signed GET with its echostr\n", cfg.URL)
	}
	text := cfg.Message
	if text == "" {
		text = "hello from wxcentral"
	}
	reply, err := cb.Send(ctx, TextMessage(text))
	switch {
	case err != nil:
		fmt.Fprintf(out, "FAIL message: %v%s\n", err, hint(err, cfg, false))
		ok = false
	case isNoReply(reply):
		fmt.Fprintf(out, "PASS message: %q delivered, answered %q (no reply to the user)\n", text, reply)
	default:
		fmt.Fprintf(out, "PASS message: %q delivered, reply: %s\n", text, excerpt(reply))
	}
	return ok
}

// hint suggests the likely cause of err.
func hint(err error, cfg SimulateConfig, check bool) string {
	var he *HTTPError
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultCallbackTimeout
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return " — is the server running and listening at " + cfg.URL + "?"
	case errors.Is(err, ErrNoAnswer):
		return fmt.Sprintf(" — WeChat gives up after %v; answer sooner (reply \"success\" and work in the background)", timeout)
	case errors.As(err, &he) && he.StatusCode == http.StatusNotFound:
		return " — is the path right? It must be the callback path the server serves (WECHAT_CALLBACK_PATH)"
	case errors.As(err, &he) && (he.StatusCode == http.StatusUnauthorized || he.StatusCode == http.StatusForbidden ||
		he.StatusCode == http.StatusBadRequest || strings.Contains(strings.ToLower(he.Body), "signature")):
		return " — is the token the same on both sides?"
	case errors.As(err, &he) && he.StatusCode == http.StatusMethodNotAllowed:
		if check {
			return " — the server must answer GET at this URL"
		}
		return " — the server must accept POST at this URL"
	case check && !errors.As(err, &he):
		return " — the server must answer with the echostr, unchanged; is the token the same on both sides?"
	}
	return ""
}
