package redisstore_test

// The callback middleware with Dedupe, the store that several hosts share.
// These tests live here, not in package middleware, because they start a
// redis-server through wechat/internal/redistest, which only the packages
// under wechat/ may import; the middleware's own tests cover the memory
// store with the same steps.

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/dedupe"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/wechat/internal/redistest"
	"github.com/wxcentral/wxcentral/wechat/redisstore"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The callback's token and safe-mode keys.
const (
	testToken = "s3cretT0ken"
	testAppID = "wx0123456789abcdef"
	testKey   = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// forged is a push someone who saw a signed URL posts with it.
const forged = "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[o9AgO5Kd5ggOC]]></FromUserName>" +
	"<CreateTime>1714036504</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[FORGED-CONTENT]]></Content>" +
	"<MsgId>31337</MsgId></xml>"

// startRedis starts a private redis-server for the test (see redistest:
// skipped without the binary, a failure with CI=true) and returns a client.
func startRedis(t *testing.T) *redis.Client {
	t.Helper()
	s := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// harness records what the middleware and the next handler did, and is
// the middleware's clock. The server runs handlers on its own goroutines,
// hence the mutex.
type harness struct {
	mu      sync.Mutex
	logs    bytes.Buffer
	results []middleware.Result
	calls   int
	now     time.Time
}

func newHarness() *harness { return &harness{now: time.Unix(1714036504, 0)} }

func (h *harness) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logs.Write(p)
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) setNow(t time.Time) {
	h.mu.Lock()
	h.now = t
	h.mu.Unlock()
}

// options are the harness's logger, clock and result recorder, then extra.
func (h *harness) options(extra ...middleware.Option) []middleware.Option {
	return append([]middleware.Option{
		middleware.WithLogger(slog.New(slog.NewTextHandler(h, nil))),
		middleware.WithClock(util.ClockFunc(h.clock)),
		middleware.WithResultFunc(func(_ *http.Request, res middleware.Result) {
			h.mu.Lock()
			h.results = append(h.results, res)
			h.mu.Unlock()
		}),
	}, extra...)
}

// next is the handler behind the middleware: it reads the body and answers
// "handled".
func (h *harness) next() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		h.mu.Lock()
		h.calls++
		h.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "handled")
	})
}

// take returns and clears what was recorded.
func (h *harness) take() (logs string, results []middleware.Result, calls int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	logs, results, calls = h.logs.String(), h.results, h.calls
	h.logs.Reset()
	h.results, h.calls = nil, 0
	return
}

// textMsg is a text message from a user with MsgId id: distinct ids are
// distinct messages to the dedupe.
func textMsg(id int64) string {
	return "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[o9AgO5Kd5ggOC]]></FromUserName>" +
		"<CreateTime>1714036504</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content>" +
		"<MsgId>" + strconv.FormatInt(id, 10) + "</MsgId></xml>"
}

// signedQuery is a query signed with token for timestamp ts and nonce.
func signedQuery(token, ts, nonce string) url.Values {
	return url.Values{
		"signature": {util.Signature(token, ts, nonce)},
		"timestamp": {ts},
		"nonce":     {nonce},
	}
}

func do(t *testing.T, c *http.Client, method, target string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// recv receives from ch, or fails the test after 10 s: a safety net
// against hanging when the middleware is broken, not a timing assumption.
func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// safeWechat plays WeChat in safe mode with wechattest's sealer.
type safeWechat struct{ s *wechattest.AESSealer }

func newSafeWechat(t *testing.T) safeWechat {
	t.Helper()
	s, err := wechattest.NewAESSealer(testToken, testAppID, testKey)
	if err != nil {
		t.Fatal(err)
	}
	return safeWechat{s}
}

// push is one safe-mode POST: its query and body.
type push struct {
	q    url.Values
	body string
}

// seal encrypts plain and signs it for timestamp ts and nonce.
func (wx safeWechat) seal(t *testing.T, ts int64, nonce, plain string) push {
	t.Helper()
	tss := strconv.FormatInt(ts, 10)
	body, msgSig, err := wx.s.Seal([]byte(plain), tss, nonce)
	if err != nil {
		t.Fatal(err)
	}
	q := signedQuery(testToken, tss, nonce)
	q.Set("openid", "o9AgO5Kd5ggOC")
	q.Set("encrypt_type", "aes")
	q.Set("msg_signature", msgSig)
	return push{q, string(body)}
}

func (wx safeWechat) post(t *testing.T, c *http.Client, base string, p push) (*http.Response, string) {
	t.Helper()
	return do(t, c, http.MethodPost, base+"/?"+p.q.Encode(), strings.NewReader(p.body))
}

// replyEnvelope holds the fields of an encrypted reply that a test compares.
type replyEnvelope struct {
	Encrypt string
	Nonce   string
}

// open checks an encrypted reply as WeChat does and returns its plaintext
// and envelope.
func (wx safeWechat) open(t *testing.T, body []byte) (string, replyEnvelope) {
	t.Helper()
	plain, err := wx.s.Open(body)
	if err != nil {
		t.Fatalf("reply %q: %v", body, err)
	}
	var env replyEnvelope
	if err := xml.Unmarshal(body, &env); err != nil {
		t.Fatalf("reply %q is no envelope: %v", body, err)
	}
	return string(plain), env
}

// TestMiddlewareReplayTwoHosts sends, over HTTP, one signed plain-mode URL
// with the push it was signed for, again with the same push (WeChat
// re-sending it), and with other bodies, to two hosts that share a Redis
// dedupe store: only the byte-identical body passes, and a URL used on one
// host cannot carry another body to the second.
func TestMiddlewareReplayTwoHosts(t *testing.T) {
	c := startRedis(t)
	opts := []middleware.Option{middleware.WithDedupe(&redisstore.Dedupe{Client: c, Prefix: "test:replay:"})}
	h := newHarness()
	host1 := httptest.NewServer(middleware.Verify(testToken, h.options(opts...)...)(h.next()))
	defer host1.Close()
	host2 := httptest.NewServer(middleware.Verify(testToken, h.options(opts...)...)(h.next()))
	defer host2.Close()

	ts := strconv.FormatInt(h.clock().Unix(), 10)
	u := "/?" + signedQuery(testToken, ts, "r1").Encode() + "&openid=o9AgO5Kd5ggOC"
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
		resp, got := do(t, d.host.Client(), "POST", d.host.URL+u, strings.NewReader(d.body))
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

	// The forged body is a valid push: with a signature of its own it is
	// accepted.
	own := "/?" + signedQuery(testToken, ts, "r2").Encode()
	if resp, got := do(t, host2.Client(), "POST", host2.URL+own, strings.NewReader(forged)); resp.StatusCode != 200 {
		t.Errorf("a signature's first push: %d %q", resp.StatusCode, got)
	}
}

// TestMiddlewareReplayWindow checks that the Redis key of a triple lives
// until its timestamp leaves the window, no longer, that the triple is
// remembered while the timestamp is inside the window, and then refused as
// stale anyway.
func TestMiddlewareReplayWindow(t *testing.T) {
	c := startRedis(t)
	const prefix = "test:window:"
	h := newHarness()
	srv := httptest.NewServer(middleware.Verify(testToken, h.options(middleware.WithDedupe(&redisstore.Dedupe{Client: c, Prefix: prefix}))...)(h.next()))
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
	for nonce, want := range map[string]time.Duration{
		"w1": middleware.DefaultTimestampWindow + time.Second,
		"w2": time.Minute + time.Second,
	} {
		keys, err := c.Keys(context.Background(), prefix+"replay|*|"+nonce).Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("replay keys for %s: %v %v", nonce, keys, err)
		}
		ttl := c.PTTL(context.Background(), keys[0]).Val()
		if ttl <= want-10*time.Second || ttl > want {
			t.Errorf("key %s lives %v, want about %v", keys[0], ttl, want)
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
}

// TestMiddlewareReplayConcurrent posts one signed URL with eight different
// bodies at once to two hosts sharing Redis: exactly one is accepted,
// whichever comes first.
func TestMiddlewareReplayConcurrent(t *testing.T) {
	c := startRedis(t)
	h := newHarness()
	opts := []middleware.Option{middleware.WithDedupe(&redisstore.Dedupe{Client: c, Prefix: "test:concurrent:", PollInterval: time.Millisecond})}
	hosts := []*httptest.Server{
		httptest.NewServer(middleware.Verify(testToken, h.options(opts...)...)(h.next())),
		httptest.NewServer(middleware.Verify(testToken, h.options(opts...)...)(h.next())),
	}
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
}

// TestMiddlewareReplayStoreDown checks that a plain push is accepted when
// the shared store is unreachable (a lost message is worse), and that the
// failure is logged at Error.
func TestMiddlewareReplayStoreDown(t *testing.T) {
	rds := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: rds.Addr, MaxRetries: -1})
	defer c.Close()
	rds.Stop()
	h := newHarness()
	srv := httptest.NewServer(middleware.Verify(testToken, h.options(middleware.WithDedupe(redisstore.NewDedupe(c)))...)(h.next()))
	defer srv.Close()
	u := srv.URL + "/?" + signedQuery(testToken, strconv.FormatInt(h.clock().Unix(), 10), "down").Encode()
	resp, got := do(t, srv.Client(), "POST", u, strings.NewReader(textMsg(1)))
	logs, _, calls := h.take()
	if resp.StatusCode != 200 || got != "handled" || calls != 1 {
		t.Fatalf("with the store down: %d %q, handler ran %d times; want 200 handled once", resp.StatusCode, got, calls)
	}
	if !strings.Contains(logs, `level=ERROR msg="wechat callback replay check failed; accepted without it"`) {
		t.Errorf("the failure was not logged: %s", logs)
	}
}

// TestMiddlewareReplayAfterDedupeTTL re-sends one accepted push, byte for
// byte, 40 s later (past dedupe.DefaultTTL, inside the timestamp window)
// with the Redis store: it is answered with the first reply and never runs
// the handler again, in plain and safe mode; Redis keeps the reply as long
// as a triple can come back.
func TestMiddlewareReplayAfterDedupeTTL(t *testing.T) {
	wx := newSafeWechat(t)
	c := startRedis(t)
	prefix := "test:" + t.Name() + ":"
	h := newHarness()
	store := &redisstore.Dedupe{Client: c, Prefix: prefix, PollInterval: 5 * time.Millisecond}
	srv := httptest.NewServer(middleware.Verify(testToken, h.options(middleware.WithDedupe(store), middleware.WithAES(testAppID, testKey), middleware.WithAllowPlaintext(true))...)(h.next()))
	defer srv.Close()
	start := h.clock()
	plainURL := srv.URL + "/?" + signedQuery(testToken, strconv.FormatInt(start.Unix(), 10), "late").Encode()
	sealed := wx.seal(t, start.Unix(), "late-safe", textMsg(2))
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
		resp, got = wx.post(t, srv.Client(), srv.URL, sealed)
		_, _, calls = h.take()
		if resp.StatusCode != 200 || calls != want {
			t.Errorf("safe push at +%v: %d %q, handler ran %d times; want 200, %d", at, resp.StatusCode, got, calls, want)
		} else if plain, _ := wx.open(t, []byte(got)); plain != "handled" {
			t.Errorf("safe push at +%v answered %q", at, plain)
		}
	}

	// Redis keeps time itself: the reply must be set to live as long as a
	// triple can come back, not dedupe.DefaultTTL.
	keys, err := c.Keys(context.Background(), prefix+"*|msg|*").Result()
	if err != nil || len(keys) == 0 {
		t.Errorf("dedupe keys: %v %v", keys, err)
	}
	want := 2*middleware.DefaultTimestampWindow + time.Second
	for _, k := range keys {
		if ttl := c.PTTL(context.Background(), k).Val(); ttl <= want-10*time.Second || ttl > want {
			t.Errorf("dedupe key %s lives %v, want about %v", k, ttl, want)
		}
	}
}

// waitSignal wraps a dedupe.Store and signals each delivery that found the
// key taken and is about to wait for the first one's reply.
type waitSignal struct {
	dedupe.Store
	waiting chan string // the key, once per Wait
}

func (s *waitSignal) Wait(ctx context.Context, key string) (dedupe.Reply, error) {
	s.waiting <- key
	return s.Store.Wait(ctx, key)
}

type delivery struct {
	status int
	body   string
	nonce  string
}

// TestMiddlewareRetries sends one safe-mode push three times, 5 s apart on
// the harness clock, while the handler of the first is blocked, with the
// Redis store: the handler runs once, and every delivery gets the first
// reply, encrypted afresh for each.
func TestMiddlewareRetries(t *testing.T) {
	wx := newSafeWechat(t)
	c := startRedis(t)
	h := newHarness()
	store := &redisstore.Dedupe{Client: c, Prefix: "test:" + t.Name() + ":", PollInterval: 5 * time.Millisecond}
	sig := &waitSignal{Store: store, waiting: make(chan string, 3)}
	var mu sync.Mutex
	n := 0
	started, release := make(chan struct{}), make(chan struct{})
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			close(started)
			<-release
		}
		m, _ := message.FromContext(r.Context())
		w.Header().Set("Content-Type", message.ContentType)
		w.Write(m.ReplyText(h.clock(), fmt.Sprintf("run %d: %s", n, m.Content)))
	})
	srv := httptest.NewServer(middleware.Verify(testToken, h.options(middleware.WithAES(testAppID, testKey), middleware.WithDedupe(sig))...)(next))
	t.Cleanup(srv.Close)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before srv.Close, should the test fail early

	msg := textMsg(4242)
	send := func(nonce string) delivery {
		resp, got := wx.post(t, srv.Client(), srv.URL, wx.seal(t, h.clock().Unix(), nonce, msg))
		return delivery{resp.StatusCode, got, nonce}
	}
	results := make(chan delivery, 3)
	go func() { results <- send("first") }()
	recv(t, "the first delivery to reach the handler", started)
	for _, nonce := range []string{"second", "third"} {
		h.setNow(h.clock().Add(5 * time.Second))
		go func() { results <- send(nonce) }()
		// The re-delivery found the push claimed and waits.
		recv(t, "the "+nonce+" delivery to wait for the first", sig.waiting)
	}
	unblock()

	var want string
	seen := map[string]bool{}
	for range 3 {
		d := recv(t, "a reply", results)
		if d.status != 200 {
			t.Fatalf("delivery %s: status %d: %q", d.nonce, d.status, d.body)
		}
		plain, env := wx.open(t, []byte(d.body))
		if env.Nonce != d.nonce {
			t.Errorf("delivery %s answered with Nonce %q", d.nonce, env.Nonce)
		}
		if seen[env.Encrypt] {
			t.Errorf("two deliveries got the same ciphertext: each must be encrypted afresh")
		}
		seen[env.Encrypt] = true
		if want == "" {
			want = plain
		} else if plain != want {
			t.Errorf("delivery %s got %q, another got %q", d.nonce, plain, want)
		}
	}
	if !strings.Contains(want, "run 1: hello") {
		t.Errorf("the deliveries got %q, want the first run's reply", want)
	}
	mu.Lock()
	defer mu.Unlock()
	if n != 1 {
		t.Fatalf("the handler ran %d times for three deliveries, want once", n)
	}
}
