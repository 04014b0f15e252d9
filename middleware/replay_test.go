package middleware_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/dedupe"
)

// forged is a push someone who saw a signed URL posts with it.
const forged = "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[o9AgO5Kd5ggOC]]></FromUserName>" +
	"<CreateTime>1714036504</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[FORGED-CONTENT]]></Content>" +
	"<MsgId>31337</MsgId></xml>"

// TestReplay sends, over HTTP, one signed plain-mode URL with the push it
// was signed for, again with the same push (WeChat re-sending it), and
// with other bodies: only the byte-identical body passes. (With a Redis
// dedupe store the triples are shared between hosts: wechat/redisstore's
// TestMiddlewareReplayTwoHosts.)
func TestReplay(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []middleware.Option
	}{
		{"memory", nil},
		{"memory, dedupe off", []middleware.Option{middleware.WithDedupe(nil)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness()
			host1 := httptest.NewServer(middleware.Verify(testToken, h.options(tt.opts...)...)(h.next()))
			defer host1.Close()
			host2 := host1 // one host: the memory store is its own
			dedupeOff := tt.name == "memory, dedupe off"

			ts := strconv.FormatInt(h.clock().Unix(), 10)
			url := "/?" + signedQuery(testToken, ts, "r1").Encode() + "&openid=o9AgO5Kd5ggOC"
			for i, d := range []struct {
				host   *httptest.Server
				body   string
				status int
				calls  int
			}{
				{host1, textMsg(1), 200, 1},
				{host2, textMsg(1), 200, 0}, // WeChat re-sends it: the first reply
				{host2, forged, 403, 0},
				{host1, forged, 403, 0},     // the forger's retry is no re-delivery
				{host1, textMsg(2), 403, 0}, // nor is any other body
				{host1, textMsg(1) + " ", 403, 0},
				{host2, textMsg(1), 200, 0}, // the genuine push still passes
			} {
				if dedupeOff && d.status == 200 {
					d.calls = 1
				}
				resp, got := do(t, d.host.Client(), "POST", d.host.URL+url, strings.NewReader(d.body))
				logs, results, calls := h.take()
				if resp.StatusCode != d.status || calls != d.calls {
					t.Fatalf("delivery %d: %d %q, handler ran %d times; want %d, %d", i+1, resp.StatusCode, got, calls, d.status, d.calls)
				}
				if len(results) != 1 {
					t.Fatalf("delivery %d: results %v", i+1, results)
				}
				if d.status == 200 {
					if got != "handled" || results[0].Outcome != middleware.OutcomePass {
						t.Errorf("delivery %d: answer %q, outcome %v", i+1, got, results[0].Outcome)
					}
					continue
				}
				if results[0].Outcome != middleware.OutcomeReplay || !strings.Contains(got, "replay") {
					t.Errorf("delivery %d: outcome %v, answer %q; want replay", i+1, results[0].Outcome, got)
				}
				if strings.Count(logs, "level=WARN") != 1 || !strings.Contains(logs, "outcome=replay") || !strings.Contains(logs, "status=403") {
					t.Errorf("delivery %d: the refusal was not logged once: %s", i+1, logs)
				}
				for _, secret := range []string{testToken, "FORGED", "hello"} {
					if strings.Contains(logs, secret) {
						t.Errorf("delivery %d: the log holds %q: %s", i+1, secret, logs)
					}
				}
			}

			// The forged body is a valid push: with a signature of its own
			// it is accepted.
			own := "/?" + signedQuery(testToken, ts, "r2").Encode()
			if resp, got := do(t, host2.Client(), "POST", host2.URL+own, strings.NewReader(forged)); resp.StatusCode != 200 {
				t.Errorf("a signature's first push: %d %q", resp.StatusCode, got)
			}
		})
	}
}

// TestReplayWindow checks that a triple is remembered while its timestamp
// is inside the window, and then refused as stale anyway. (With the Redis
// store: wechat/redisstore's TestMiddlewareReplayWindow.)
func TestReplayWindow(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		h := newHarness()
		srv := httptest.NewServer(middleware.Verify(testToken, h.options()...)(h.next()))
		defer srv.Close()
		start := h.clock()
		send := func(ts time.Time, nonce, body string) (int, middleware.Outcome) {
			t.Helper()
			u := "/?" + signedQuery(testToken, strconv.FormatInt(ts.Unix(), 10), nonce).Encode()
			resp, _ := do(t, srv.Client(), "POST", srv.URL+u, strings.NewReader(body))
			_, results, _ := h.take()
			if len(results) != 1 {
				t.Fatalf("results %v", results)
			}
			return resp.StatusCode, results[0].Outcome
		}
		// Signed now, and signed four minutes ago.
		for nonce, ts := range map[string]time.Time{"w1": start, "w2": start.Add(-4 * time.Minute)} {
			if got, o := send(ts, nonce, textMsg(1)); got != 200 {
				t.Fatalf("first delivery %s: %d %v", nonce, got, o)
			}
		}
		// At the window's edge the triple is still remembered.
		h.setNow(start.Add(middleware.DefaultTimestampWindow))
		if got, o := send(start, "w1", forged); got != 403 || o != middleware.OutcomeReplay {
			t.Errorf("another body at the window's edge: %d %v, want 403 replay", got, o)
		}
		// One second later the signature check refuses it as stale.
		h.setNow(start.Add(middleware.DefaultTimestampWindow + time.Second))
		if got, o := send(start, "w1", forged); got != 403 || o != middleware.OutcomeStale {
			t.Errorf("after the window: %d %v, want 403 stale", got, o)
		}
	})
}

// TestReplaySafeMode documents why the body check matters in plain mode
// only: in safe and compatible mode msg_signature covers Encrypt, so a
// signed query with another body fails the signature already, while two
// genuine pushes that happen to share a timestamp and nonce both pass.
func TestReplaySafeMode(t *testing.T) {
	wx := wechat{testToken, testAppID, mustKey(t, testKey)}
	h := newHarness()
	srv := httptest.NewServer(middleware.Verify(testToken, h.options(middleware.WithAES(testAppID, testKey))...)(h.next()))
	defer srv.Close()
	ts := h.clock().Unix()
	p1 := wx.seal(t, ts, "s1", textMsg(1), false)
	p2 := wx.seal(t, ts, "s1", textMsg(2), false) // same timestamp and nonce
	compat := wx.seal(t, ts, "s1", textMsg(3), false)
	compat.body = strings.Replace(compat.body, "<Encrypt>", "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[plain]]></Content><MsgId>3</MsgId><Encrypt>", 1)
	for i, d := range []struct {
		p       push
		status  int
		outcome middleware.Outcome
	}{
		{p1, 200, middleware.OutcomePass},
		{p1, 200, middleware.OutcomePass}, // re-delivery
		{push{p1.q, p2.body}, 403, middleware.OutcomeBadMsgSignature},
		{p2, 200, middleware.OutcomePass},
		{compat, 200, middleware.OutcomePass},
		{compat, 200, middleware.OutcomePass},
	} {
		resp, got := post(t, srv.Client(), srv.URL, d.p)
		_, results, _ := h.take()
		if resp.StatusCode != d.status || len(results) != 1 || results[0].Outcome != d.outcome {
			t.Errorf("push %d: %d %q %v, want %d %v", i+1, resp.StatusCode, got, results, d.status, d.outcome)
		}
	}
}

// TestReplayPlaintextAllowed checks that plaintext POSTs accepted beside
// safe mode (WithAllowPlaintext) get the replay check too.
func TestReplayPlaintextAllowed(t *testing.T) {
	h := newHarness()
	srv := httptest.NewServer(middleware.Verify(testToken, h.options(middleware.WithAES(testAppID, testKey), middleware.WithAllowPlaintext(true))...)(h.next()))
	defer srv.Close()
	u := srv.URL + "/?" + signedQuery(testToken, strconv.FormatInt(h.clock().Unix(), 10), "p").Encode()
	for i, d := range []struct {
		body   string
		status int
	}{{textMsg(1), 200}, {textMsg(1), 200}, {forged, 403}} {
		if resp, got := do(t, srv.Client(), "POST", u, strings.NewReader(d.body)); resp.StatusCode != d.status {
			t.Errorf("push %d: %d %q, want %d", i+1, resp.StatusCode, got, d.status)
		}
	}
}

// TestReplayConcurrent posts one signed URL with eight different bodies at
// once: exactly one is accepted, whichever comes first. (On two hosts
// sharing Redis: wechat/redisstore's TestMiddlewareReplayConcurrent.)
func TestReplayConcurrent(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		h := newHarness()
		hosts := []*httptest.Server{httptest.NewServer(middleware.Verify(testToken, h.options()...)(h.next()))}
		for _, s := range hosts {
			defer s.Close()
		}
		u := "/?" + signedQuery(testToken, strconv.FormatInt(h.clock().Unix(), 10), "race").Encode()
		codes := make(chan int, 8)
		for i := range 8 {
			go func() {
				s := hosts[i%len(hosts)]
				resp, err := s.Client().Post(s.URL+u, "text/xml", strings.NewReader(textMsg(int64(100+i))))
				if err != nil {
					t.Error(err)
					codes <- 0
					return
				}
				resp.Body.Close()
				codes <- resp.StatusCode
			}()
		}
		n := map[int]int{}
		for range 8 {
			n[recv(t, "an answer", codes)]++
		}
		if n[200] != 1 || n[403] != 7 {
			t.Errorf("answers %v, want one 200 and seven 403", n)
		}
	})
}

// TestReplayAfterDedupeTTL re-sends one accepted push, byte for byte, 40 s
// later (past dedupe.DefaultTTL, inside the timestamp window): it is
// answered with the first reply and never runs the handler again, in plain
// and safe mode, with the default store (with Redis: wechat/redisstore's
// TestMiddlewareReplayAfterDedupeTTL). When the reply is no longer kept
// the replay is refused; after a delivery that failed, it runs the handler
// (WeChat re-sending after a 5xx).
func TestReplayAfterDedupeTTL(t *testing.T) {
	wx := wechat{testToken, testAppID, mustKey(t, testKey)}
	for _, tt := range []struct {
		name string
		opts func(t *testing.T, h *harness) []middleware.Option
	}{
		{"default", func(*testing.T, *harness) []middleware.Option { return nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness()
			srv := httptest.NewServer(middleware.Verify(testToken, h.options(append(tt.opts(t, h), middleware.WithAES(testAppID, testKey), middleware.WithAllowPlaintext(true))...)...)(h.next()))
			defer srv.Close()
			start := h.clock()
			plainURL := srv.URL + "/?" + signedQuery(testToken, strconv.FormatInt(start.Unix(), 10), "late").Encode()
			sealed := wx.seal(t, start.Unix(), "late-safe", textMsg(2), false)
			for i, at := range []time.Duration{0, 40 * time.Second, 4 * time.Minute, middleware.DefaultTimestampWindow} {
				h.setNow(start.Add(at))
				want := 1
				if i > 0 {
					want = 0
				}
				resp, got := do(t, srv.Client(), "POST", plainURL, strings.NewReader(textMsg(1)))
				_, _, calls := h.take()
				if resp.StatusCode != 200 || got != "handled" || calls != want {
					t.Errorf("plain push at +%v: %d %q, handler ran %d times; want 200 handled, %d", at, resp.StatusCode, got, calls, want)
				}
				resp, got = post(t, srv.Client(), srv.URL, sealed)
				_, _, calls = h.take()
				if resp.StatusCode != 200 || calls != want {
					t.Errorf("safe push at +%v: %d %q, handler ran %d times; want 200, %d", at, resp.StatusCode, got, calls, want)
				} else if plain, _ := wx.open(t, []byte(got), false); plain != "handled" {
					t.Errorf("safe push at +%v answered %q", at, plain)
				}
			}
		})
	}

	t.Run("reply forgotten", func(t *testing.T) {
		h := newHarness()
		mem := &dedupe.Memory{Clock: clockOf(h), MaxEntries: 1}
		srv := httptest.NewServer(middleware.Verify(testToken, h.options(middleware.WithDedupe(mem))...)(h.next()))
		defer srv.Close()
		ts := strconv.FormatInt(h.clock().Unix(), 10)
		first := srv.URL + "/?" + signedQuery(testToken, ts, "f1").Encode()
		for i, d := range []struct {
			url, body string
			status    int
			calls     int
		}{
			{first, textMsg(1), 200, 1},
			{srv.URL + "/?" + signedQuery(testToken, ts, "f2").Encode(), textMsg(2), 200, 1}, // pushes the first reply out
			{first, textMsg(1), 403, 0},
		} {
			resp, got := do(t, srv.Client(), "POST", d.url, strings.NewReader(d.body))
			logs, results, calls := h.take()
			if resp.StatusCode != d.status || calls != d.calls {
				t.Fatalf("delivery %d: %d %q, handler ran %d times; want %d, %d", i+1, resp.StatusCode, got, calls, d.status, d.calls)
			}
			if d.status == 403 && (len(results) != 1 || results[0].Outcome != middleware.OutcomeReplay || !strings.Contains(logs, "outcome=replay")) {
				t.Errorf("refusal: %v %s", results, logs)
			}
		}
	})

	t.Run("first delivery failed", func(t *testing.T) {
		h := newHarness()
		runs := 0
		srv := httptest.NewServer(middleware.Verify(testToken, h.options()...)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs++ // deliveries here are sequential
			if runs == 1 {
				http.Error(w, "database down", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, "handled")
		})))
		defer srv.Close()
		u := srv.URL + "/?" + signedQuery(testToken, strconv.FormatInt(h.clock().Unix(), 10), "fail").Encode()
		for i, want := range []struct {
			status int
			runs   int
		}{{500, 1}, {200, 2}, {200, 2}} {
			h.setNow(h.clock().Add(40 * time.Second))
			if resp, got := do(t, srv.Client(), "POST", u, strings.NewReader(textMsg(1))); resp.StatusCode != want.status || runs != want.runs {
				t.Errorf("delivery %d: %d %q, handler ran %d times; want %d, %d", i+1, resp.StatusCode, got, runs, want.status, want.runs)
			}
		}
	})
}
