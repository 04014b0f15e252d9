package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// BenchmarkProxiedCall compares a business call through the gateway
// (recognise the token, inject the account's, forward, read the JSON
// answer for a token error, count it) with the same call through a bare
// httputil.ReverseProxy to the same fake WeChat. Compare the two with
// benchstat; the goal is a ratio within 1.2.
//
//	go test -run '^$' -bench ProxiedCall -count 10 ./wechat/gateway
func BenchmarkProxiedCall(b *testing.B) {
	e := newEnv(b, nil)
	tok := e.token(b, oaID, oaSecret)
	target, _ := url.Parse(e.fake.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = e.fake.Client().Transport
	bare := httptest.NewServer(rp)
	defer bare.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	run := func(b *testing.B, base string) {
		u := base + "/cgi-bin/getcallbackip?access_token=" + tok
		b.ReportAllocs()
		for b.Loop() {
			resp, err := client.Get(u)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("HTTP %d", resp.StatusCode)
			}
		}
	}
	b.Run("impl=gateway", func(b *testing.B) { run(b, e.url) })
	b.Run("impl=reverseproxy", func(b *testing.B) { run(b, bare.URL) })
}
