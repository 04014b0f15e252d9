package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/gateway"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// A gateway in front of a keeper: an SDK that asks it for a token gets
// the keeper's, and its business calls go to WeChat with that token.
func Example() {
	fake := wechattest.NewServer(wechattest.WithApp("wx1234567890abcdef", "the-app-secret"))
	defer fake.Close()
	dir, _ := os.MkdirTemp("", "gateway-example")
	defer os.RemoveAll(dir)

	ctx := context.Background()
	up, _ := wechat.NewUpstream([]string{fake.URL}, wechat.UpstreamOptions{})
	keeper, err := wechat.Open(ctx, wechat.Options{AppID: "wx1234567890abcdef", AppSecret: "the-app-secret",
		Upstream: up, Store: wechat.NewFileStore(filepath.Join(dir, "wechat.txt"), nil)})
	if err != nil {
		panic(err)
	}
	defer keeper.Close()
	gw, err := gateway.New(gateway.Options{Upstream: up})
	if err != nil {
		panic(err)
	}
	gw.SetApps([]gateway.App{{ID: "wx1234567890abcdef", Kind: config.OfficialAccount, Secret: "the-app-secret", Keeper: keeper}})
	srv := httptest.NewServer(gw)
	defer srv.Close()

	// What any SDK does, with its API base set to srv.URL.
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	resp, _ := http.Get(srv.URL + "/cgi-bin/token?grant_type=client_credential&appid=wx1234567890abcdef&secret=the-app-secret")
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	held, _ := keeper.AccessToken(ctx)
	fmt.Println("the keeper's token:", tok.AccessToken == held, "about two hours left:", tok.ExpiresIn > 7000)

	var ips struct {
		IPList []string `json:"ip_list"`
	}
	resp, _ = http.Get(srv.URL + "/cgi-bin/getcallbackip?access_token=" + tok.AccessToken)
	json.NewDecoder(resp.Body).Decode(&ips)
	resp.Body.Close()
	fmt.Println("callback IPs:", len(ips.IPList) > 0)

	var refused struct {
		Errcode int `json:"errcode"`
	}
	resp, _ = http.Get(srv.URL + "/cgi-bin/getcallbackip?access_token=not-one-of-ours")
	json.NewDecoder(resp.Body).Decode(&refused)
	resp.Body.Close()
	fmt.Println("a foreign token:", refused.Errcode)
	// Output:
	// the keeper's token: true about two hours left: true
	// callback IPs: true
	// a foreign token: 40014
}
