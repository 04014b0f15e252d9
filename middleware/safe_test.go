package middleware_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/middleware/msgcrypt"
	"github.com/wxcentral/wxcentral/util"
)

// Vector N of wechat-platform.md §10.1: a JSON push in safe mode.
const (
	vnToken  = "AAAAA"
	vnKey    = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	vnAppID  = "wxba5fad812f8e6fb9"
	vnTS     = "1714112445"
	vnNonce  = "415670741"
	vnOpenID = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY"
	vnSig    = "6c5c811b55cc85e0e1b54100749188c20beb3f5d"
	vnMsgSig = "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"
	vnEnc    = "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="
	vnMsg    = `{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}`
	vnReply  = `{"demo_resp":"good luck"}`
)

// The keys of the other safe-mode tests; none of them is vector N's.
const (
	testToken  = "s3cretT0ken"
	testAppID  = "wx0123456789abcdef"
	testKey    = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	testOldKey = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
)

func mustKey(t testing.TB, s string) *msgcrypt.Key {
	t.Helper()
	k, err := msgcrypt.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// wechat plays WeChat in safe mode: it encrypts and signs pushes, and
// checks and opens the encrypted replies.
type wechat struct {
	token, appID string
	key          *msgcrypt.Key
}

// push is one safe-mode POST: its query and body, built by seal and then
// changed by a test case.
type push struct {
	q    url.Values
	body string
}

// seal encrypts plain into an XML (or JSON) envelope and signs it for
// timestamp ts and nonce, as WeChat does.
func (wx wechat) seal(t testing.TB, ts int64, nonce string, plain string, asJSON bool) push {
	t.Helper()
	enc, err := wx.key.Encrypt(rand.Reader, []byte(plain), wx.appID)
	if err != nil {
		t.Fatal(err)
	}
	return wx.sealed(ts, nonce, enc, asJSON)
}

// sealed wraps the Encrypt text enc, whatever it holds, and signs it.
func (wx wechat) sealed(ts int64, nonce, enc string, asJSON bool) push {
	t := strconv.FormatInt(ts, 10)
	q := url.Values{
		"signature":     {util.Signature(wx.token, t, nonce)},
		"timestamp":     {t},
		"nonce":         {nonce},
		"openid":        {"o9AgO5Kd5ggOC"},
		"encrypt_type":  {"aes"},
		"msg_signature": {msgcrypt.Sign(wx.token, t, nonce, enc)},
	}
	body := "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>"
	if asJSON {
		b, _ := json.Marshal(map[string]string{"ToUserName": "gh_97417a04a28d", "Encrypt": enc})
		body = string(b)
	}
	return push{q, body}
}

// replyEnvelope is an encrypted reply, XML or JSON.
type replyEnvelope struct {
	Encrypt      string `xml:"Encrypt" json:"Encrypt"`
	MsgSignature string `xml:"MsgSignature" json:"MsgSignature"`
	TimeStamp    int64  `xml:"TimeStamp" json:"TimeStamp"`
	Nonce        string `xml:"Nonce" json:"Nonce"`
}

// open checks an encrypted reply as WeChat does, with token and key, and
// returns its plaintext and envelope.
func (wx wechat) open(t testing.TB, body []byte, asJSON bool) (string, replyEnvelope) {
	t.Helper()
	var env replyEnvelope
	var err error
	if asJSON {
		err = json.Unmarshal(body, &env)
	} else {
		err = xml.Unmarshal(body, &env)
	}
	if err != nil {
		t.Fatalf("reply %q is no envelope: %v", body, err)
	}
	ts := strconv.FormatInt(env.TimeStamp, 10)
	if !msgcrypt.VerifySignature(env.MsgSignature, wx.token, ts, env.Nonce, env.Encrypt) {
		t.Fatalf("reply MsgSignature %s does not verify with the token", env.MsgSignature)
	}
	plain, appID, err := wx.key.Decrypt(env.Encrypt)
	if err != nil {
		t.Fatalf("reply does not decrypt: %v", err)
	}
	if appID != wx.appID {
		t.Fatalf("reply is for AppID %q, want %q", appID, wx.appID)
	}
	return string(plain), env
}

func post(t *testing.T, c *http.Client, base string, p push) (*http.Response, string) {
	t.Helper()
	return do(t, c, http.MethodPost, base+"/?"+p.q.Encode(), strings.NewReader(p.body))
}

// TestSafeModeVector sends the official vector N through the middleware
// over HTTP: the handler sees the plaintext JSON and the parsed message,
// and its reply comes back as a JSON envelope that verifies and decrypts.
func TestSafeModeVector(t *testing.T) {
	h := newHarness()
	h.setNow(time.Unix(1714112445, 0))
	var (
		seen    []byte
		typed   *message.Message
		cl      int64
		handled int
	)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = io.ReadAll(r.Body)
		cl = r.ContentLength
		typed, _ = message.FromContext(r.Context())
		handled++
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, vnReply)
	})
	srv := httptest.NewServer(middleware.Verify(vnToken, h.options(middleware.WithAES(vnAppID, vnKey))...)(next))
	defer srv.Close()

	target := srv.URL + "/recive?signature=" + vnSig + "&timestamp=" + vnTS + "&nonce=" + vnNonce +
		"&openid=" + vnOpenID + "&encrypt_type=aes&msg_signature=" + vnMsgSig
	for _, tt := range []struct {
		name, body string
		json       bool
	}{
		{"json", `{"ToUserName":"gh_97417a04a28d","Encrypt":"` + vnEnc + `"}`, true},
		{"xml", "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><Encrypt><![CDATA[" + vnEnc + "]]></Encrypt></xml>", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The same push twice would be a re-delivery; start afresh.
			srv.Config.Handler = middleware.Verify(vnToken, h.options(middleware.WithAES(vnAppID, vnKey))...)(next)
			handled = 0
			resp, got := do(t, srv.Client(), http.MethodPost, target, strings.NewReader(tt.body))
			_, results, _ := h.take()
			if resp.StatusCode != 200 || handled != 1 {
				t.Fatalf("status %d, handler ran %d times; body %q", resp.StatusCode, handled, got)
			}
			if string(seen) != vnMsg || cl != int64(len(vnMsg)) {
				t.Errorf("handler read %q (ContentLength %d), want the plaintext %q", seen, cl, vnMsg)
			}
			if typed == nil || typed.MsgType != "event" || typed.Event != "debug_demo" || typed.FromUserName != vnOpenID || string(typed.Raw) != vnMsg {
				t.Errorf("message in the context %+v", typed)
			}
			want := middleware.Result{Outcome: middleware.OutcomePass, Encrypted: true}
			if len(results) != 1 || results[0] != want {
				t.Errorf("results %+v, want %+v", results, want)
			}
			wantCT := "text/xml"
			if tt.json {
				wantCT = "application/json"
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, wantCT) {
				t.Errorf("Content-Type %q, want %s", ct, wantCT)
			}
			if resp.Header.Get("Content-Length") != strconv.Itoa(len(got)) {
				t.Errorf("Content-Length %q for %d bytes", resp.Header.Get("Content-Length"), len(got))
			}
			wx := wechat{vnToken, vnAppID, mustKey(t, vnKey)}
			plain, env := wx.open(t, []byte(got), tt.json)
			if plain != vnReply {
				t.Errorf("reply decrypts to %q, want %q", plain, vnReply)
			}
			if env.TimeStamp != 1714112445 || env.Nonce != vnNonce {
				t.Errorf("reply TimeStamp %d Nonce %q, want the clock's 1714112445 and the request's nonce", env.TimeStamp, env.Nonce)
			}
		})
	}
}

// badPadding encrypts a message whose PKCS#7 padding is wrong, with the
// key's IV, as the key's first 16 bytes.
func badPadding(t *testing.T, encodingAESKey string, lastByte byte) string {
	raw, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		t.Fatal(err)
	}
	msg := textMsg(1)
	buf := make([]byte, 16+4+len(msg)+len(testAppID))
	binary.BigEndian.PutUint32(buf[16:], uint32(len(msg)))
	copy(buf[20:], msg)
	copy(buf[20+len(msg):], testAppID)
	pad := 32 - len(buf)%32
	for range pad {
		buf = append(buf, byte(pad))
	}
	buf[len(buf)-1] = lastByte
	cipher.NewCBCEncrypter(block, raw[:16]).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf)
}

// TestSafeModeRejects sends broken safe-mode POSTs: each is answered 4xx
// with its outcome, the handler never runs, and neither the answer nor the
// log reveals the token or a key.
func TestSafeModeRejects(t *testing.T) {
	wx := wechat{testToken, testAppID, mustKey(t, testKey)}
	ts := vecTime.Unix()
	good := func() push { return wx.seal(t, ts, "n0nce", textMsg(1), false) }
	change := func(p push, kv ...string) push {
		q := url.Values{}
		for k, v := range p.q {
			q[k] = append([]string(nil), v...)
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "\x00" {
				q.Del(kv[i])
			} else {
				q.Set(kv[i], kv[i+1])
			}
		}
		p.q = q
		return p
	}
	// tamper flips one bit of the ciphertext, re-encoded; resign keeps
	// msg_signature valid, as only a holder of the token could.
	tamper := func(resign bool) push {
		p := good()
		var env struct{ Encrypt string }
		xml.Unmarshal([]byte(p.body), &env)
		raw, _ := base64.StdEncoding.DecodeString(env.Encrypt)
		raw[len(raw)-20] ^= 0x01
		enc := base64.StdEncoding.EncodeToString(raw)
		if resign {
			return wx.sealed(ts, "n0nce", enc, false)
		}
		p.body = strings.Replace(p.body, env.Encrypt, enc, 1)
		return p
	}
	other := func(w wechat, plain string) push { return w.seal(t, ts, "n0nce", plain, false) }
	signedEnc := func(enc string) push { return wx.sealed(ts, "n0nce", enc, false) }
	plainQ := signedQuery(testToken, strconv.FormatInt(ts, 10), "n0nce")

	tests := []struct {
		name    string
		p       push
		status  int
		outcome middleware.Outcome
		reason  string
	}{
		{"tampered ciphertext", tamper(false), 403, middleware.OutcomeBadMsgSignature, "msg_signature mismatch"},
		{"tampered and re-signed", tamper(true), 400, middleware.OutcomeBadEncrypt, "does not decrypt"},
		{"wrong AppID", other(wechat{testToken, "wxffffffffffffffff", wx.key}, textMsg(1)), 403, middleware.OutcomeWrongAppID, "another AppID"},
		{"wrong key", other(wechat{testToken, testAppID, mustKey(t, testOldKey)}, textMsg(1)), 400, middleware.OutcomeBadEncrypt, "does not decrypt"},
		{"wrong msg_signature", change(good(), "msg_signature", util.Signature(testToken, "1", "2", "3")), 403, middleware.OutcomeBadMsgSignature, "msg_signature mismatch"},
		{"msg_signature of another token", other(wechat{"guess", testAppID, wx.key}, textMsg(1)), 403, middleware.OutcomeBadSignature, "signature mismatch"},
		{"missing msg_signature", change(good(), "msg_signature", "\x00"), 400, middleware.OutcomeMissingParam, "missing msg_signature"},
		{"bad padding zero", signedEnc(badPadding(t, testKey, 0)), 400, middleware.OutcomeBadEncrypt, "does not decrypt"},
		{"bad padding 33", signedEnc(badPadding(t, testKey, 33)), 400, middleware.OutcomeBadEncrypt, "does not decrypt"},
		{"not base64", signedEnc("not*base64"), 400, middleware.OutcomeBadEncrypt, "does not decrypt"},
		{"not whole blocks", signedEnc(base64.StdEncoding.EncodeToString(make([]byte, 24))), 400, middleware.OutcomeBadEncrypt, "does not decrypt"},
		{"truncated body", push{good().q, good().body[:60]}, 400, middleware.OutcomeBadEncrypt, "no Encrypt"},
		{"truncated Encrypt", func() push {
			p := good()
			var env struct{ Encrypt string }
			xml.Unmarshal([]byte(p.body), &env)
			return signedEnc(env.Encrypt[:len(env.Encrypt)-44])
		}(), 400, middleware.OutcomeBadEncrypt, "does not decrypt"},
		{"aes with a plaintext body", push{good().q, textMsg(1)}, 400, middleware.OutcomeBadEncrypt, "no Encrypt"},
		{"aes with an empty body", push{good().q, ""}, 400, middleware.OutcomeBadEncrypt, "no Encrypt"},
		{"aes with an empty Encrypt", signedEnc(""), 400, middleware.OutcomeBadEncrypt, "no Encrypt"},
		{"compatible mode, tampered", func() push {
			p := tamper(false)
			p.body = strings.Replace(p.body, "</xml>", "<FromUserName>o1</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>forged</Content><MsgId>9</MsgId></xml>", 1)
			return p
		}(), 403, middleware.OutcomeBadMsgSignature, "msg_signature mismatch"},
		{"encrypted non-message", other(wx, "hello, not XML"), 400, middleware.OutcomeBadMessage, "not a WeChat push"},
		{"plaintext refused", push{plainQ, textMsg(1)}, 403, middleware.OutcomePlaintextRefused, "plaintext message refused"},
		{"raw refused", push{change(push{q: plainQ}, "encrypt_type", "raw").q, textMsg(1)}, 403, middleware.OutcomePlaintextRefused, "plaintext message refused"},
	}

	h := newHarness()
	srv := httptest.NewServer(middleware.Verify(testToken, h.options(middleware.WithAES(testAppID, testKey))...)(h.next()))
	defer srv.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, got := post(t, srv.Client(), srv.URL, tt.p)
			logs, results, calls := h.take()
			if resp.StatusCode != tt.status || calls != 0 {
				t.Fatalf("status %d with the handler run %d times, want %d and none; body %q", resp.StatusCode, calls, tt.status, got)
			}
			if len(results) != 1 || results[0].Outcome != tt.outcome {
				t.Errorf("results %+v, want %v", results, tt.outcome)
			}
			if !strings.Contains(got, tt.reason) {
				t.Errorf("answer %q does not say %q", got, tt.reason)
			}
			for _, secret := range []string{testToken, testKey, testOldKey} {
				if strings.Contains(got, secret) || strings.Contains(logs, secret) {
					t.Errorf("secret %q leaked: answer %q, log %q", secret, got, logs)
				}
			}
		})
	}

	// And the good request passes, so the cases above fail for their flaw.
	resp, got := post(t, srv.Client(), srv.URL, good())
	if _, _, calls := h.take(); resp.StatusCode != 200 || calls != 1 {
		t.Fatalf("the good push: status %d, handler ran %d times; %q", resp.StatusCode, calls, got)
	}
	if plain, _ := wx.open(t, []byte(got), false); plain != "handled" {
		t.Errorf("reply %q, want handled", plain)
	}
}

// TestSafeModeNoReply checks that "" and "success" go out unencrypted, as
// WeChat asks, and so do error statuses; any other reply is encrypted.
func TestSafeModeNoReply(t *testing.T) {
	wx := wechat{testToken, testAppID, mustKey(t, testKey)}
	tests := []struct {
		name      string
		status    int // 0: not set
		reply     string
		encrypted bool
	}{
		{"empty", 0, "", false},
		{"empty 200", 200, "", false},
		{"success", 0, "success", false},
		{"success with newline", 0, "success\n", false},
		{"text", 0, "<xml>reply</xml>", true},
		{"Success is a reply", 0, "Success", true},
		{"server error", 500, "oops", false},
		{"not found", 404, "gone", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness()
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-App", "kept")
				if tt.status != 0 {
					w.WriteHeader(tt.status)
				}
				io.WriteString(w, tt.reply)
			})
			mw := middleware.Verify(testToken, h.options(middleware.WithAES(testAppID, testKey))...)
			srv := httptest.NewServer(mw(next))
			defer srv.Close()
			resp, got := post(t, srv.Client(), srv.URL, wx.seal(t, vecTime.Unix(), "n", textMsg(int64(i)), false))
			want := tt.status
			if want == 0 {
				want = 200
			}
			if resp.StatusCode != want {
				t.Fatalf("status %d, want %d", resp.StatusCode, want)
			}
			if resp.Header.Get("X-App") != "kept" {
				t.Errorf("the handler's header was lost: %v", resp.Header)
			}
			if !tt.encrypted {
				if got != tt.reply {
					t.Errorf("answer %q, want %q as written", got, tt.reply)
				}
				return
			}
			if plain, _ := wx.open(t, []byte(got), false); plain != tt.reply {
				t.Errorf("reply decrypts to %q, want %q", plain, tt.reply)
			}
		})
	}
}

// TestSafeModeRotation covers a change of EncodingAESKey and of token: a
// message under the previous one is accepted and answered with it.
func TestSafeModeRotation(t *testing.T) {
	const oldToken = "oldT0ken"
	newKey, oldKey := mustKey(t, testKey), mustKey(t, testOldKey)
	tests := []struct {
		name     string
		sender   wechat
		opts     []middleware.Option
		status   int
		prevKey  bool
		prevTok  bool
		outcome  middleware.Outcome
		replyKey *msgcrypt.Key
	}{
		{"new key", wechat{testToken, testAppID, newKey},
			[]middleware.Option{middleware.WithAES(testAppID, testKey), middleware.WithPreviousAESKey(testOldKey)},
			200, false, false, middleware.OutcomePass, newKey},
		{"old key during rotation", wechat{testToken, testAppID, oldKey},
			[]middleware.Option{middleware.WithAES(testAppID, testKey), middleware.WithPreviousAESKey(testOldKey)},
			200, true, false, middleware.OutcomePass, oldKey},
		{"old key with WithAESKeys", wechat{testToken, testAppID, oldKey},
			[]middleware.Option{middleware.WithAESKeys(testAppID, newKey, oldKey)},
			200, true, false, middleware.OutcomePass, oldKey},
		{"old key after rotation", wechat{testToken, testAppID, oldKey},
			[]middleware.Option{middleware.WithAES(testAppID, testKey), middleware.WithPreviousAESKey("")},
			400, false, false, middleware.OutcomeBadEncrypt, nil},
		{"old token and old key", wechat{oldToken, testAppID, oldKey},
			[]middleware.Option{middleware.WithAES(testAppID, testKey), middleware.WithPreviousAESKey(testOldKey), middleware.WithPreviousToken(oldToken)},
			200, true, true, middleware.OutcomePass, oldKey},
		{"old token after rotation", wechat{oldToken, testAppID, newKey},
			[]middleware.Option{middleware.WithAES(testAppID, testKey)},
			403, false, false, middleware.OutcomeBadSignature, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness()
			srv := httptest.NewServer(middleware.Verify(testToken, h.options(tt.opts...)...)(h.next()))
			defer srv.Close()
			resp, got := post(t, srv.Client(), srv.URL, tt.sender.seal(t, vecTime.Unix(), "n", textMsg(7), false))
			_, results, _ := h.take()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %q", resp.StatusCode, tt.status, got)
			}
			if len(results) != 1 || results[0].Outcome != tt.outcome || results[0].PreviousAESKey != tt.prevKey || results[0].PreviousToken != tt.prevTok {
				t.Errorf("results %+v, want %v with PreviousAESKey %v, PreviousToken %v", results, tt.outcome, tt.prevKey, tt.prevTok)
			}
			if tt.replyKey == nil {
				return
			}
			// The reply must open with the sender's own token and key.
			plain, _ := wechat{tt.sender.token, testAppID, tt.replyKey}.open(t, []byte(got), false)
			if plain != "handled" {
				t.Errorf("reply %q", plain)
			}
		})
	}
}

// TestSafeModePlaintext covers the choice left to WithAllowPlaintext, and
// the GET handshake, which is the same in every mode.
func TestSafeModePlaintext(t *testing.T) {
	ts := strconv.FormatInt(vecTime.Unix(), 10)
	q := signedQuery(testToken, ts, "n")
	for _, tt := range []struct {
		name   string
		opts   []middleware.Option
		status int
	}{
		{"plain mode", nil, 200},
		{"safe mode", []middleware.Option{middleware.WithAES(testAppID, testKey)}, 403},
		{"safe mode, plaintext allowed", []middleware.Option{middleware.WithAES(testAppID, testKey), middleware.WithAllowPlaintext(true)}, 200},
		{"safe mode, plaintext allowed then not", []middleware.Option{middleware.WithAES(testAppID, testKey), middleware.WithAllowPlaintext(true), middleware.WithAllowPlaintext(false)}, 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness()
			srv := httptest.NewServer(middleware.Verify(testToken, h.options(tt.opts...)...)(h.next()))
			defer srv.Close()
			resp, got := do(t, srv.Client(), "POST", srv.URL+"/?"+q.Encode(), strings.NewReader(textMsg(1)))
			_, _, calls := h.take()
			if resp.StatusCode != tt.status || (calls == 1) != (tt.status == 200) {
				t.Fatalf("status %d, handler ran %d times; want %d", resp.StatusCode, calls, tt.status)
			}
			if tt.status == 200 && got != "handled" {
				t.Errorf("a plaintext push was answered %q, want the handler's plaintext reply", got)
			}
			resp, got = do(t, srv.Client(), "GET", srv.URL+"/?"+q.Encode()+"&echostr=e42", nil)
			if resp.StatusCode != 200 || got != "e42" {
				t.Errorf("handshake answered %d %q, want 200 e42", resp.StatusCode, got)
			}
		})
	}
}

func TestAESOptionPanics(t *testing.T) {
	tests := []struct {
		name string
		opt  middleware.Option
		want string // in the panic
	}{
		{"short key", middleware.WithAES(testAppID, "abc"), "must be 43 characters"},
		{"bad character", middleware.WithAES(testAppID, strings.Repeat("A", 42)+"="), "is not one of"},
		{"empty AppID", middleware.WithAES("", testKey), "AppID is empty"},
		{"bad previous key", middleware.WithPreviousAESKey(testKey[:42] + "!"), "WithPreviousAESKey"},
		{"previous key alone", middleware.WithPreviousAESKey(testOldKey), "needs a current one"},
		{"nil key", middleware.WithAESKeys(testAppID, nil, nil), "current key is nil"},
		{"WithAESKeys empty AppID", middleware.WithAESKeys("", mustKey(t, testKey), nil), "AppID is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg := fmt.Sprint(r)
				if r == nil || !strings.Contains(msg, tt.want) {
					t.Errorf("panic %v, want one saying %q", r, tt.want)
				}
				if strings.Contains(msg, testKey[:20]) || strings.Contains(msg, testOldKey[:20]) {
					t.Errorf("the panic shows the key: %s", msg)
				}
			}()
			middleware.Verify(testToken, tt.opt)
		})
	}
}

func TestOutcomeLabels(t *testing.T) {
	for o, want := range map[middleware.Outcome]struct {
		label  string
		status int
	}{
		middleware.OutcomePlaintextRefused: {"plaintext_refused", 403},
		middleware.OutcomeNoAESKey:         {"no_aes_key", 400},
		middleware.OutcomeBadMsgSignature:  {"bad_msg_signature", 403},
		middleware.OutcomeBadEncrypt:       {"bad_encrypt", 400},
		middleware.OutcomeWrongAppID:       {"wrong_appid", 403},
		middleware.OutcomeBadMessage:       {"bad_message", 400},
	} {
		if o.String() != want.label || o.Status() != want.status || o.Accepted() {
			t.Errorf("%d: %q %d %v, want %q %d not accepted", o, o.String(), o.Status(), o.Accepted(), want.label, want.status)
		}
	}
}
