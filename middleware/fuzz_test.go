package middleware_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/util"
)

// FuzzVerify feeds the middleware random methods, queries and bodies. When
// sign is set the harness prepends a valid signature for ts and nonce, so
// the fuzzer reaches the accepting paths too; extra is appended raw.
//
// Invariants: no panic; no 5xx; the next handler runs only for a POST whose
// query, parsed independently by url.ParseQuery, carries exactly one valid
// signature, timestamp (within the window) and nonce, no encrypt_type but
// raw, and whose body is a push (message.Parse), and then it reads the body
// exactly as sent and finds the message in the context; a well-formed valid
// request is always accepted.
func FuzzVerify(f *testing.F) {
	f.Add("GET", vecTS, vecNonce, "echostr="+vecEcho, true, []byte(nil), false)
	f.Add("POST", vecTS, vecNonce, "openid=o9AgO5Kd5ggOC", true, []byte("<xml><MsgType>text</MsgType></xml>"), false)
	f.Add("POST", vecTS, "a b+c%", "", true, []byte(`{"MsgType":"event"}`), true)
	f.Add("POST", vecTS, vecNonce, "encrypt_type=raw", true, []byte("<xml><MsgType>x</MsgType></xml>"), false)
	f.Add("POST", vecTS, vecNonce, "encrypt_type=aes&msg_signature=00", true, []byte("<xml><MsgType>x</MsgType></xml>"), false)
	f.Add("POST", vecTS, "a b+c%", "", true, []byte("x"), true)
	f.Add("POST", vecTS, vecNonce, "signature="+vecSig, true, []byte("dup"), false)
	f.Add("POST", vecTS, vecNonce, "", true, bytes.Repeat([]byte("y"), 300), true)
	f.Add("GET", "", "", "signature="+vecSig+"&timestamp="+vecTS+"&nonce="+vecNonce+"&echostr=e", false, []byte(nil), false)
	f.Add("GET", "", "", "signature=%zz&timestamp=1&nonce=;", false, []byte(nil), false)
	f.Add("PUT", vecTS, vecNonce, "", true, []byte("z"), false)
	f.Add("POST", "1714036000", vecNonce, "", true, []byte("stale"), false)
	f.Add("POST", "0017140365040", vecNonce, "", true, []byte("zeros"), false)
	f.Add("", "", "", "&&==&;", false, []byte{0}, true)

	const token, limit = "AAAAA", 256
	f.Fuzz(func(t *testing.T, method, ts, nonce, extra string, sign bool, body []byte, chunked bool) {
		var called, typed bool
		var got []byte
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			called = true
			got, _ = io.ReadAll(r.Body)
			m, ok := message.FromContext(r.Context())
			typed = ok && bytes.Equal(m.Raw, body)
		})
		mw := middleware.Verify(token,
			middleware.WithClock(func() time.Time { return vecTime }),
			middleware.WithMaxBodySize(limit),
			middleware.WithLogger(slog.New(slog.DiscardHandler)),
		)(next)

		raw := extra
		if sign {
			pre := "signature=" + util.Signature(token, ts, nonce) +
				"&timestamp=" + url.QueryEscape(ts) + "&nonce=" + url.QueryEscape(nonce)
			if raw != "" {
				pre += "&"
			}
			raw = pre + raw
		}
		r := &http.Request{
			Method:        method,
			URL:           &url.URL{Path: "/", RawQuery: raw},
			Header:        http.Header{},
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
			RemoteAddr:    "192.0.2.1:4711",
		}
		if chunked {
			r.ContentLength = -1
		}
		w := httptest.NewRecorder()
		mw.ServeHTTP(w, r)

		if w.Code >= 500 {
			t.Fatalf("status %d", w.Code)
		}
		q, perr := url.ParseQuery(raw)
		_, merr := message.Parse(body)
		valid := oracle(token, q) && merr == nil
		if called {
			if method != http.MethodPost || !valid {
				t.Fatalf("next ran for %s ?%s (valid by url.ParseQuery: %v)", method, raw, valid)
			}
			if !bytes.Equal(got, body) || !typed {
				t.Fatalf("next read %q (message in the context: %v), sent %q", got, typed, body)
			}
			if w.Code != 200 {
				t.Fatalf("status %d after next", w.Code)
			}
			return
		}
		if perr != nil || !valid {
			return // rejecting is always allowed
		}
		switch {
		case method == http.MethodPost && len(body) <= limit:
			t.Fatalf("a valid POST was rejected: %d %q", w.Code, w.Body)
		case method == http.MethodPost && w.Code != http.StatusRequestEntityTooLarge:
			t.Fatalf("an oversized POST got %d, want 413", w.Code)
		case method == http.MethodGet && len(q["echostr"]) == 1 && q.Get("echostr") != "":
			if w.Code != 200 || w.Body.String() != q.Get("echostr") {
				t.Fatalf("valid handshake answered %d %q, want echostr %q", w.Code, w.Body, q.Get("echostr"))
			}
		}
	})
}

// oracle decides validity from url.ParseQuery's view of the query, without
// the middleware's parser or util.VerifySignature.
func oracle(token string, q url.Values) bool {
	for _, k := range []string{"signature", "timestamp", "nonce"} {
		if len(q[k]) != 1 || q[k][0] == "" {
			return false
		}
	}
	for _, k := range []string{"echostr", "encrypt_type", "msg_signature"} {
		if len(q[k]) > 1 {
			return false
		}
	}
	if et := q.Get("encrypt_type"); et != "" && et != "raw" {
		return false // no key configured: only plain mode
	}
	ts := q.Get("timestamp")
	if strings.TrimLeft(ts, "0123456789") != "" {
		return false
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(ts) > 18 {
		return false
	}
	if d := vecTime.Unix() - n; d > 300 || d < -300 {
		return false
	}
	return strings.EqualFold(util.Signature(token, ts, q.Get("nonce")), q.Get("signature"))
}
