package sdktest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/officialaccount"
	offconfig "github.com/silenceper/wechat/v2/officialaccount/config"
	"github.com/silenceper/wechat/v2/officialaccount/material"
	"github.com/silenceper/wechat/v2/util"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/wechat/server"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

const (
	appID  = "wx5151515151515151"
	secret = "sdk-test-secret-0123456789abcdef"
)

// serve runs wxcentral's server on the fake and returns the admin
// listener's base URL, where the gateway answers.
func serve(t *testing.T, fake *wechattest.Server) string {
	t.Helper()
	cfg := config.Default()
	cfg.AppID, cfg.AppSecret, cfg.Token = appID, secret, "callback-token"
	cfg.APIBase = fake.URL
	cfg.Store = filepath.Join(t.TempDir(), "wechat.txt")
	pub, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adm, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		done <- server.Serve(ctx, cfg, server.Options{PublicListener: pub, AdminListener: adm, Clock: fake,
			HTTPClient: fake.Client(), Logger: slog.New(slog.DiscardHandler), Ready: func(net.Addr, net.Addr) { close(ready) }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	return "http://" + adm.Addr().String()
}

// TestSilenceperThroughTheGateway: the SDK gets its token from the
// gateway, calls business APIs, uploads and downloads media, and never
// sees the token WeChat killed behind its back; WeChat issues tokens to
// the central server's keeper alone.
func TestSilenceperThroughTheGateway(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(appID, secret), wechattest.WithClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)))
	defer fake.Close()
	gateway := serve(t, fake)

	// The one line a silenceper user adds.
	util.SetURIModifier(func(uri string) string {
		return strings.Replace(uri, "https://api.weixin.qq.com", gateway, 1)
	})
	defer util.SetURIModifier(nil)

	oa := officialaccount.NewOfficialAccount(&offconfig.Config{AppID: appID, AppSecret: secret, Cache: cache.NewMemory()})
	tok, err := oa.GetAccessToken()
	if err != nil {
		t.Fatalf("GetAccessToken through the gateway: %v", err)
	}
	if held, ok := fake.Token(appID); !ok || held != tok {
		t.Fatalf("the SDK's token is not the one WeChat holds for the account")
	}

	ips, err := oa.GetBasic().GetCallbackIP()
	if err != nil || len(ips) == 0 {
		t.Fatalf("GetCallbackIP: %v, %v", ips, err)
	}
	if err := oa.GetMenu().SetMenuByJSON(`{"button":[{"type":"click","name":"今日歌曲","key":"V1001_TODAY_MUSIC"}]}`); err != nil {
		t.Fatalf("SetMenuByJSON: %v", err)
	}
	menu, err := oa.GetMenu().GetMenu()
	if err != nil || len(menu.Menu.Button) != 1 || menu.Menu.Button[0].Key != "V1001_TODAY_MUSIC" {
		t.Fatalf("GetMenu: %+v, %v", menu, err)
	}

	img := bytes.Repeat([]byte{0xff, 0xd8, 0xff, 0xe0, 'w', 'x'}, 10000) // 60 KB
	media, err := oa.GetMaterial().MediaUploadFromReader(material.MediaTypeImage, "photo.jpg", bytes.NewReader(img))
	if err != nil || media.MediaID == "" {
		t.Fatalf("MediaUploadFromReader: %+v, %v", media, err)
	}
	mediaURL, err := oa.GetMaterial().GetMediaURL(media.MediaID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := util.HTTPGet(mediaURL) // the SDK's own client, through its URI modifier
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("downloading the media: %d bytes, %v; want the %d uploaded", len(got), err, len(img))
	}

	// WeChat kills the token behind the SDK's back (another program
	// fetched one): the SDK, which caches it for 5700 s, keeps using it.
	fake.Advance(time.Minute)
	if err := fake.Invalidate(appID); err != nil {
		t.Fatal(err)
	}
	if _, err := oa.GetBasic().GetCallbackIP(); err != nil {
		t.Errorf("GetCallbackIP after WeChat killed the token: %v; want no error (the gateway refreshes and retries)", err)
	}
	if _, err := oa.GetMenu().GetMenu(); err != nil {
		t.Errorf("GetMenu after the refresh: %v", err)
	}

	// Two tokens were issued in all, both to the keeper (its first, and
	// its passive refresh): none to the SDK, whose token calls the
	// gateway answered.
	if n := fake.Stats().Fetches[wechattest.PathToken]; n != 2 {
		t.Errorf("WeChat issued %d tokens; want 2, the keeper's", n)
	}
	resp, err := http.Get(gateway + "/metrics")
	if err != nil {
		t.Error(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `wxcentral_gateway_calls_total{app_id="`+appID+`",family="cgi-bin",outcome="token_retried"} 1`) {
			t.Errorf("/metrics does not count the retried call:\n%s", grep(string(body), "wxcentral_gateway_calls_total"))
		}
	}
}

func grep(text, part string) string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, part) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
