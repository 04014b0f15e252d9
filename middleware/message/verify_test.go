package message_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The key, AppID and token of the official vector N (wechat-platform.md
// §10.1).
const (
	vnToken = "AAAAA"
	vnKey   = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	vnAppID = "wxba5fad812f8e6fb9"
)

// TestRepliesThroughVerify sends a push through middleware.Verify and a
// Router over HTTP for every reply type, in plain mode and in safe mode
// (XML and JSON pushes in each), and reads each reply as WeChat does: the
// encrypted ones checked and decrypted with vector N's token and key, and
// CreateTime from the middleware's clock.
func TestRepliesThroughVerify(t *testing.T) {
	at := time.Unix(1714112446, 0)
	clock := util.ClockFunc(func() time.Time { return at })
	wx, err := wechattest.NewAESSealer(vnToken, vnAppID, vnKey) // plays WeChat in safe mode
	if err != nil {
		t.Fatal(err)
	}
	names, replies, checks := message.ReplyCases()
	var current message.Reply
	var rt message.Router
	rt.HandleDefaultFunc(func(context.Context, *message.Message) (message.Reply, error) { return current, nil })

	plain := httptest.NewServer(middleware.Verify(vnToken, middleware.WithClock(clock), middleware.WithDedupe(nil))(&rt))
	defer plain.Close()
	safe := httptest.NewServer(middleware.Verify(vnToken, middleware.WithClock(clock), middleware.WithDedupe(nil),
		middleware.WithAES(vnAppID, vnKey))(&rt))
	defer safe.Close()

	ts := strconv.FormatInt(at.Unix(), 10)
	n := 0
	for _, mode := range []string{"plain-xml", "plain-json", "safe-xml", "safe-json"} {
		asJSON := strings.HasSuffix(mode, "json")
		safeMode := strings.HasPrefix(mode, "safe")
		for i, name := range names {
			t.Run(mode+"/"+name, func(t *testing.T) {
				n++
				current = replies[i]
				nonce := "n" + strconv.Itoa(n)
				push := `<xml><ToUserName><![CDATA[gh_acct]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName>` +
					`<CreateTime>1714112445</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>` + strconv.Itoa(n) + `</MsgId></xml>`
				if asJSON {
					push = `{"ToUserName":"gh_acct","FromUserName":"oUser","CreateTime":1714112445,"MsgType":"text","Content":"hi","MsgId":` + strconv.Itoa(n) + `}`
				}
				q := url.Values{"signature": {util.Signature(vnToken, ts, nonce)}, "timestamp": {ts}, "nonce": {nonce}, "openid": {"oUser"}}
				base, body := plain.URL, push
				if safeMode {
					sealed, msgSig, err := wx.Seal([]byte(push), ts, nonce)
					if err != nil {
						t.Fatal(err)
					}
					q.Set("encrypt_type", "aes")
					q.Set("msg_signature", msgSig)
					base, body = safe.URL, string(sealed)
				}
				resp, err := http.Post(base+"/?"+q.Encode(), "text/xml", strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", resp.StatusCode, got)
				}
				if safeMode {
					// Checked and decrypted as WeChat does.
					if got, err = wx.Open(got); err != nil {
						t.Fatalf("the encrypted reply: %v", err)
					}
				}
				checks[i](t, message.CheckReply(t, got, asJSON, at))
			})
		}
	}
}
