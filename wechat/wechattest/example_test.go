package wechattest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// get fetches base+path and decodes the JSON answer.
func get(base, path string) (errcode int, token string) {
	resp, err := http.Get(base + path)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var r struct {
		Errcode     int    `json:"errcode"`
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&r)
	return r.Errcode, r.AccessToken
}

// A test points the code under test at srv.URL instead of
// https://api.weixin.qq.com and moves the platform's clock to cross the
// five minutes during which a superseded token still works.
func Example() {
	srv := wechattest.NewServer(
		wechattest.WithApp("wx1234567890abcdef", "the-app-secret"),
		wechattest.WithClock(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)),
	)
	defer srv.Close()

	const fetch = "/cgi-bin/token?grant_type=client_credential&appid=wx1234567890abcdef&secret=the-app-secret"
	_, first := get(srv.URL, fetch)
	_, second := get(srv.URL, fetch) // e.g. another process refreshing

	code, _ := get(srv.URL, "/cgi-bin/getcallbackip?access_token="+first)
	fmt.Println("old token within the grace period:", code)
	srv.Advance(5 * time.Minute)
	code, _ = get(srv.URL, "/cgi-bin/getcallbackip?access_token="+first)
	fmt.Println("old token after it:", code)
	code, _ = get(srv.URL, "/cgi-bin/getcallbackip?access_token="+second)
	fmt.Println("new token:", code)

	st := srv.Stats()
	fmt.Println("fetches:", st.Fetches[wechattest.PathToken], "rejected 40001:", st.Rejected[40001])
	// Output:
	// old token within the grace period: 0
	// old token after it: 40001
	// new token: 0
	// fetches: 2 rejected 40001: 1
}

// Fail makes the next calls of an endpoint misbehave, to test how the code
// under test copes with WeChat being busy or unreachable.
func ExamplePlatform_Fail() {
	srv := wechattest.NewServer(wechattest.WithApp("wx1", "s1"))
	defer srv.Close()

	srv.Fail(wechattest.PathToken, wechattest.Fault{Times: 2, Errcode: -1})
	srv.Fail(wechattest.PathToken, wechattest.Fault{Status: http.StatusBadGateway})

	for range 4 {
		resp, err := http.Get(srv.URL + "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s1")
		if err != nil {
			panic(err)
		}
		var r struct{ Errcode int }
		json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, r.Errcode)
	}
	// Output:
	// 200 -1
	// 200 -1
	// 502 0
	// 200 0
}

// Simulate checks a developer's callback handler the way WeChat does.
func ExampleSimulate() {
	const token = "AAAAA"
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if !util.VerifySignature(q.Get("signature"), token, q.Get("timestamp"), q.Get("nonce")) {
			http.Error(w, "signature mismatch", http.StatusForbidden)
			return
		}
		if r.Method == http.MethodGet {
			io.WriteString(w, q.Get("echostr"))
			return
		}
		io.WriteString(w, "success")
	})
	ts := httptest.NewServer(handler)
	defer ts.Close()

	ok := wechattest.Simulate(context.Background(), os.Stdout, wechattest.SimulateConfig{URL: ts.URL, Token: "BBBBB"})
	fmt.Println(ok)
	// Output:
	// mode: plain (明文模式): messages unencrypted
	// FAIL check: got HTTP 403: signature mismatch — is the token the same on both sides?
	// FAIL message: got HTTP 403: signature mismatch — is the token the same on both sides?
	// false
}

// A Callback sends what a user types to the developer's server, signed.
func ExampleCallback_Send() {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if !util.VerifySignature(q.Get("signature"), "AAAAA", q.Get("timestamp"), q.Get("nonce")) {
			http.Error(w, "signature mismatch", http.StatusForbidden)
			return
		}
		io.WriteString(w, "success")
	}))
	defer ts.Close()

	cb := &wechattest.Callback{URL: ts.URL, Token: "AAAAA"}
	reply, err := cb.Send(context.Background(), wechattest.TextMessage("hello"))
	fmt.Printf("%s %v\n", reply, err)
	// Output: success <nil>
}

// An AESSealer makes a Callback send in safe mode (安全模式) as WeChat does:
// the push is encrypted and signed with msg_signature, and the reply must
// come back encrypted; Send returns it decrypted.
func ExampleNewAESSealer() {
	const (
		token  = "my-callback-token"
		appID  = "wxba5fad812f8e6fb9"
		aesKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG" // 43 characters, from the platform
	)
	// The developer's server: the middleware in safe mode and an echo.
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, _ := message.FromContext(r.Context()) // the decrypted push
		w.Header().Set("Content-Type", message.ContentType)
		w.Write(m.ReplyText(time.Unix(1714112446, 0), "you said: "+m.Content))
	})
	srv := httptest.NewServer(middleware.Verify(token, middleware.WithAES(appID, aesKey))(echo))
	defer srv.Close()

	sealer, err := wechattest.NewAESSealer(token, appID, aesKey)
	if err != nil {
		fmt.Println(err)
		return
	}
	cb := &wechattest.Callback{URL: srv.URL, Token: token, Sealer: sealer}
	reply, err := cb.Send(context.Background(), wechattest.TextMessage("hello"))
	fmt.Printf("%s\n%v\n", reply, err)
	// Output:
	// <xml><ToUserName><![CDATA[o6_bmjrPTlm6_2sgVt7hMZOPfL2M]]></ToUserName><FromUserName><![CDATA[gh_0123456789ab]]></FromUserName><CreateTime>1714112446</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[you said: hello]]></Content></xml>
	// <nil>
}

// In safe mode Simulate encrypts the message and checks the encrypted
// reply. Here the server has another EncodingAESKey than the simulation,
// and the failure says so.
func ExampleSimulate_safeMode() {
	const (
		token = "my-callback-token"
		appID = "wxba5fad812f8e6fb9"
	)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, _ := message.FromContext(r.Context())
		w.Write(m.ReplyText(time.Now(), "you said: "+m.Content))
	})
	quiet := middleware.WithLogger(slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(middleware.Verify(token, quiet,
		middleware.WithAES(appID, "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkj"))(echo))
	defer srv.Close()

	var out strings.Builder
	ok := wechattest.Simulate(context.Background(), &out, wechattest.SimulateConfig{
		URL: srv.URL, Token: token,
		AESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", AppID: appID,
	})
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.HasPrefix(line, "PASS check:") {
			line = "PASS check: …" // the line names the server's random port
		}
		fmt.Println(line)
	}
	fmt.Println(ok)
	// Output:
	// mode: safe (安全模式), AppID wxba5fad812f8e6fb9: messages encrypted with the EncodingAESKey (encrypt_type=aes, msg_signature); replies other than "" or "success" must be encrypted
	// PASS check: …
	// FAIL message: got HTTP 400: Encrypt does not decrypt: check the EncodingAESKey — the signed GET passed, so the token matches: is the EncodingAESKey the same on both sides (and the AppID)?
	// false
}

// A test in any language drives the platform over HTTP: the control plane
// under /_fake/ moves the same clock and reads the same counters as the Go
// methods.
func ExampleServer_controlPlane() {
	srv := wechattest.NewServer(
		wechattest.WithApp("wx1234567890abcdef", "the-app-secret"),
		wechattest.WithClock(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)),
		wechattest.WithTokenLifetime(5*time.Second),
	)
	defer srv.Close()

	_, tok := get(srv.URL, "/cgi-bin/token?grant_type=client_credential&appid=wx1234567890abcdef&secret=the-app-secret")
	resp, _ := http.Post(srv.URL+"/_fake/advance", "application/json", strings.NewReader(`{"seconds":5}`))
	resp.Body.Close()
	code, _ := get(srv.URL, "/cgi-bin/getcallbackip?access_token="+tok)
	fmt.Println("after 5 s:", code)

	resp, _ = http.Get(srv.URL + "/_fake/stats")
	var st struct {
		Fetches  map[string]int `json:"fetches"`
		Rejected map[string]int `json:"rejected"`
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	fmt.Println("fetches:", st.Fetches["/cgi-bin/token"], "rejected 42001:", st.Rejected["42001"])
	// Output:
	// after 5 s: 42001
	// fetches: 1 rejected 42001: 1
}
