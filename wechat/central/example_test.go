package central_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

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
