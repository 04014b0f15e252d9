package middleware_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
)

// nullWriter is a ResponseWriter that keeps nothing, so the benchmarks
// measure the handlers rather than a recorder.
type nullWriter struct{ h http.Header }

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nullWriter) WriteHeader(int)             {}

// BenchmarkServe compares a bare handler with the same handler behind the
// middleware, for the GET handshake and for a POST of a typical message.
func BenchmarkServe(b *testing.B) {
	const msg = `<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[o9AgO5Kd5ggOC-bXrbNODIiE3bGY]]></FromUserName><CreateTime>1714036504</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>1234567890123456</MsgId></xml>`
	vec := "signature=" + vecSig + "&timestamp=" + vecTS + "&nonce=" + vecNonce
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			io.WriteString(w, r.URL.Query().Get("echostr"))
			return
		}
		io.Copy(io.Discard, r.Body)
	})
	wrapped := middleware.Verify(vecToken,
		middleware.WithClock(func() time.Time { return vecTime }),
		middleware.WithLogger(slog.New(slog.DiscardHandler)),
	)(bare)

	for _, bc := range []struct {
		name, method, query, body string
	}{
		{"handshake", "GET", vec + "&echostr=" + vecEcho, ""},
		{"post", "POST", vec + "&openid=o9AgO5Kd5ggOC-bXrbNODIiE3bGY", msg},
	} {
		for _, h := range []struct {
			name string
			h    http.Handler
		}{{"bare", bare}, {"verify", wrapped}} {
			b.Run(bc.name+"/"+h.name, func(b *testing.B) {
				r := httptest.NewRequest(bc.method, "/?"+bc.query, nil)
				w := &nullWriter{h: http.Header{}}
				body := strings.NewReader(bc.body)
				b.ReportAllocs()
				for b.Loop() {
					body.Reset(bc.body)
					r.Body = io.NopCloser(body)
					r.ContentLength = int64(len(bc.body))
					clear(w.h)
					h.h.ServeHTTP(w, r)
				}
			})
		}
	}
}
