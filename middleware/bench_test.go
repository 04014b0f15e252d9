package middleware_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/dedupe"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/util"
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
		middleware.WithClock(util.ClockFunc(func() time.Time { return vecTime })),
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

// BenchmarkPush is a POST of a text message through the whole middleware,
// the handler answering with message.ReplyText: in plain mode (check,
// parse, dedupe) and in safe mode (check, msg_signature, decrypt, parse,
// dedupe, encrypt the reply). "first" deliveries are all new messages,
// which run the handler; "redelivery" sends one message again and again,
// answered from the dedupe store. The clock moves past the dedupe window
// on every request, so that the store stays small.
func BenchmarkPush(b *testing.B) {
	const pool = 256
	key := mustKey(b, testKey)
	wx := wechat{testToken, testAppID, key}
	ts := vecTime.Unix()
	reply := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, _ := message.FromContext(r.Context())
		w.Header().Set("Content-Type", message.ContentType)
		w.Write(m.ReplyText(vecTime, "ok"))
	})
	type req struct {
		target string
		body   string
	}
	plainReqs, safeReqs := make([]req, pool), make([]req, pool)
	for i := range pool {
		msg := textMsg(int64(i))
		// A nonce per push: one signature with another body is a replay.
		plainReqs[i] = req{"/?" + signedQuery(testToken, strconv.FormatInt(ts, 10), "n"+strconv.Itoa(i)).Encode(), msg}
		p := wx.sealed(ts, "n", key.EncryptWith([16]byte{byte(i)}, []byte(msg), testAppID), false)
		safeReqs[i] = req{"/?" + p.q.Encode(), p.body}
	}
	for _, bc := range []struct {
		name string
		reqs []req
		same bool // always the first request: re-deliveries
		opts []middleware.Option
	}{
		{"plain/first", plainReqs, false, nil},
		{"plain/redelivery", plainReqs, true, nil},
		{"plain/nodedupe", plainReqs, false, []middleware.Option{middleware.WithDedupe(nil)}},
		{"safe/first", safeReqs, false, []middleware.Option{middleware.WithAES(testAppID, testKey)}},
		{"safe/redelivery", safeReqs, true, []middleware.Option{middleware.WithAES(testAppID, testKey)}},
		{"safe/nodedupe", safeReqs, false, []middleware.Option{middleware.WithAES(testAppID, testKey), middleware.WithDedupe(nil)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			now := vecTime
			step := dedupe.DefaultTTL
			if bc.same {
				step = 0
			}
			opts := append([]middleware.Option{
				middleware.WithClock(util.ClockFunc(func() time.Time { return now })),
				middleware.WithTimestampWindow(0), // the clock runs ahead
				middleware.WithLogger(slog.New(slog.DiscardHandler)),
			}, bc.opts...)
			h := middleware.Verify(testToken, opts...)(reply)
			rs := make([]*http.Request, len(bc.reqs))
			for i, rq := range bc.reqs {
				rs[i] = httptest.NewRequest("POST", rq.target, nil)
			}
			// One request first, to be sure the loop measures accepted ones.
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("POST", bc.reqs[0].target, strings.NewReader(bc.reqs[0].body)))
			if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), "<xml>") {
				b.Fatalf("rejected: %d %q", rec.Code, rec.Body)
			}
			w := &nullWriter{h: http.Header{}}
			body := strings.NewReader("")
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				rq := bc.reqs[i]
				r := rs[i]
				if !bc.same {
					i = (i + 1) % len(rs)
				}
				now = now.Add(step)
				body.Reset(rq.body)
				r.Body = io.NopCloser(body)
				r.ContentLength = int64(len(rq.body))
				clear(w.h)
				h.ServeHTTP(w, r)
			}
		})
	}
}
