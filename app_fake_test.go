package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeReq makes one request to a running fake-wechat and decodes its JSON
// answer, failing the test on any answer that is not JSON.
func fakeReq(t *testing.T, method, u, body string, header ...string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; encoding=utf-8" {
		t.Errorf("%s %s: Content-Type %q", method, u, ct)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, u, raw)
	}
	return resp.StatusCode, m
}

// dig returns the number at keys in nested JSON objects.
func dig(m map[string]any, keys ...string) float64 {
	var v any = m
	for _, k := range keys {
		o, _ := v.(map[string]any)
		v = o[k]
	}
	f, _ := v.(float64)
	return f
}

// startFake runs `wxcentral fake-wechat` with args on a free port and
// returns its base URL once it listens.
func startFake(t *testing.T, args ...string) (*proc, string) {
	t.Helper()
	addr := freeAddr(t)
	p := start(t, nil, append([]string{"fake-wechat", "-listen", addr}, args...)...)
	waitFor(t, "fake-wechat to listen", func() bool { return strings.Contains(p.stdout.String(), "control plane") })
	return p, "http://" + addr
}

// TestFakeWechatRefreshCycles drives the binary from a plain HTTP client,
// as a test in another language would: with -lifetime 5s -grace 2s and a
// frozen clock, a client that fetches only when its token has expired
// makes exactly one fetch per cycle, and /_fake/stats shows it. Time moves
// only by /_fake/advance, so nothing sleeps.
func TestFakeWechatRefreshCycles(t *testing.T) {
	const app, sec = "wxabc0123456789ab", "s3cret-for-the-fake"
	p, base := startFake(t, "-app", app+":"+sec, "-app", "wxmini0123456789:m1ni:mini_program",
		"-lifetime", "5s", "-grace", "2s", "-clock", "2026-11-21T10:00:00+08:00", "-quota", "6")
	if strings.Contains(p.stdout.String(), sec) || !strings.Contains(p.stdout.String(), "wxmini0123456789:mini_program") {
		t.Errorf("startup lines:\n%s", p.stdout.String())
	}
	fetch := func() map[string]any {
		_, m := fakeReq(t, "GET", base+"/cgi-bin/token?grant_type=client_credential&appid="+app+"&secret="+sec, "")
		return m
	}
	use := func(tok string) int {
		_, m := fakeReq(t, "GET", base+"/cgi-bin/getcallbackip?access_token="+tok, "")
		return int(dig(m, "errcode"))
	}
	advance := func(s int) {
		if code, m := fakeReq(t, "POST", base+"/_fake/advance", `{"seconds":`+strconv.Itoa(s)+`}`); code != 200 {
			t.Fatalf("advance: %d %v", code, m)
		}
	}
	stats := func() map[string]any {
		code, m := fakeReq(t, "GET", base+"/_fake/stats", "")
		if code != 200 {
			t.Fatalf("stats: %d %v", code, m)
		}
		return m
	}

	start := stats()["unix"]
	for cycle := 1; cycle <= 3; cycle++ {
		tok := fetch()
		if tok["expires_in"] != 5.0 {
			t.Fatalf("cycle %d: %v", cycle, tok)
		}
		for s := 0; s < 5; s++ {
			if code := use(tok["access_token"].(string)); code != 0 {
				t.Fatalf("cycle %d, second %d: errcode %d", cycle, s, code)
			}
			advance(1)
		}
		if code := use(tok["access_token"].(string)); code != 42001 {
			t.Errorf("cycle %d: after 5 s errcode %d, want 42001", cycle, code)
		}
		st := stats()
		if f := dig(st, "fetches", "/cgi-bin/token"); f != float64(cycle) {
			t.Errorf("cycle %d: fetches %v, want one per cycle", cycle, f)
		}
		if f := dig(st, "apps", app, "fetches", "/cgi-bin/token"); f != float64(cycle) {
			t.Errorf("cycle %d: apps.%s.fetches %v", cycle, app, f)
		}
		if r := dig(st, "rejected", "42001"); r != float64(cycle) {
			t.Errorf("cycle %d: rejected 42001 = %v", cycle, r)
		}
	}
	if end := stats()["unix"]; end.(float64)-start.(float64) != 15 {
		t.Errorf("the clock moved %v s, want 15", end.(float64)-start.(float64))
	}

	// Another program fetches: the old token works for the 2 s grace, then 40001.
	old := fetch()["access_token"].(string)
	fetch()
	advance(1)
	if code := use(old); code != 0 {
		t.Errorf("within the grace: %d", code)
	}
	advance(1)
	if code := use(old); code != 40001 {
		t.Errorf("after the grace: %d, want 40001", code)
	}

	// -quota 6: five fetches so far, one more, then 45009.
	cur := fetch()["access_token"].(string)
	if m := fetch(); dig(m, "errcode") != 45009 {
		t.Errorf("past -quota: %v", m)
	}

	// invalidate: the current token dies at once.
	if code, m := fakeReq(t, "POST", base+"/_fake/invalidate", `{"appid":"`+app+`"}`); code != 200 {
		t.Fatalf("invalidate: %d %v", code, m)
	}
	if code := use(cur); code != 40001 {
		t.Errorf("after invalidate: %d, want 40001", code)
	}

	// reset: the start state, clock included; then an injected failure.
	fakeReq(t, "POST", base+"/_fake/reset", "")
	if st := stats(); st["unix"] != start || dig(st, "fetches", "/cgi-bin/token") != 0 {
		t.Errorf("after reset: unix %v fetches %v", st["unix"], dig(st, "fetches", "/cgi-bin/token"))
	}
	fakeReq(t, "POST", base+"/_fake/fail", `{"path":"/cgi-bin/token","errcode":-1,"times":2}`)
	if a, b, c := fetch(), fetch(), fetch(); dig(a, "errcode") != -1 || dig(b, "errcode") != -1 || c["access_token"] == nil {
		t.Errorf("fail times 2: %v %v %v", a, b, c)
	}
	if st := stats(); dig(st, "attempts", "/cgi-bin/token") != 3 || dig(st, "fetches", "/cgi-bin/token") != 1 {
		t.Errorf("attempts %v fetches %v; want 3, 1", dig(st, "attempts", "/cgi-bin/token"), dig(st, "fetches", "/cgi-bin/token"))
	}

	// A Mini Program gets a token but no jsapi_ticket, and logs users in.
	_, mt := fakeReq(t, "GET", base+"/cgi-bin/token?grant_type=client_credential&appid=wxmini0123456789&secret=m1ni", "")
	if _, m := fakeReq(t, "GET", base+"/cgi-bin/ticket/getticket?type=jsapi&access_token="+mt["access_token"].(string), ""); dig(m, "errcode") != 48001 {
		t.Errorf("Mini Program getticket: %v", m)
	}
	if _, m := fakeReq(t, "GET", base+"/sns/jscode2session?appid=wxmini0123456789&secret=m1ni&js_code=test-1&grant_type=authorization_code", ""); m["openid"] == nil {
		t.Errorf("jscode2session: %v", m)
	}

	p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestFakeWechatControlKey: with -control-key the control plane wants it.
func TestFakeWechatControlKey(t *testing.T) {
	const key = "control-key-0123456789"
	p, base := startFake(t, "-control-key", key)
	if code, m := fakeReq(t, "GET", base+"/_fake/stats", ""); code != 401 || m["error"] == nil {
		t.Errorf("without the key: %d %v", code, m)
	}
	if code, _ := fakeReq(t, "GET", base+"/_fake/stats", "", "Authorization", "Bearer wrong"); code != 403 {
		t.Errorf("a wrong key: %d", code)
	}
	if code, _ := fakeReq(t, "GET", base+"/_fake/stats", "", "Authorization", "Bearer "+key); code != 200 {
		t.Errorf("the key: %d", code)
	}
	if strings.Contains(p.stdout.String()+p.stderr.String(), key) {
		t.Error("the control key is printed")
	}
}

func TestFakeWechatFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-clock", "tomorrow"}, {"-lifetime", "0s"}, {"-grace", "-1s"}, {"-quota", "-1"}, {"-app", "wx:s:mini_game:x y"},
		{"-mini-ticket-errcode", "0"},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"fake-wechat", "-listen", "127.0.0.1:0"}, args...), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), args[0]) {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
		if strings.Contains(errb.String(), "x y") {
			t.Errorf("%v: the secret is in the error: %s", args, errb.String())
		}
	}
}

// simulate -format json sends JSON pushes, as a Mini Program or Mini Game
// that chose JSON receives them; a callback that takes JSON only fails the
// XML run, and an unknown format is a usage error.
func TestSimulateFormat(t *testing.T) {
	var pushes []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			io.WriteString(w, r.URL.Query().Get("echostr"))
			return
		}
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil || m["MsgType"] == nil {
			http.Error(w, "want a JSON push", http.StatusBadRequest)
			return
		}
		pushes = append(pushes, m)
		io.WriteString(w, "success")
	}))
	defer srv.Close()
	tests := []struct {
		format     string
		code, seen int
	}{
		{"json", 0, 1},
		{"xml", 1, 0},
		{"yaml", 2, 0},
	}
	for _, tt := range tests {
		pushes = nil
		var out, errb bytes.Buffer
		code := run([]string{"simulate", "-url", srv.URL, "-token", "tok", "-message", "hi", "-format", tt.format}, &out, &errb)
		if code != tt.code || len(pushes) != tt.seen {
			t.Errorf("-format %s: exit %d with %d JSON pushes, want exit %d and %d\n%s%s", tt.format, code, len(pushes), tt.code, tt.seen, &out, &errb)
		}
	}
}

// TestFakeWechatListenAll: listening on every address, fake-wechat shows
// a loopback URL, and the control plane answers it (it refuses the Host
// 0.0.0.0 or [::]).
func TestFakeWechatListenAll(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, errb := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- fakeWechat(ctx, []string{"-listen", ":0"}, out, errb) }()
	waitFor(t, "fake-wechat to listen", func() bool { return strings.Contains(out.String(), "control plane") })
	base, _, _ := strings.Cut(strings.TrimPrefix(out.String(), "fake WeChat API at "), " ")
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Errorf("shown URL %q, want a loopback one:\n%s", base, out)
	}
	if code, m := fakeReq(t, "GET", base+"/_fake/stats", ""); code != 200 {
		t.Errorf("control plane at the shown URL: HTTP %d %v", code, m)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, errb)
	}
}
