package wechattest

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware/msgcrypt"
	"github.com/wxcentral/wxcentral/util"
)

const jsonKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

// jsonDeveloper is a Mini Program's message-push server whose data format
// is JSON: it checks the signature (and in safe mode decrypts), and
// replies with reply(push) in JSON, encrypted in safe mode.
type jsonDeveloper struct {
	t       *testing.T
	crypter *msgcrypt.Crypter // nil: plain mode
	reply   func(push map[string]any) string
	got     []map[string]any
	ct      string
}

func (d *jsonDeveloper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !util.VerifySignature(q.Get("signature"), "tok", q.Get("timestamp"), q.Get("nonce")) {
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	d.ct = r.Header.Get("Content-Type")
	body, _ := io.ReadAll(r.Body)
	var o msgcrypt.Opened
	if d.crypter != nil {
		env, err := msgcrypt.ParseJSONEnvelope(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if o, err = d.crypter.Open(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), env.Encrypt); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = o.Msg
	}
	var push map[string]any
	if err := json.Unmarshal(body, &push); err != nil {
		http.Error(w, "not JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	d.got = append(d.got, push)
	reply := d.reply(push)
	if d.crypter != nil && reply != "" && reply != "success" {
		env, err := d.crypter.Seal(o, []byte(reply), time.Now().Unix(), q.Get("nonce"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		reply = string(env.JSON())
	}
	io.WriteString(w, reply)
}

func transferReply(push map[string]any) string {
	b, _ := json.Marshal(map[string]any{"ToUserName": push["FromUserName"], "FromUserName": push["ToUserName"],
		"CreateTime": push["CreateTime"], "MsgType": "transfer_customer_service"})
	return string(b)
}

func TestSendJSON(t *testing.T) {
	for _, safe := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "safe"}[safe], func(t *testing.T) {
			d := &jsonDeveloper{t: t, reply: transferReply}
			cb := &Callback{Token: "tok", Format: FormatJSON, Clock: NewPlatform(WithClock(t0))}
			if safe {
				c, err := msgcrypt.New("tok", miniApp, jsonKey)
				if err != nil {
					t.Fatal(err)
				}
				d.crypter = c
				if cb.Sealer, err = NewAESSealer("tok", miniApp, jsonKey); err != nil {
					t.Fatal(err)
				}
			}
			srv := httptest.NewServer(d)
			defer srv.Close()
			cb.URL = srv.URL
			reply, err := cb.Send(context.Background(), TextMessage("你好"))
			if err != nil {
				t.Fatalf("Send: %v (reply %s)", err, reply)
			}
			if !strings.Contains(string(reply), "transfer_customer_service") {
				t.Errorf("reply %s", reply)
			}
			if d.ct != "application/json" {
				t.Errorf("push Content-Type %q", d.ct)
			}
			p := d.got[0]
			if p["MsgType"] != "text" || p["Content"] != "你好" || p["FromUserName"] != DefaultOpenID ||
				p["CreateTime"] != float64(t0.Unix()) || p["MsgId"] == nil {
				t.Errorf("push %v", p)
			}
			if _, err := cb.Send(context.Background(), EventMessage("user_enter_tempsession", "")); err != nil {
				t.Errorf("event: %v", err)
			}
			if e := d.got[1]; e["Event"] != "user_enter_tempsession" || e["MsgId"] != nil || e["Content"] != nil {
				t.Errorf("event push %v", e)
			}
		})
	}
}

func TestSendJSONChecksReply(t *testing.T) {
	tests := []struct {
		name, reply, want string
	}{
		{"xml", "<xml><ToUserName><![CDATA[x]]></ToUserName></xml>", "push was JSON"},
		{"not json", "hello", "nor a JSON object"},
		{"wrong recipient", `{"ToUserName":"someone","FromUserName":"gh_0123456789ab","CreateTime":1,"MsgType":"text"}`, "want the sender"},
		{"no MsgType", `{"ToUserName":"` + DefaultOpenID + `","FromUserName":"gh_0123456789ab","CreateTime":1}`, "no MsgType"},
		{"no CreateTime", `{"ToUserName":"` + DefaultOpenID + `","FromUserName":"gh_0123456789ab","MsgType":"text"}`, "no CreateTime"},
		{"null CreateTime", `{"ToUserName":"` + DefaultOpenID + `","FromUserName":"gh_0123456789ab","CreateTime":null,"MsgType":"text"}`, "no CreateTime"},
		{"wrong sender", `{"ToUserName":"` + DefaultOpenID + `","FromUserName":"gh_other","CreateTime":1,"MsgType":"text"}`, "want the account"},
		{"encrypted in plain mode", `{"Encrypt":"abc","MsgSignature":"x","TimeStamp":1,"Nonce":"1"}`, "plain mode"},
	}
	for _, tt := range tests {
		d := &jsonDeveloper{t: t, reply: func(map[string]any) string { return tt.reply }}
		srv := httptest.NewServer(d)
		cb := &Callback{URL: srv.URL, Token: "tok", Format: FormatJSON}
		_, err := cb.Send(context.Background(), TextMessage("hi"))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		}
		srv.Close()
	}
	// An XML push answered in JSON is refused as well.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ToUserName":"x"}`)
	}))
	defer srv.Close()
	cb := &Callback{URL: srv.URL, Token: "tok"}
	if _, err := cb.Send(context.Background(), TextMessage("hi")); err == nil || !strings.Contains(err.Error(), "push was XML") {
		t.Errorf("JSON reply to XML: %v", err)
	}
}

func TestSimulateJSON(t *testing.T) {
	d := &jsonDeveloper{t: t, reply: func(map[string]any) string { return "success" }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			io.WriteString(w, r.URL.Query().Get("echostr"))
			return
		}
		d.ServeHTTP(w, r)
	}))
	defer srv.Close()
	var out strings.Builder
	if !Simulate(context.Background(), &out, SimulateConfig{URL: srv.URL, Token: "tok", Format: FormatJSON}) {
		t.Errorf("Simulate failed:\n%s", &out)
	}
	if !strings.Contains(out.String(), "pushes in JSON") || len(d.got) != 1 || d.got[0]["Content"] != "hello from wxcentral" {
		t.Errorf("output:\n%s\npushes %v", &out, d.got)
	}
}

func TestMessageJSON(t *testing.T) {
	m := Message{ToUserName: "gh_1", FromUserName: "o1", CreateTime: 1482048670, MsgType: "text", Content: "this is a test", MsgID: 1234567890123456}
	want := `{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":1482048670,"MsgType":"text","Content":"this is a test","MsgId":1234567890123456}`
	if got := string(m.JSON()); got != want {
		t.Errorf("JSON =\n%s\nwant\n%s", got, want)
	}
	e := Message{ToUserName: "gh_1", FromUserName: "o1", CreateTime: 1, MsgType: "event", Event: "CLICK", EventKey: "k"}
	if got := string(e.JSON()); got != `{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":1,"MsgType":"event","Event":"CLICK","EventKey":"k"}` {
		t.Errorf("event JSON = %s", got)
	}
	for in, want := range map[string]Format{"": FormatXML, "xml": FormatXML, "JSON": FormatJSON} {
		if f, err := ParseFormat(in); err != nil || f != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, f, err)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil {
		t.Error("ParseFormat(yaml) accepted")
	}
}

func TestParseAppKind(t *testing.T) {
	tests := []struct {
		in      string
		want    App
		wantErr bool
	}{
		{"wx1:s1:mini_program", App{"wx1", "s1", KindMiniProgram}, false},
		{"wx1:s1:mini_game", App{"wx1", "s1", KindMiniGame}, false},
		{"wx1:s1:official_account", App{"wx1", "s1", KindOfficialAccount}, false},
		{"wx1:s:x:mini_game", App{"wx1", "s:x", KindMiniGame}, false},
		{"wx1:s1:other", App{"wx1", "s1:other", KindOfficialAccount}, false}, // a secret with a colon
		{"wx1::mini_game", App{}, true},
		{"wx1:mini_game", App{"wx1", "mini_game", KindOfficialAccount}, false},
	}
	for _, tt := range tests {
		got, err := ParseApp(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseApp(%q) = %+v, %v", tt.in, got, err)
		}
	}
	if _, err := ParseKind("wecom"); err == nil {
		t.Error("ParseKind(wecom) accepted")
	}
	apps := Apps{{ID: "wxa", Secret: "a"}, {ID: "wxb", Secret: "b", Kind: KindMiniGame}}
	if s := apps.String(); s != "wxa,wxb:mini_game" {
		t.Errorf("String() = %q", s)
	}
	if st := NewPlatform(apps.Options()...).Stats().Apps; st["wxb"].Kind != KindMiniGame || st["wxa"].Kind != KindOfficialAccount {
		t.Errorf("kinds: %+v", st)
	}
}

func TestFlags(t *testing.T) {
	parse := func(args ...string) (*Flags, []Option, error) {
		fs := flag.NewFlagSet("fake-wechat", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := NewFlags(fs)
		if err := fs.Parse(args); err != nil {
			return nil, nil, err
		}
		opts, err := f.Options(App{ID: "wxdemo", Secret: "demo"})
		return f, opts, err
	}
	f, opts, err := parse()
	if err != nil || f.Listen != "127.0.0.1:3200" || f.Lifetime != 7200*time.Second || f.Grace != 5*time.Minute || f.Quota != 2000 {
		t.Fatalf("defaults: %+v %v", f, err)
	}
	if p := NewPlatform(opts...); p.Apps()[0] != "wxdemo" || p.frozen || p.quotas[PathToken] != 2000 {
		t.Errorf("default platform: apps %v frozen %v", p.Apps(), p.frozen)
	}
	f, opts, err = parse("-app", "wxmp:s:mini_program", "-lifetime", "5s", "-grace", "2s", "-quota", "3",
		"-clock", "2026-11-21T10:00:00+08:00", "-control-key", "k", "-mini-ticket-errcode", "40048")
	if err != nil {
		t.Fatal(err)
	}
	p := NewPlatform(opts...)
	if !p.Now().Equal(t0) || p.lifetime != 5*time.Second || p.grace != 2*time.Second || p.quotas[PathToken] != 3 ||
		p.controlKey != "k" || p.miniTicketCode != 40048 || p.apps["wxmp"].kind != KindMiniProgram || f.Apps.String() != "wxmp:mini_program" {
		t.Errorf("platform from flags: %+v", p)
	}
	for _, args := range [][]string{
		{"-clock", "yesterday"}, {"-lifetime", "0s"}, {"-grace", "-1s"}, {"-quota", "-1"},
		{"-mini-ticket-errcode", "0"}, {"-mini-ticket-errcode", "40013"},
	} {
		if _, _, err := parse(args...); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: %v, want an error naming the flag", args, err)
		}
	}
	if _, _, err := parse("-app", "wx:s:mini_program:"); err != nil {
		t.Errorf("a secret ending in ':' : %v", err)
	}
}
