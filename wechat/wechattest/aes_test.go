package wechattest

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/middleware/msgcrypt"
	"github.com/wxcentral/wxcentral/util"
)

// Official vector N (wechat-platform.md §10.1).
const (
	vnToken   = "AAAAA"
	vnKey     = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	vnAppID   = "wxba5fad812f8e6fb9"
	vnTS      = "1714112445"
	vnNonce   = "415670741"
	vnRandom  = "a8eedb185eb2fecf"
	vnMsg     = `{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}`
	vnEncrypt = "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="
	vnMsgSig  = "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"

	vnReplyEncrypt = "ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ=="
	vnReplyTS      = "1713424427"
	vnReplySig     = "1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1"
	vnReplyMsg     = `{"demo_resp":"good luck"}`
)

// Settings of the safe-mode tests below: distinct from each other, so that
// an output containing one of them is a leak, not a coincidence.
const (
	safeToken = "tok3nSafe"
	safeAppID = "wx0a1b2c3d4e5f6789"
	safeKey   = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	otherKey  = "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkj"
	otherApp  = "wxffffffffffffffff"
)

func vnSealer(t testing.TB) *AESSealer {
	t.Helper()
	s, err := NewAESSealer(vnToken, vnAppID, vnKey)
	if err != nil {
		t.Fatal(err)
	}
	s.Rand = strings.NewReader(vnRandom)
	return s
}

func TestAESSealerSealVectorN(t *testing.T) {
	tests := []struct {
		name     string
		plain    string
		compat   bool
		wantBody string
	}{
		{"JSON safe", vnMsg, false, `{"ToUserName":"gh_97417a04a28d","Encrypt":"` + vnEncrypt + `"}`},
		{"JSON compatible", vnMsg, true, ""},
		{"XML safe", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := vnSealer(t)
			s.Compatible = tt.compat
			body, sig, err := s.Seal([]byte(tt.plain), vnTS, vnNonce)
			if tt.plain == "" {
				// An XML push with the same random prefix: the envelope
				// is XML and names the push's ToUserName.
				m := Message{ToUserName: "gh_97417a04a28d", FromUserName: "o9", CreateTime: 1714112445, MsgType: "text", Content: "hi", MsgID: 1}
				body, sig, err = s.Seal(m.XML(), vnTS, vnNonce)
				if err != nil {
					t.Fatal(err)
				}
				var env struct {
					XMLName    xml.Name `xml:"xml"`
					ToUserName string
					Encrypt    string
					Content    string
				}
				if err := xml.Unmarshal(body, &env); err != nil || env.ToUserName != "gh_97417a04a28d" || env.Content != "" {
					t.Fatalf("envelope %s: %+v, %v", body, env, err)
				}
				if sig != msgcrypt.Sign(vnToken, vnTS, vnNonce, env.Encrypt) {
					t.Errorf("msg_signature %s does not sign the envelope's Encrypt", sig)
				}
				k, _ := msgcrypt.ParseKey(vnKey)
				got, app, err := k.Decrypt(env.Encrypt)
				if err != nil || app != vnAppID || !bytes.Equal(got, m.XML()) {
					t.Errorf("Encrypt decrypts to %q for %q, %v", got, app, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sig != vnMsgSig {
				t.Errorf("msg_signature = %s, want the official %s", sig, vnMsgSig)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("body =\n%s\nwant\n%s", body, tt.wantBody)
			}
			if tt.compat {
				var m map[string]any
				if err := json.Unmarshal(body, &m); err != nil {
					t.Fatal(err)
				}
				if m["Encrypt"] != vnEncrypt || m["debug_str"] != "hello world" || m["CreateTime"] != float64(1714112445) {
					t.Errorf("compatible body lacks the plaintext or Encrypt: %s", body)
				}
			}
		})
	}
}

func TestAESSealerOpenVectorN(t *testing.T) {
	xmlReply := "<xml><Encrypt><![CDATA[" + vnReplyEncrypt + "]]></Encrypt><MsgSignature><![CDATA[" + vnReplySig +
		"]]></MsgSignature><TimeStamp>" + vnReplyTS + "</TimeStamp><Nonce><![CDATA[" + vnNonce + "]]></Nonce></xml>"
	jsonReply := `{"Encrypt":"` + vnReplyEncrypt + `","MsgSignature":"` + vnReplySig + `","TimeStamp":` + vnReplyTS + `,"Nonce":"` + vnNonce + `"}`
	for _, reply := range []string{xmlReply, jsonReply} {
		got, err := vnSealer(t).Open([]byte(reply))
		if err != nil || string(got) != vnReplyMsg {
			t.Errorf("Open(%.40s…) = %q, %v; want %s", reply, got, err, vnReplyMsg)
		}
	}
}

// sealReply builds an encrypted reply envelope the way a developer's server
// does, with the given token, key and AppID.
func sealReply(t testing.TB, token, key, appID string, msg []byte) []byte {
	t.Helper()
	k, err := msgcrypt.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := &msgcrypt.Crypter{Token: token, AppID: appID, Key: k, Rand: strings.NewReader(vnRandom)}
	env, err := c.Seal(msgcrypt.Opened{}, msg, 1713424427, "4711")
	if err != nil {
		t.Fatal(err)
	}
	return env.XML()
}

func TestAESSealerOpen(t *testing.T) {
	plainReply := []byte("<xml><ToUserName><![CDATA[o1]]></ToUserName><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content></xml>")
	good := sealReply(t, safeToken, safeKey, safeAppID, plainReply)
	tests := []struct {
		name    string
		reply   []byte
		compat  bool
		want    []byte // on success
		wantIs  error
		wantMsg string
	}{
		{"encrypted", good, false, plainReply, nil, ""},
		{"encrypted, compatible mode", good, true, plainReply, nil, ""},
		{"plaintext XML", plainReply, false, nil, ErrReplyNotEncrypted, "the reply is not encrypted: in safe mode a reply other than"},
		{"plaintext XML, compatible mode", plainReply, true, plainReply, nil, ""},
		{"not XML", []byte("hello"), false, nil, ErrReplyNotEncrypted, `got "hello"`},
		{"empty Encrypt", []byte("<xml><Encrypt></Encrypt></xml>"), false, nil, ErrReplyNotEncrypted, ""},
		{"other token", sealReply(t, "otherToken", safeKey, safeAppID, plainReply), false, nil, msgcrypt.ErrSignature,
			"MsgSignature \"" /* the quoted signature follows */},
		{"no MsgSignature or Nonce", []byte("<xml><Encrypt>abc</Encrypt><TimeStamp>1</TimeStamp></xml>"), false, nil,
			msgcrypt.ErrSignature, "the encrypted reply has no MsgSignature, Nonce"},
		{"other key", sealReply(t, safeToken, otherKey, safeAppID, plainReply), false, nil, msgcrypt.ErrPadding,
			"the reply does not decrypt with this EncodingAESKey"},
		{"other AppID", sealReply(t, safeToken, safeKey, otherApp, plainReply), true, nil, msgcrypt.ErrAppID,
			`the reply is encrypted for AppID "` + otherApp + `", want "` + safeAppID + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewAESSealer(safeToken, safeAppID, safeKey)
			if err != nil {
				t.Fatal(err)
			}
			s.Compatible = tt.compat
			got, err := s.Open(tt.reply)
			if tt.wantIs == nil {
				if err != nil || !bytes.Equal(got, tt.want) {
					t.Fatalf("Open = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.wantIs) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Open error = %v; want one wrapping %v and containing %q", err, tt.wantIs, tt.wantMsg)
			}
			if strings.Contains(err.Error(), safeToken) || strings.Contains(err.Error(), safeKey) {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestNewAESSealerErrors(t *testing.T) {
	tests := []struct {
		name, token, appID, key, want string
	}{
		{"short key", safeToken, safeAppID, safeKey[:42], "must be 43 characters, got 42"},
		{"bad character", safeToken, safeAppID, safeKey[:42] + "+", "character 43 is not one of [a-zA-Z0-9]"},
		{"no AppID", safeToken, "", safeKey, "no AppID"},
		{"no token", "", safeAppID, safeKey, "no Token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewAESSealer(tt.token, tt.appID, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.key[:20]) {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
	var zero AESSealer
	if _, _, err := zero.Seal([]byte("<xml/>"), "1", "2"); err == nil {
		t.Error("the zero AESSealer sealed a message")
	}
	if _, err := zero.Open([]byte("<xml/>")); err == nil {
		t.Error("the zero AESSealer opened a reply")
	}
}

// echoReply answers a text message with "you said: <content>", through the
// middleware, which hands it the decrypted message.
func echoReply(w http.ResponseWriter, r *http.Request) {
	m, ok := message.FromContext(r.Context())
	if !ok || m.MsgType != "text" {
		io.WriteString(w, "success")
		return
	}
	w.Header().Set("Content-Type", message.ContentType)
	w.Write(m.ReplyText(time.Now(), "you said: "+m.Content))
}

// countRequests counts the requests that reach h.
func countRequests(h http.Handler, n *int, mu *sync.Mutex) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*n++
		mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// TestSimulateMiddlewareSafeMode runs Simulate over HTTP against the
// middleware's safe mode: the end-to-end acceptance.
func TestSimulateMiddlewareSafeMode(t *testing.T) {
	success := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "success") })
	tests := []struct {
		name    string
		server  []middleware.Option // the server's safe-mode settings
		handler http.Handler        // nil: echoReply
		cfg     SimulateConfig      // URL and Token are filled in
		want    bool
		wantOut []string
		noCalls bool // Simulate must not send anything
	}{
		{"right key", []middleware.Option{middleware.WithAES(safeAppID, safeKey)}, nil,
			SimulateConfig{AESKey: safeKey, AppID: safeAppID}, true, []string{
				"mode: safe (安全模式), AppID " + safeAppID + ": messages encrypted",
				"PASS check:",
				`PASS message: "hello" delivered; the reply was encrypted (MsgSignature, key and AppID check out) and decrypts to text reply "you said: hello"`}, false},
		{"right key, no reply", []middleware.Option{middleware.WithAES(safeAppID, safeKey)}, success,
			SimulateConfig{AESKey: safeKey, AppID: safeAppID}, true, []string{
				`PASS message: "hello" delivered, answered "success" (no reply to the user)`}, false},
		{"compatible mode", []middleware.Option{middleware.WithAES(safeAppID, safeKey)}, nil,
			SimulateConfig{AESKey: safeKey, AppID: safeAppID, Compatible: true}, true, []string{
				"mode: compatible (兼容模式), AppID " + safeAppID,
				`decrypts to text reply "you said: hello"`}, false},
		{"wrong key on the server", []middleware.Option{middleware.WithAES(safeAppID, otherKey)}, nil,
			SimulateConfig{AESKey: safeKey, AppID: safeAppID}, false, []string{
				"PASS check:",
				"FAIL message: got HTTP 400: Encrypt does not decrypt: check the EncodingAESKey — the signed GET passed, so the token matches: is the EncodingAESKey the same on both sides (and the AppID)?"}, false},
		{"wrong AppID on the server", []middleware.Option{middleware.WithAES(otherApp, safeKey)}, nil,
			SimulateConfig{AESKey: safeKey, AppID: safeAppID}, false, []string{
				"FAIL message: got HTTP 403: the message is for another AppID: check the configured AppID — is the AppID the same on both sides?"}, false},
		{"server in plain mode", nil, nil,
			SimulateConfig{AESKey: safeKey, AppID: safeAppID}, false, []string{
				"FAIL message: got HTTP 400: encrypt_type=aes, but this server has no EncodingAESKey",
				"— the server is in plain mode: give it the same EncodingAESKey and AppID, or simulate in plain mode"}, false},
		{"client in plain mode", []middleware.Option{middleware.WithAES(safeAppID, safeKey)}, nil,
			SimulateConfig{}, false, []string{
				"mode: plain (明文模式)",
				"FAIL message: got HTTP 403: plaintext message refused",
				"— the server takes encrypted messages only: simulate in safe mode with its EncodingAESKey and AppID (-aes-key, -appid)"}, false},
		{"key without AppID", []middleware.Option{middleware.WithAES(safeAppID, safeKey)}, nil,
			SimulateConfig{AESKey: safeKey}, false, []string{
				"FAIL setup: the EncodingAESKey (-aes-key) needs the AppID (-appid) too"}, true},
		{"AppID without key", []middleware.Option{middleware.WithAES(safeAppID, safeKey)}, nil,
			SimulateConfig{AppID: safeAppID}, false, []string{
				"FAIL setup: the AppID (-appid) needs the EncodingAESKey (-aes-key) too"}, true},
		{"malformed key", []middleware.Option{middleware.WithAES(safeAppID, safeKey)}, nil,
			SimulateConfig{AESKey: safeKey[:40], AppID: safeAppID}, false, []string{
				"FAIL setup: wechattest: EncodingAESKey: msgcrypt: bad EncodingAESKey: must be 43 characters, got 40"}, true},
		{"compatible without key", nil, nil,
			SimulateConfig{Compatible: true}, false, []string{
				"FAIL setup: compatible mode needs the EncodingAESKey (-aes-key) and the AppID (-appid)"}, true},
		{"Sealer and key", nil, nil,
			SimulateConfig{AESKey: safeKey, AppID: safeAppID, Sealer: base64Sealer{safeToken}}, false, []string{
				"FAIL setup: give either a Sealer or the EncodingAESKey and AppID, not both"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.handler
			if h == nil {
				h = http.HandlerFunc(echoReply)
			}
			var (
				mu    sync.Mutex
				calls int
			)
			opts := append([]middleware.Option{middleware.WithLogger(slog.New(slog.DiscardHandler))}, tt.server...)
			ts := httptest.NewServer(countRequests(middleware.Verify(safeToken, opts...)(h), &calls, &mu))
			defer ts.Close()
			cfg := tt.cfg
			cfg.URL, cfg.Token, cfg.Message, cfg.Deliveries = ts.URL, safeToken, "hello", 1
			var out bytes.Buffer
			got := Simulate(context.Background(), &out, cfg)
			if got != tt.want {
				t.Errorf("Simulate = %v, want %v; output:\n%s", got, tt.want, &out)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, &out)
				}
			}
			lines := 3
			if tt.noCalls {
				lines = 1
			}
			if n := strings.Count(out.String(), "\n"); n != lines {
				t.Errorf("%d lines, want %d:\n%s", n, lines, &out)
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.noCalls && calls != 0 {
				t.Errorf("a bad configuration still sent %d requests", calls)
			}
			if !tt.noCalls && calls != 2 {
				t.Errorf("%d requests reached the server, want the check and one message", calls)
			}
			for _, secret := range []string{safeToken, safeKey, otherKey} {
				if strings.Contains(out.String(), secret) {
					t.Errorf("output leaks a secret (%.4s…):\n%s", secret, &out)
				}
			}
		})
	}
}

// pushRecord is what safeDeveloper saw of one push.
type pushRecord struct {
	query map[string]string
	body  string
	plain string
}

// safeDeveloper is a developer's server in safe mode built on msgcrypt
// alone, whose reply can be made wrong in the ways a real server gets it
// wrong.
type safeDeveloper struct {
	t     *testing.T
	reply string // "encrypted", "plaintext", "other key", "other AppID", "other token"

	mu     sync.Mutex
	pushes []pushRecord
}

func (d *safeDeveloper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !util.VerifySignature(q.Get("signature"), safeToken, q.Get("timestamp"), q.Get("nonce")) {
		http.Error(w, "signature mismatch", http.StatusForbidden)
		return
	}
	if r.Method == http.MethodGet {
		io.WriteString(w, q.Get("echostr"))
		return
	}
	body, _ := io.ReadAll(r.Body)
	env, err := msgcrypt.ParseEnvelope(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c, err := msgcrypt.New(safeToken, safeAppID, safeKey)
	if err != nil {
		d.t.Error(err)
		return
	}
	o, err := c.Open(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), env.Encrypt)
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	d.mu.Lock()
	d.pushes = append(d.pushes, pushRecord{
		query: map[string]string{"encrypt_type": q.Get("encrypt_type"), "openid": q.Get("openid"), "msg_signature": q.Get("msg_signature")},
		body:  string(body), plain: string(o.Msg)})
	d.mu.Unlock()
	m, err := message.Parse(o.Msg)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// A fixed CreateTime makes the wrong replies below the same every run.
	plain := m.ReplyText(time.Unix(1714112446, 0), "you said: "+m.Content)
	switch d.reply {
	case "encrypted":
		env, err := c.Seal(o, plain, time.Now().Unix(), q.Get("nonce"))
		if err != nil {
			d.t.Error(err)
		}
		w.Write(env.XML())
	case "plaintext":
		w.Write(plain)
	case "other key":
		w.Write(sealReply(d.t, safeToken, otherKey, safeAppID, plain))
	case "other AppID":
		w.Write(sealReply(d.t, safeToken, safeKey, otherApp, plain))
	case "other token":
		w.Write(sealReply(d.t, "otherToken", safeKey, safeAppID, plain))
	default:
		d.t.Errorf("unknown reply mode %q", d.reply)
	}
}

// TestSimulateSafeReplies checks what Simulate makes of the replies of a
// server that gets safe mode partly right.
func TestSimulateSafeReplies(t *testing.T) {
	tests := []struct {
		reply   string
		compat  bool
		want    bool
		wantOut string
	}{
		{"encrypted", false, true, `decrypts to text reply "you said: hello there"`},
		{"encrypted", true, true, `decrypts to text reply "you said: hello there"`},
		{"plaintext", false, false, `FAIL message: safe mode: the reply is not encrypted: in safe mode a reply other than "" or "success" must be the envelope`},
		{"plaintext", true, true, `the reply was plaintext (fine in compatible mode, not in safe mode): text reply "you said: hello there"`},
		{"other key", false, false, "FAIL message: safe mode: the reply does not decrypt with this EncodingAESKey: msgcrypt: bad PKCS#7 padding: pad byte 167 — is the EncodingAESKey the same on both sides?"},
		{"other AppID", false, false, `the reply is encrypted for AppID "` + otherApp + `", want "` + safeAppID + `" — is the AppID the same on both sides?`},
		{"other token", false, false, "is not the sha1 of the sorted token, TimeStamp 1713424427, Nonce \"4711\" and Encrypt — is the token the same on both sides? It signs the reply's MsgSignature too"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s compatible=%v", tt.reply, tt.compat), func(t *testing.T) {
			d := &safeDeveloper{t: t, reply: tt.reply}
			ts := httptest.NewServer(d)
			defer ts.Close()
			var out bytes.Buffer
			got := Simulate(context.Background(), &out, SimulateConfig{
				URL: ts.URL + "/wechat", Token: safeToken, AESKey: safeKey, AppID: safeAppID,
				Compatible: tt.compat, Message: "hello there", Deliveries: 1})
			if got != tt.want {
				t.Errorf("Simulate = %v, want %v; output:\n%s", got, tt.want, &out)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, &out)
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if len(d.pushes) != 1 {
				t.Fatalf("%d pushes opened, want 1", len(d.pushes))
			}
			p := d.pushes[0]
			if p.query["encrypt_type"] != "aes" || p.query["openid"] != DefaultOpenID || p.query["msg_signature"] == "" {
				t.Errorf("query %v, want encrypt_type=aes, openid and msg_signature", p.query)
			}
			if !strings.Contains(p.plain, "<Content><![CDATA[hello there]]></Content>") {
				t.Errorf("decrypted push %q lacks the message", p.plain)
			}
			if inClear := strings.Contains(p.body, "hello there"); inClear != tt.compat {
				t.Errorf("message text in the clear = %v, want %v (compatible=%v): %s", inClear, tt.compat, tt.compat, p.body)
			}
			if !strings.Contains(p.body, "<ToUserName><![CDATA["+DefaultOfficialAccount+"]]></ToUserName>") {
				t.Errorf("envelope lacks ToUserName: %s", p.body)
			}
		})
	}
}

func BenchmarkAESSealerSeal(b *testing.B) {
	s, err := NewAESSealer(safeToken, safeAppID, safeKey)
	if err != nil {
		b.Fatal(err)
	}
	plain := TextMessage("hello").XML()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Seal(plain, "1714112445", "415670741"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAESSealerOpen(b *testing.B) {
	s, err := NewAESSealer(safeToken, safeAppID, safeKey)
	if err != nil {
		b.Fatal(err)
	}
	reply := sealReply(b, safeToken, safeKey, safeAppID, []byte("<xml><MsgType>text</MsgType><Content>hi</Content></xml>"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Open(reply); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSendEncryptedTooOften covers a server that encrypts a reply WeChat
// expects in plaintext, or encrypts it twice.
func TestSendEncryptedTooOften(t *testing.T) {
	plainReply := []byte("<xml><ToUserName><![CDATA[" + DefaultOpenID + "]]></ToUserName><FromUserName><![CDATA[" + DefaultOfficialAccount +
		"]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content></xml>")
	once := sealReply(t, safeToken, safeKey, safeAppID, plainReply)
	twice := sealReply(t, safeToken, safeKey, safeAppID, once)
	tests := []struct {
		name    string
		safe    bool
		reply   []byte
		wantErr string
	}{
		{"plain message, plain reply", false, plainReply, ""},
		{"plain message, encrypted reply", false, once,
			"the reply is encrypted, but the message was sent in plain mode: WeChat cannot read it; encrypt replies only to messages that came with encrypt_type=aes"},
		{"safe message, encrypted reply", true, once, ""},
		{"safe message, reply encrypted twice", true, twice,
			"the decrypted reply is itself an encrypted envelope: the server encrypted its reply twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(tt.reply) }))
			defer ts.Close()
			cb := &Callback{URL: ts.URL, Token: safeToken, Deliveries: 1}
			if tt.safe {
				s, err := NewAESSealer(safeToken, safeAppID, safeKey)
				if err != nil {
					t.Fatal(err)
				}
				cb.Sealer = s
			}
			got, err := cb.Send(context.Background(), TextMessage("hi"))
			if tt.wantErr == "" {
				if err != nil || !bytes.Equal(got, plainReply) {
					t.Fatalf("Send = %q, %v; want the plaintext reply", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Send error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
