package central_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/central"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// Mounting the admin API on a mux of your own, next to other routes, and
// using it from a business server through wechat.NewRemote.
func ExampleNewAdmin() {
	fake := wechattest.NewServer(wechattest.WithApp("wx0123456789abcdef", "app-secret"))
	defer fake.Close()
	dir, _ := os.MkdirTemp("", "central")
	defer os.RemoveAll(dir)

	// The central server: one keeper, the admin API under /wxcentral/.
	ctx := context.Background()
	keeper, err := wechat.New(ctx, wechat.Options{
		AppID: "wx0123456789abcdef", AppSecret: "app-secret", APIBase: fake.URL,
		Store: wechat.NewFileStore(filepath.Join(dir, "wechat.txt"), nil),
	})
	if err != nil {
		log.Fatal(err)
	}
	go keeper.Run(ctx)
	const key = "a-long-random-admin-key"
	mux := http.NewServeMux()
	mux.Handle("/wxcentral/", http.StripPrefix("/wxcentral", central.NewAdmin(keeper, central.AdminOptions{Key: key})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// A business server elsewhere: a Remote token source and a Client.
	remote, err := wechat.NewRemote(srv.URL+"/wxcentral", key, wechat.RemoteOptions{})
	if err != nil {
		log.Fatal(err)
	}
	client := &wechat.Client{Source: remote, APIBase: fake.URL}
	res, err := client.Get(ctx, "/cgi-bin/get_api_domain_ip", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Get("ip_list").IsArray())
	// Output: true
}

// One admin API for several accounts: an official account and a Mini
// Program, each with its keeper; a business server picks its app with
// RemoteOptions.App.
func ExampleAdmin_SetApps() {
	fake := wechattest.NewServer(
		wechattest.WithApp("wx00000000000000a1", "oa-secret"),
		wechattest.WithAppKind("wx00000000000000b1", "mp-secret", wechattest.KindMiniProgram))
	defer fake.Close()
	dir, _ := os.MkdirTemp("", "central")
	defer os.RemoveAll(dir)

	ctx := context.Background()
	var apps []central.App
	for _, a := range []struct {
		id, secret, name string
		kind             config.AppKind
	}{
		{"wx00000000000000a1", "oa-secret", "main", config.OfficialAccount},
		{"wx00000000000000b1", "mp-secret", "shop", config.MiniProgram},
	} {
		store := wechat.NewFileStore(filepath.Join(dir, a.id+".txt"), nil)
		keeper, err := wechat.Open(ctx, wechat.Options{AppID: a.id, AppSecret: a.secret, APIBase: fake.URL, Store: store})
		if err != nil {
			log.Fatal(err)
		}
		defer keeper.Close()
		go keeper.Run(ctx)
		apps = append(apps, central.App{ID: a.id, Name: a.name, Kind: a.kind, Keeper: keeper, Store: store})
	}
	admin := central.NewAdmin(nil, central.AdminOptions{})
	if err := admin.SetApps(apps); err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(admin)
	defer srv.Close()

	shop, err := wechat.NewRemote(srv.URL, "", wechat.RemoteOptions{App: "wx00000000000000b1"})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := shop.AccessToken(ctx)
	fmt.Println(tok != "", err)
	res, _ := http.Get(srv.URL + "/v1/apps/wx00000000000000b1/ticket/jsapi")
	res.Body.Close()
	fmt.Println(res.StatusCode) // a Mini Program has no jsapi_ticket
	// Output:
	// true <nil>
	// 400
}
