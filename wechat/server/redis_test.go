package server

import (
	"io"
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
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/internal/redistest"
	"github.com/wxcentral/wxcentral/wechat/redisstore"
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
