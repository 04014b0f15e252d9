package wechattest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

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
