package message_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
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
	"github.com/wxcentral/wxcentral/middleware/msgcrypt"
	"github.com/wxcentral/wxcentral/util"
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
// (XML and JSON envelopes), and reads each reply as WeChat does: the
// encrypted ones checked and decrypted with vector N's token and key, and
// CreateTime from the middleware's clock.
func TestRepliesThroughVerify(t *testing.T) {
	at := time.Unix(1714112446, 0)
	clock := util.ClockFunc(func() time.Time { return at })
	key, err := msgcrypt.ParseKey(vnKey)
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
	for _, mode := range []string{"plain", "safe-xml", "safe-json"} {
		asJSON := mode == "safe-json"
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
				if mode != "plain" {
					enc, err := key.Encrypt(rand.Reader, []byte(push), vnAppID)
					if err != nil {
						t.Fatal(err)
					}
					q.Set("encrypt_type", "aes")
					q.Set("msg_signature", msgcrypt.Sign(vnToken, ts, nonce, enc))
					base, body = safe.URL, "<xml><ToUserName><![CDATA[gh_acct]]></ToUserName><Encrypt><![CDATA["+enc+"]]></Encrypt></xml>"
					if asJSON {
						b, _ := json.Marshal(map[string]string{"ToUserName": "gh_acct", "Encrypt": enc})
						body = string(b)
					}
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
				if mode != "plain" {
					got = openReply(t, key, got, asJSON)
				}
				checks[i](t, message.CheckReply(t, got, asJSON, at))
			})
		}
	}
}

// openReply checks and decrypts an encrypted reply as WeChat does.
func openReply(t *testing.T, key *msgcrypt.Key, body []byte, asJSON bool) []byte {
	t.Helper()
	var env struct {
		Encrypt, MsgSignature, Nonce string
		TimeStamp                    int64
	}
	var err error
	if asJSON {
		err = json.Unmarshal(body, &env)
	} else {
		err = xml.Unmarshal(body, &env)
	}
	if err != nil {
		t.Fatalf("reply %s is no envelope: %v", body, err)
	}
	if !msgcrypt.VerifySignature(env.MsgSignature, vnToken, strconv.FormatInt(env.TimeStamp, 10), env.Nonce, env.Encrypt) {
		t.Fatal("the reply's MsgSignature does not verify")
	}
	plain, appID, err := key.Decrypt(env.Encrypt)
	if err != nil || appID != vnAppID {
		t.Fatalf("reply decrypts to AppID %q, %v", appID, err)
	}
	return plain
}
