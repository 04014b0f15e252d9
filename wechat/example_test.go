package wechat_test

import (
	"context"
	"fmt"
	"log"
	"net/url"
	"os"
	"path/filepath"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

func Example() {
	srv := wechattest.NewServer(wechattest.WithApp("wx0123456789abcdef", "app-secret"))
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "wechat")
	defer os.RemoveAll(dir)

	ctx := context.Background()
	w, err := wechat.New(ctx, wechat.Options{
		AppID:     "wx0123456789abcdef",
		AppSecret: "app-secret",
		Store:     wechat.NewFileStore(filepath.Join(dir, "wechat.txt"), nil),
		APIBase:   srv.URL, // omit in production: https://api.weixin.qq.com
	})
	if err != nil {
		log.Fatal(err)
	}
	go w.Run(ctx) // refresh ahead of expiry

	tok, err := w.AccessToken(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok != "")
	// Output: true
}

func ExampleClient_Get() {
	srv := wechattest.NewServer(wechattest.WithApp("wx0123456789abcdef", "app-secret"))
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "wechat")
	defer os.RemoveAll(dir)

	ctx := context.Background()
	w, err := wechat.New(ctx, wechat.Options{
		AppID: "wx0123456789abcdef", AppSecret: "app-secret", APIBase: srv.URL,
		Store: wechat.NewFileStore(filepath.Join(dir, "wechat.txt"), nil),
	})
	if err != nil {
		log.Fatal(err)
	}
	// Any TokenSource works: the local keeper, or a client of a central
	// server. With the keeper, the Client calls the keeper's APIBase (here
	// the fake); with a Remote, set APIBase in a test.
	c := &wechat.Client{Source: w}
	res, err := c.Get(ctx, "/cgi-bin/get_api_domain_ip", url.Values{})
	if err != nil {
		log.Fatal(err) // an *wechat.APIError when WeChat reports an errcode
	}
	fmt.Println(res.Get("ip_list").IsArray())
	// Output: true
}

func ExampleWechat_JSSDKConfig() {
	srv := wechattest.NewServer(wechattest.WithApp("wx0123456789abcdef", "app-secret"))
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "wechat")
	defer os.RemoveAll(dir)

	ctx := context.Background()
	w, err := wechat.New(ctx, wechat.Options{
		AppID: "wx0123456789abcdef", AppSecret: "app-secret", APIBase: srv.URL,
		Store: wechat.NewFileStore(filepath.Join(dir, "wechat.txt"), nil),
	})
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := w.JSSDKConfig(ctx, "https://example.com/page?id=7#top")
	if err != nil {
		log.Fatal(err)
	}
	// Pass cfg to wx.config in the page, e.g. as JSON.
	fmt.Println(cfg.AppID, cfg.URL, len(cfg.Signature))
	// Output: wx0123456789abcdef https://example.com/page?id=7 40
}

func ExampleJSSDKSignature() {
	// The official example of the JS-SDK documentation.
	fmt.Println(wechat.JSSDKSignature(
		"sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
		"Wm3WZYTPz0wzccnW", 1414587457, "http://mp.weixin.qq.com?params=value"))
	// Output: 0f9de62fce790f9a083d5c99e95740ceb90c27ed
}
