package wechattest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/util"
)

const callbackToken = "AAAAA"

// inbound is the part of a pushed message the test handler reads.
type inbound struct {
	ToUserName   string
	FromUserName string
	CreateTime   int64
	MsgType      string
	Content      string
	MsgID        int64 `xml:"MsgId"`
	Event        string
	EventKey     string
}

// developer is a tiny developer server that checks signatures the way the
// middleware must: GET echoes echostr, POST answers a text message with a
// text reply and anything else with "success".
type developer struct {
	token  string
	mu     sync.Mutex
	got    []inbound
	query  []map[string]string
	stalls atomic.Int32 // POSTs still to stall until the client gives up
}

func (d *developer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !util.VerifySignature(q.Get("signature"), d.token, q.Get("timestamp"), q.Get("nonce")) {
		http.Error(w, "signature mismatch", http.StatusForbidden)
		return
	}
	if r.Method == http.MethodGet {
		io.WriteString(w, q.Get("echostr"))
		return
	}
	// Read the body first: only then does net/http notice that the client
	// hung up and cancel r.Context().
	body, _ := io.ReadAll(r.Body)
	if d.stalls.Add(-1) >= 0 {
		<-r.Context().Done()
		return
	}
	var m inbound
	if err := xml.Unmarshal(body, &m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	d.got = append(d.got, m)
	d.query = append(d.query, map[string]string{"openid": q.Get("openid"), "encrypt_type": q.Get("encrypt_type"),
		"msg_signature": q.Get("msg_signature"), "timestamp": q.Get("timestamp")})
	d.mu.Unlock()
	if m.MsgType != "text" {
		io.WriteString(w, "success")
		return
	}
	fmt.Fprintf(w, "<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"+
		"<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[echo: %s]]></Content></xml>",
		m.FromUserName, m.ToUserName, m.CreateTime, strings.ReplaceAll(m.Content, "]]>", "]]]]><![CDATA[>"))
}

func newDeveloper(t *testing.T) (*developer, *httptest.Server) {
	d := &developer{token: callbackToken}
	ts := httptest.NewServer(d)
	t.Cleanup(ts.Close)
	return d, ts
}

func TestVerify(t *testing.T) {
	_, ts := newDeveloper(t)
	tests := []struct {
		name    string
		token   string
		handler http.Handler
		wantErr string
	}{
		{"right token", callbackToken, nil, ""},
		{"wrong token", "BBBBB", nil, "got HTTP 403: signature mismatch"},
		{"echo with newline", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.URL.Query().Get("echostr")+"\n")
		}), ""},
		{"wrong echo", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "success")
		}), `answered "success", not the echostr`},
		{"empty echo", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), "empty body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := ts.URL
			if tt.handler != nil {
				s := httptest.NewServer(tt.handler)
				defer s.Close()
				u = s.URL
			}
			err := (&Callback{URL: u + "/wechat", Token: tt.token}).Verify(context.Background())
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Verify error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestVerifyBadURL(t *testing.T) {
	for _, u := range []string{"ftp://example.com/", "://", "example.com/wechat"} {
		if err := (&Callback{URL: u, Token: "t"}).Verify(context.Background()); err == nil {
			t.Errorf("Verify(%q) succeeded", u)
		}
	}
}

func TestSend(t *testing.T) {
	d, ts := newDeveloper(t)
	clock := NewPlatform(WithClock(t0))
	c := &Callback{URL: ts.URL + "/?keep=1", Token: callbackToken, Clock: clock}
	reply, err := c.Send(context.Background(), TextMessage("hi ]]> there"))
	if err != nil {
		t.Fatalf("Send: %v (reply %q)", err, reply)
	}
	var r inbound
	if err := xml.Unmarshal(reply, &r); err != nil || r.Content != "echo: hi ]]> there" {
		t.Errorf("reply %q: %+v, %v", reply, r, err)
	}
	reply, err = c.Send(context.Background(), EventMessage("subscribe", "qrscene_1"))
	if err != nil || string(reply) != "success" {
		t.Fatalf("event: %q, %v", reply, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.got) != 2 {
		t.Fatalf("server saw %d messages", len(d.got))
	}
	text, ev := d.got[0], d.got[1]
	if text.MsgType != "text" || text.Content != "hi ]]> there" || text.MsgID <= 0 ||
		text.FromUserName != DefaultOpenID || text.ToUserName != DefaultOfficialAccount || text.CreateTime != t0.Unix() {
		t.Errorf("text message as received: %+v", text)
	}
	if ev.MsgType != "event" || ev.Event != "subscribe" || ev.EventKey != "qrscene_1" || ev.MsgID != 0 {
		t.Errorf("event as received: %+v", ev)
	}
	if q := d.query[0]; q["openid"] != DefaultOpenID || q["encrypt_type"] != "" || q["timestamp"] != fmt.Sprint(t0.Unix()) {
		t.Errorf("query %v", q)
	}
}

func TestSendChecksReply(t *testing.T) {
	tests := []struct {
		name, reply, wantErr string
	}{
		{"empty", "", ""},
		{"success", "success", ""},
		{"not XML", "ok", "neither"},
		{"wrong root", "<reply><ToUserName>x</ToUserName></reply>", "root element"},
		{"wrong recipient", "<xml><ToUserName>someone</ToUserName><FromUserName>" + DefaultOfficialAccount +
			"</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>", "want the sender"},
		{"wrong sender", "<xml><ToUserName>" + DefaultOpenID + "</ToUserName><FromUserName>gh_other</FromUserName>" +
			"<CreateTime>1</CreateTime><MsgType>text</MsgType></xml>", "want the account"},
		{"no MsgType", "<xml><ToUserName>" + DefaultOpenID + "</ToUserName><FromUserName>" + DefaultOfficialAccount +
			"</FromUserName><CreateTime>1</CreateTime></xml>", "no MsgType"},
		{"empty CreateTime", "<xml><ToUserName>" + DefaultOpenID + "</ToUserName><FromUserName>" + DefaultOfficialAccount +
			"</FromUserName><CreateTime></CreateTime><MsgType>text</MsgType></xml>", "no CreateTime"},
		{"encrypted in plain mode", "<xml><Encrypt>abc</Encrypt></xml>", "plain mode"},
		{"a whole reply", "<xml><ToUserName>" + DefaultOpenID + "</ToUserName><FromUserName>" + DefaultOfficialAccount +
			"</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content></xml>", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, tt.reply)
			}))
			defer ts.Close()
			reply, err := (&Callback{URL: ts.URL, Token: "t"}).Send(context.Background(), TextMessage("x"))
			if string(reply) != tt.reply {
				t.Errorf("reply %q, want %q", reply, tt.reply)
			}
			if tt.wantErr == "" && err != nil {
				t.Errorf("Send: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Send error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSendRetries(t *testing.T) {
	tests := []struct {
		name       string
		stalls     int32
		deliveries int
		wantErr    bool
		wantSeen   int // messages the server finished handling
	}{
		{"first answered", 0, 3, false, 1},
		{"one stall, retried", 1, 3, false, 1},
		{"two stalls, third delivery answers", 2, 3, false, 1},
		{"three stalls give up", 3, 3, true, 0},
		{"one delivery only", 1, 1, true, 0},
		{"four deliveries", 3, 4, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ts := newDeveloper(t)
			d.stalls.Store(tt.stalls)
			c := &Callback{URL: ts.URL, Token: callbackToken, Timeout: 50 * time.Millisecond, Deliveries: tt.deliveries}
			_, err := c.Send(context.Background(), TextMessage("x"))
			if tt.wantErr != (err != nil) {
				t.Fatalf("Send error = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr && !errors.Is(err, ErrNoAnswer) {
				t.Errorf("error %v does not wrap ErrNoAnswer", err)
			}
			if tt.wantErr && tt.deliveries > 1 && !strings.Contains(err.Error(), fmt.Sprintf("after %d deliveries", tt.deliveries)) {
				t.Errorf("error %v does not count the deliveries", err)
			}
			d.mu.Lock()
			seen := len(d.got)
			d.mu.Unlock()
			if seen != tt.wantSeen {
				t.Errorf("server handled %d messages, want %d", seen, tt.wantSeen)
			}
			if left := d.stalls.Load(); tt.stalls > 0 && left > 0 {
				t.Errorf("%d stalls never happened", left)
			}
		})
	}
}

func TestSendStatusNotRetried(t *testing.T) {
	var n atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer ts.Close()
	_, err := (&Callback{URL: ts.URL, Token: "t"}).Send(context.Background(), TextMessage("x"))
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 500 || he.Body != "boom" {
		t.Fatalf("err = %v, want an HTTPError 500 boom", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d deliveries, want 1", n.Load())
	}
}

// base64Sealer stands in for msgcrypt's AES sealer to exercise the seam:
// it "encrypts" with base64 and signs like safe mode does.
type base64Sealer struct{ token string }

func (s base64Sealer) Seal(plain []byte, ts, nonce string) ([]byte, string, error) {
	enc := base64.StdEncoding.EncodeToString(plain)
	return []byte("<xml><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>"), util.Signature(s.token, ts, nonce, enc), nil
}

func (s base64Sealer) Open(reply []byte) ([]byte, error) {
	var env struct{ Encrypt string }
	if err := xml.Unmarshal(reply, &env); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(env.Encrypt)
}

func TestSendSafeModeSeam(t *testing.T) {
	var gotQuery, gotBody string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotQuery, gotBody = r.URL.RawQuery, string(b)
		q := r.URL.Query()
		var env struct{ Encrypt string }
		xml.Unmarshal(b, &env)
		if q.Get("encrypt_type") != "aes" || !util.VerifySignature(q.Get("msg_signature"), "t", q.Get("timestamp"), q.Get("nonce"), env.Encrypt) {
			http.Error(w, "bad msg_signature", http.StatusForbidden)
			return
		}
		plain := fmt.Sprintf("<xml><ToUserName>%s</ToUserName><FromUserName>%s</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>",
			DefaultOpenID, DefaultOfficialAccount)
		fmt.Fprintf(w, "<xml><Encrypt>%s</Encrypt></xml>", base64.StdEncoding.EncodeToString([]byte(plain)))
	}))
	defer ts.Close()
	reply, err := (&Callback{URL: ts.URL, Token: "t", Sealer: base64Sealer{"t"}}).Send(context.Background(), TextMessage("secret text"))
	if err != nil {
		t.Fatalf("Send: %v (query %s)", err, gotQuery)
	}
	if strings.Contains(gotBody, "secret text") {
		t.Error("safe mode sent the message in the clear")
	}
	if !bytes.HasPrefix(reply, []byte("<xml><ToUserName>"+DefaultOpenID)) {
		t.Errorf("reply not opened: %q", reply)
	}
}

func TestSimulate(t *testing.T) {
	_, ts := newDeveloper(t)
	tests := []struct {
		name, url, token string
		want             bool
		wantOut          []string
	}{
		{"right token", ts.URL, callbackToken, true, []string{"PASS check:", `PASS message: "hello" delivered; text reply "echo: hello"`}},
		{"other token", ts.URL, "ZZZZZ", false, []string{
			"FAIL check: got HTTP 403: signature mismatch — is the token the same on both sides?",
			"FAIL message: got HTTP 403: signature mismatch — is the token the same on both sides?"}},
		{"nothing listening", "http://127.0.0.1:1/", callbackToken, false, []string{"FAIL check:", "is the server running and listening at http://127.0.0.1:1/?"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			got := Simulate(context.Background(), &out, SimulateConfig{URL: tt.url, Token: tt.token, Message: "hello"})
			if got != tt.want {
				t.Errorf("Simulate = %v, want %v; output:\n%s", got, tt.want, &out)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, &out)
				}
			}
			if !strings.HasPrefix(out.String(), "mode: plain (明文模式)") || strings.Count(out.String(), "\n") != 3 {
				t.Errorf("want the mode, then one line per step:\n%s", &out)
			}
		})
	}
}

func TestSimulateSlowServer(t *testing.T) {
	d, ts := newDeveloper(t)
	d.stalls.Store(10)
	var out bytes.Buffer
	if Simulate(context.Background(), &out, SimulateConfig{URL: ts.URL, Token: callbackToken, Timeout: 30 * time.Millisecond, Deliveries: 2}) {
		t.Fatalf("passed against a server that never answers POST:\n%s", &out)
	}
	if !strings.Contains(out.String(), "FAIL message: after 2 deliveries: no answer in time") || !strings.Contains(out.String(), "answer sooner") {
		t.Errorf("output:\n%s", &out)
	}
}

func TestParseApp(t *testing.T) {
	tests := []struct {
		in      string
		want    App
		wantErr bool
	}{
		{"wx1:s1", App{"wx1", "s1", KindOfficialAccount}, false},
		{"wx1:s:with:colons", App{"wx1", "s:with:colons", KindOfficialAccount}, false},
		{"wx1", App{}, true},
		{":secret", App{}, true},
		{"wx1:", App{}, true},
		{"wx 1:s", App{}, true},
	}
	for _, tt := range tests {
		got, err := ParseApp(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseApp(%q) = %v, %v", tt.in, got, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") && strings.Contains(err.Error(), ":secret") {
			t.Errorf("error repeats the secret: %v", err)
		}
	}
	var apps Apps
	fs := flag.NewFlagSet("fake-wechat", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&apps, "app", "ID:SECRET")
	if err := fs.Parse([]string{"-app", "wxa:sa", "-app", "wxb:sb"}); err != nil {
		t.Fatal(err)
	}
	if apps.String() != "wxa,wxb" {
		t.Errorf("String() = %q", apps.String())
	}
	p := NewPlatform(apps.Options()...)
	if ids := p.Apps(); len(ids) != 2 || ids[1] != "wxb" {
		t.Errorf("Apps() = %v", ids)
	}
	if err := fs.Parse([]string{"-app", "nosecret:"}); err == nil {
		t.Error("-app without a secret accepted")
	}
}

func TestMessageXML(t *testing.T) {
	m := Message{ToUserName: "gh_1", FromUserName: "o1", CreateTime: 1714037059, MsgType: "text", Content: "a]]>b", MsgID: 42}
	want := "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>" +
		"<CreateTime>1714037059</CreateTime><MsgType><![CDATA[text]]></MsgType>" +
		"<Content><![CDATA[a]]]]><![CDATA[>b]]></Content><MsgId>42</MsgId></xml>"
	if got := string(m.XML()); got != want {
		t.Errorf("XML =\n%s\nwant\n%s", got, want)
	}
	var back inbound
	if err := xml.Unmarshal(m.XML(), &back); err != nil || back.Content != "a]]>b" {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}
