package central

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/util/redistest"
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/redisstore"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// With the Redis store, two hosts behind a load balancer share retry
// dedupe: WeChat's re-delivery of a push to the other host is answered
// with the first host's reply and does not run the handler again. A file
// store (one host) keeps the middleware's in-memory default.
func TestDedupeSharedThroughRedisStore(t *testing.T) {
	const appID, token = "wx0123456789abcdef", "callback-token"
	if _, ok := dedupeFor(wechat.NewFileStore(filepath.Join(t.TempDir(), "wechat.txt"), nil), appID); ok {
		t.Error("a file store got a shared dedupe; want the in-memory default")
	}

	rds := redistest.Start(t)
	var runs atomic.Int32
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		io.WriteString(w, "reply "+strconv.Itoa(int(n)))
	})
	var hosts []*httptest.Server
	for range 2 {
		store, err := redisstore.Open(rds.URL(), appID)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		opt, ok := dedupeFor(store, appID)
		if !ok {
			t.Fatal("no shared dedupe for the Redis store")
		}
		h := httptest.NewServer(middleware.Verify(token, opt)(handler))
		t.Cleanup(h.Close)
		hosts = append(hosts, h)
	}

	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "4242"
	q := url.Values{"signature": {util.Signature(token, ts, nonce)}, "timestamp": {ts}, "nonce": {nonce}, "openid": {"o-user"}}
	body := `<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[o-user]]></FromUserName>` +
		`<CreateTime>1714112445</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>987654321</MsgId></xml>`
	for i, h := range hosts {
		res, err := http.Post(h.URL+"/?"+q.Encode(), "text/xml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || string(got) != "reply 1" {
			t.Errorf("delivery %d to host %d: HTTP %d %q, want 200 \"reply 1\"", i+1, i+1, res.StatusCode, got)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the handler ran %d times for one MsgId delivered to two hosts, want 1", n)
	}
	keys, err := redistest.Do(rds.Addr, "KEYS", "wxcentral:dedupe:{"+appID+"}:*")
	if err != nil || !strings.Contains(keys, "987654321") {
		t.Errorf("Redis keys under the app's dedupe prefix = %q, %v; want the message's", keys, err)
	}
}

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
			if strings.HasPrefix(line, "wxcentral_store_errors_total ") {
				return strings.TrimSpace(strings.TrimPrefix(line, "wxcentral_store_errors_total "))
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
