package wechat

import (
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

func TestJSSDKSignature(t *testing.T) {
	// The official vector (wechat-platform.md §7).
	const ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
	tests := []struct {
		url, want string
	}{
		{"http://mp.weixin.qq.com?params=value", "0f9de62fce790f9a083d5c99e95740ceb90c27ed"},
		{"http://mp.weixin.qq.com?params=value#wechat_redirect", "0f9de62fce790f9a083d5c99e95740ceb90c27ed"},
		{"http://mp.weixin.qq.com?params=other", ""}, // anything but the vector
	}
	for _, tc := range tests {
		got := JSSDKSignature(ticket, "Wm3WZYTPz0wzccnW", 1414587457, tc.url)
		if tc.want != "" && got != tc.want {
			t.Errorf("JSSDKSignature(%q) = %s, want %s", tc.url, got, tc.want)
		}
		if tc.want == "" && got == tests[0].want {
			t.Errorf("JSSDKSignature(%q) ignores the URL", tc.url)
		}
	}
}

func TestJSSDKConfig(t *testing.T) {
	e := newEnv(t, newFake(t))
	w, err := newKeeper(t, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	const page = "https://example.com/app?x=1&y=2#/route"
	cfg, err := w.JSSDKConfig(t.Context(), page)
	if err != nil {
		t.Fatal(err)
	}
	ticket, ok := e.srv.Ticket(testAppID, "jsapi")
	if !ok {
		t.Fatal("the platform issued no jsapi ticket")
	}
	want := JSSDKSignature(ticket, cfg.NonceStr, cfg.Timestamp, "https://example.com/app?x=1&y=2")
	if cfg.Signature != want || cfg.AppID != testAppID || cfg.Timestamp != e.srv.Now().Unix() || len(cfg.NonceStr) < 16 {
		t.Errorf("config = %+v; want signature %s over the platform's ticket", cfg, want)
	}
	cfg2, _ := w.JSSDKConfig(t.Context(), page)
	if cfg2.NonceStr == cfg.NonceStr {
		t.Error("two configs share a nonce")
	}
	if n := e.rt.count(wechattest.PathTicket); n != 1 {
		t.Errorf("getticket calls = %d, want 1 (the ticket is cached)", n)
	}
	// Another process on the same store adopts the ticket.
	o := e.opts
	o.Store = NewFileStore(e.path, nil)
	w2, _ := newKeeper(t, o)
	if c, err := w2.JSAPITicket(t.Context()); err != nil || c.Value != ticket {
		t.Errorf("second process: ticket %q, %v; want %q adopted", c.Value, err, ticket)
	}
	if n := e.rt.count(wechattest.PathTicket); n != 1 {
		t.Errorf("getticket calls = %d, want still 1", n)
	}
	if _, err := w.JSSDKConfig(t.Context(), "/relative"); err == nil {
		t.Error("a relative page URL was accepted")
	}
}

func TestTicketRejectedToken(t *testing.T) {
	e := newEnv(t, newFake(t))
	w, err := newKeeper(t, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t1, _ := w.AccessToken(t.Context())
	e.srv.Advance(time.Minute)
	e.srv.Fail(wechattest.PathTicket, wechattest.Fault{Errcode: 40001})
	c, err := w.Ticket(t.Context(), KindCardTicket)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := e.srv.Ticket(testAppID, "wx_card"); c.Value != want {
		t.Errorf("ticket = %q, want %q", c.Value, want)
	}
	if t2, _ := w.AccessToken(t.Context()); t2 == t1 || e.rt.count(wechattest.PathToken) != 2 {
		t.Errorf("the 40001 from getticket did not refresh the token once (%d fetches)", e.rt.count(wechattest.PathToken))
	}
	if _, err := w.Ticket(t.Context(), "bogus"); err == nil {
		t.Error("an unknown ticket kind was accepted")
	}
}
