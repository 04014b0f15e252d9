package central

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/internal/redistest"
	"github.com/wxcentral/wxcentral/wechat/redisstore"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// A Redis store's failures reach /metrics as wxcentral_store_errors_total,
// so an outage shows on a dashboard while the held token is still served.
func TestStoreErrorsInMetrics(t *testing.T) {
	const appID, secret = "wx0123456789abcdef", "S3CRET-must-never-leak-0123456789"
	rds := redistest.Start(t)
	store, err := redisstore.Open(rds.URL(), appID, redisstore.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	fake := wechattest.NewServer(wechattest.WithApp(appID, secret))
	t.Cleanup(fake.Close)
	k, err := wechat.New(t.Context(), wechat.Options{AppID: appID, AppSecret: secret, APIBase: fake.URL, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	srv := httptest.NewServer(NewAdmin(k, AdminOptions{Store: store}))
	t.Cleanup(srv.Close)
	scrape := func() string {
		t.Helper()
		res, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, `wxcentral_store_errors_total{app_id="`+testAppID+`"} `); ok {
				return strings.TrimSpace(rest)
			}
		}
		t.Fatalf("/metrics has no wxcentral_store_errors_total:\n%s", b)
		return ""
	}
	if got := scrape(); got != "0" {
		t.Fatalf("store errors before the outage = %s, want 0", got)
	}
	rds.Stop()
	if _, err := store.Load(t.Context(), wechat.KindAccessToken); err == nil {
		t.Fatal("Load succeeded with Redis stopped")
	}
	if got := scrape(); got == "0" {
		t.Error("wxcentral_store_errors_total stayed 0 after a failed Load")
	}
	if tok, err := k.AccessToken(t.Context()); err != nil || tok == "" {
		t.Errorf("AccessToken during the outage = %q, %v; want the held token", tok, err)
	}
}
