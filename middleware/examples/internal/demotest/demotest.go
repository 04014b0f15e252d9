// Package demotest checks an example's server as WeChat would: with the
// callback client `wxcentral simulate` runs (package wechattest), over
// real HTTP.
package demotest

import (
	"context"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The account the tests play: its callback token, and for safe mode its
// AppID and EncodingAESKey (43 characters).
const (
	Token  = "example-token"
	AppID  = "wx5823bf96d3bd56c7"
	AESKey = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
)

// A Mode is how the account's messages travel.
type Mode struct {
	Name    string
	Options []middleware.Option // for Verify
	AESKey  string              // for the callback client; "" in plain mode
	AppID   string
}

// Modes are plain mode (明文模式) and safe mode (安全模式).
var Modes = []Mode{
	{Name: "plain"},
	{Name: "safe", Options: []middleware.Option{middleware.WithAES(AppID, AESKey)}, AESKey: AESKey, AppID: AppID},
}

// Quiet is the option that keeps Verify's logs out of the test output.
func Quiet() middleware.Option {
	return middleware.WithLogger(slog.New(slog.DiscardHandler))
}

// Simulate runs what `wxcentral simulate -url url -token Token -message
// hello` runs, in mode, and fails t unless every step passes and the
// reply is the text "you said: hello".
func Simulate(t testing.TB, url string, mode Mode) {
	t.Helper()
	var out strings.Builder
	ok := wechattest.Simulate(context.Background(), &out, wechattest.SimulateConfig{
		URL: url, Token: Token, Message: "hello", AESKey: mode.AESKey, AppID: mode.AppID, Deliveries: 1,
	})
	if !ok {
		t.Fatalf("simulate failed:\n%s", out.String())
	}
	if want := `text reply "you said: hello"`; !strings.Contains(out.String(), want) {
		t.Errorf("simulate passed, but its output does not show %s:\n%s", want, out.String())
	}
	if mode.AESKey != "" && !strings.Contains(out.String(), "the reply was encrypted") {
		t.Errorf("simulate in safe mode, but the reply was not encrypted:\n%s", out.String())
	}
}

// A Reply is a passive text reply.
type Reply struct {
	ToUserName   string
	FromUserName string
	MsgType      string
	Content      string
}

// Converse makes the URL check and sends text to url as the callback
// client does (in safe mode sealed, and the reply opened), and returns the
// text reply, after checking it is addressed back to the sender.
func Converse(t testing.TB, url string, mode Mode, text string) Reply {
	t.Helper()
	cb := &wechattest.Callback{URL: url, Token: Token, Deliveries: 1}
	if mode.AESKey != "" {
		s, err := wechattest.NewAESSealer(Token, mode.AppID, mode.AESKey)
		if err != nil {
			t.Fatal(err)
		}
		cb.Sealer = s
	}
	ctx := context.Background()
	if err := cb.Verify(ctx); err != nil {
		t.Fatalf("URL check: %v", err)
	}
	msg := wechattest.TextMessage(text)
	msg.FromUserName, msg.ToUserName = "o-sender", "gh_account"
	body, err := cb.Send(ctx, msg)
	if err != nil {
		t.Fatalf("send %q: %v", text, err)
	}
	var r Reply
	if err := xml.Unmarshal(body, &r); err != nil {
		t.Fatalf("reply %q: %v", body, err)
	}
	if r.ToUserName != "o-sender" || r.FromUserName != "gh_account" {
		t.Errorf("reply To %q From %q, want To o-sender From gh_account (swapped)", r.ToUserName, r.FromUserName)
	}
	if r.MsgType != "text" {
		t.Errorf("reply MsgType %q, want text", r.MsgType)
	}
	return r
}

// Push is one delivery of a plain-mode text push, signed with Token at
// now: WeChat re-sends a push as the same request, so posting it twice
// is a re-delivery.
type Push struct {
	URL  string // the callback URL with the signed query
	Body string
}

// NewPush returns the push of text with msgID, to the callback at url.
func NewPush(url string, now time.Time, msgID int64, text string) Push {
	ts := strconv.FormatInt(now.Unix(), 10)
	const nonce = "1405726145"
	msg := wechattest.Message{
		ToUserName: "gh_account", FromUserName: "o-sender", CreateTime: now.Unix(),
		MsgType: "text", Content: text, MsgID: msgID,
	}
	return Push{
		URL:  url + "?signature=" + util.Signature(Token, ts, nonce) + "&timestamp=" + ts + "&nonce=" + nonce + "&openid=o-sender",
		Body: string(msg.XML()),
	}
}

// Deliver posts p once and returns the status and body of the answer.
func (p Push) Deliver(t testing.TB) (int, string) {
	t.Helper()
	resp, err := http.Post(p.URL, "text/xml", strings.NewReader(p.Body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b.String()
}

// Get fetches url and returns the status and body.
func Get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b.String()
}

// Conversation runs, for every mode, what WeChat does to an example
// mounted at path on the server start returns: `wxcentral simulate`'s
// URL check and push, then a text push that must get "you said: …" back
// (encrypted in safe mode).
func Conversation(t *testing.T, path string, start func(t *testing.T, mode Mode) string) {
	for _, mode := range Modes {
		t.Run(mode.Name, func(t *testing.T) {
			base := start(t, mode)
			Simulate(t, base+path, mode)
			if r := Converse(t, base+path, mode, "hello"); r.Content != "you said: hello" {
				t.Errorf("reply %q, want %q", r.Content, "you said: hello")
			}
		})
	}
}

// OnlyCallbackGuarded checks that the server at base guards the callback
// at path alone: /healthz answers without a signature, path does not.
func OnlyCallbackGuarded(t *testing.T, base, path string) {
	t.Helper()
	if code, body := Get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz: %d %q, want 200 \"ok\\n\"", code, body)
	}
	if code, _ := Get(t, base+path+"?echostr=x"); code != http.StatusBadRequest {
		t.Errorf("GET %s without a signature: %d, want 400 from Verify", path, code)
	}
}
