package middleware_test

import (
	"bytes"
	"errors"
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

	"github.com/gorilla/mux"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/util"
)

// The official handshake vector, wechat-platform.md §8.
const (
	vecToken = "AAAAA"
	vecTS    = "1714036504"
	vecNonce = "1514711492"
	vecSig   = "f464b24fc39322e44b38aa78f5edd27bd1441696"
	vecEcho  = "4375120948345356249"
)

// vecTime is the instant of the vector's timestamp: the tests' clock.
var vecTime = time.Unix(1714036504, 0)

// harness records what the middleware and the next handler did. The server
// runs handlers on its own goroutines, hence the mutex.
type harness struct {
	mu       sync.Mutex
	logs     bytes.Buffer
	results  []middleware.Result
	calls    int
	nextBody []byte
	nextCL   int64
	nextQ    url.Values
	now      time.Time
}

func newHarness() *harness { return &harness{now: vecTime} }

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
		body, err := io.ReadAll(r.Body)
		h.mu.Lock()
		h.calls++
		h.nextBody, h.nextCL, h.nextQ = body, r.ContentLength, r.URL.Query()
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

// sizedMsg is a message of exactly n bytes (n >= 53).
func sizedMsg(n int) string {
	const pre, post = "<xml><MsgType>text</MsgType><Content>", "</Content></xml>"
	return pre + strings.Repeat("x", n-len(pre)-len(post)) + post
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

func TestHandshakeVector(t *testing.T) {
	h := newHarness()
	srv := httptest.NewServer(middleware.Verify(vecToken, h.options()...)(h.next()))
	defer srv.Close()

	q := "signature=" + vecSig + "&timestamp=" + vecTS + "&nonce=" + vecNonce + "&echostr=" + vecEcho
	resp, body := do(t, srv.Client(), http.MethodGet, srv.URL+"/?"+q, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200; body %q", resp.StatusCode, body)
	}
	if body != vecEcho {
		t.Errorf("body %q, want exactly %q", body, vecEcho)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	logs, results, calls := h.take()
	if calls != 0 {
		t.Errorf("the handshake reached the next handler %d times", calls)
	}
	// An accepted callback is one Info line, never a rejection.
	if strings.Count(logs, "\n") != 1 || !strings.Contains(logs, `level=INFO msg="wechat callback" outcome=echo status=200`) {
		t.Errorf("an accepted handshake was not logged as one Info line: %s", logs)
	}
	if len(results) != 1 || results[0] != (middleware.Result{Outcome: middleware.OutcomeEcho}) {
		t.Errorf("results %+v, want one echo", results)
	}
}

// TestRequests sends each kind of good and bad request over real HTTP and
// checks the status, the body, the next handler, the result, and the log.
func TestRequests(t *testing.T) {
	const token = "s3cretT0ken"
	ts := strconv.FormatInt(vecTime.Unix(), 10)
	good := signedQuery(token, ts, "n0nce")
	with := func(v url.Values, kv ...string) string {
		c := url.Values{}
		for k, vs := range v {
			c[k] = append([]string(nil), vs...)
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "\x00" {
				c.Del(kv[i])
			} else {
				c.Set(kv[i], kv[i+1])
			}
		}
		return c.Encode()
	}
	// Each accepted plain POST needs a signature of its own: the same
	// signature with another body is refused as a replay.
	fresh := func(nonce string, kv ...string) string {
		return with(signedQuery(token, ts, nonce), kv...)
	}
	at := func(d time.Duration) string {
		t := strconv.FormatInt(vecTime.Add(d).Unix(), 10)
		return signedQuery(token, t, "n0nce").Encode()
	}
	tests := []struct {
		name     string
		method   string
		query    string
		body     string
		status   int
		outcome  middleware.Outcome
		previous bool
		reason   string // in the answer's body; "" for accepted requests
	}{
		{"handshake", "GET", with(good, "echostr", "hello world"), "", 200, middleware.OutcomeEcho, false, ""},
		{"upper-case signature", "GET", with(good, "signature", strings.ToUpper(good.Get("signature")), "echostr", "e"), "", 200, middleware.OutcomeEcho, false, ""},
		{"escaped nonce", "POST", signedQuery(token, ts, "a b&c=d").Encode(), textMsg(1), 200, middleware.OutcomePass, false, ""},
		{"post", "POST", with(good, "openid", "o9AgO5Kd5ggOC"), "<xml><MsgType>text</MsgType></xml>", 200, middleware.OutcomePass, false, ""},
		{"post json", "POST", fresh("n-json"), `{"ToUserName":"gh_1","MsgType":"event","Event":"debug_demo","debug_str":"hi"}`, 200, middleware.OutcomePass, false, ""},
		{"post ignores echostr", "POST", fresh("n-echostr", "echostr", "x"), textMsg(2), 200, middleware.OutcomePass, false, ""},
		{"encrypt_type raw", "POST", fresh("n-raw", "encrypt_type", "raw"), textMsg(3), 200, middleware.OutcomePass, false, ""},
		{"post empty body", "POST", good.Encode(), "", 400, middleware.OutcomeBadMessage, false, "not a WeChat push"},
		{"post not a message", "POST", good.Encode(), "b", 400, middleware.OutcomeBadMessage, false, "not a WeChat push"},
		{"post without MsgType", "POST", good.Encode(), "<xml><Content>x</Content></xml>", 400, middleware.OutcomeBadMessage, false, "no MsgType"},
		{"unknown encrypt_type", "POST", with(good, "encrypt_type", "des"), textMsg(4), 400, middleware.OutcomeBadQuery, false, "unknown encrypt_type"},
		{"duplicate encrypt_type", "POST", with(good, "encrypt_type", "raw") + "&encrypt_type=aes", textMsg(4), 400, middleware.OutcomeBadQuery, false, "duplicate encrypt_type"},
		{"aes without a key", "POST", with(good, "encrypt_type", "aes", "msg_signature", vecSig), textMsg(4), 400, middleware.OutcomeNoAESKey, false, "no EncodingAESKey"},
		{"no echostr", "GET", good.Encode(), "", 400, middleware.OutcomeNoEcho, false, "missing echostr"},
		{"empty echostr", "GET", with(good, "echostr", ""), "", 400, middleware.OutcomeNoEcho, false, "missing echostr"},
		{"no query", "GET", "", "", 400, middleware.OutcomeMissingParam, false, "missing signature"},
		{"no signature", "POST", with(good, "signature", "\x00"), "b", 400, middleware.OutcomeMissingParam, false, "missing signature"},
		{"empty signature", "POST", with(good, "signature", ""), "b", 400, middleware.OutcomeMissingParam, false, "missing signature"},
		{"no timestamp", "POST", with(good, "timestamp", "\x00"), "b", 400, middleware.OutcomeMissingParam, false, "missing timestamp"},
		{"no nonce", "GET", with(good, "nonce", "\x00", "echostr", "e"), "", 400, middleware.OutcomeMissingParam, false, "missing nonce"},
		{"letters in timestamp", "POST", with(good, "timestamp", "17140365x4"), "b", 400, middleware.OutcomeBadTimestamp, false, "timestamp is not a number"},
		{"signed timestamp", "POST", signedQuery(token, "+"+ts, "n0nce").Encode(), "b", 400, middleware.OutcomeBadTimestamp, false, "timestamp is not a number"},
		{"negative timestamp", "POST", signedQuery(token, "-5", "n0nce").Encode(), "b", 400, middleware.OutcomeBadTimestamp, false, "timestamp is not a number"},
		{"huge timestamp", "POST", signedQuery(token, strings.Repeat("9", 19), "n0nce").Encode(), "b", 400, middleware.OutcomeBadTimestamp, false, "timestamp is not a number"},
		{"duplicate signature", "POST", good.Encode() + "&signature=" + good.Get("signature"), "b", 400, middleware.OutcomeBadQuery, false, "duplicate signature"},
		{"escaped duplicate key", "POST", good.Encode() + "&n%6Fnce=n0nce", "b", 400, middleware.OutcomeBadQuery, false, "duplicate nonce"},
		{"malformed escape", "POST", with(good, "nonce", "\x00") + "&nonce=%zz", "b", 400, middleware.OutcomeBadQuery, false, "malformed escape in nonce"},
		{"semicolon pair skipped", "POST", with(good, "nonce", "\x00") + "&nonce=n0nce;x", "b", 400, middleware.OutcomeMissingParam, false, "missing nonce"},
		{"wrong signature", "POST", with(good, "signature", vecSig), "b", 403, middleware.OutcomeBadSignature, false, "signature mismatch"},
		{"short signature", "POST", with(good, "signature", "f464b2"), "b", 403, middleware.OutcomeBadSignature, false, "signature mismatch"},
		{"other token", "POST", signedQuery("other", ts, "n0nce").Encode(), "b", 403, middleware.OutcomeBadSignature, false, "signature mismatch"},
		{"other nonce", "POST", with(good, "nonce", "n0ncf"), "b", 403, middleware.OutcomeBadSignature, false, "signature mismatch"},
		{"window edge past", "POST", at(-5 * time.Minute), textMsg(5), 200, middleware.OutcomePass, false, ""},
		{"window edge future", "POST", at(5 * time.Minute), textMsg(6), 200, middleware.OutcomePass, false, ""},
		{"too old", "POST", at(-5*time.Minute - time.Second), "b", 403, middleware.OutcomeStale, false, "timestamp outside the allowed window"},
		{"too new", "GET", at(5*time.Minute+time.Second) + "&echostr=e", "", 403, middleware.OutcomeStale, false, "timestamp outside the allowed window"},
		{"put", "PUT", good.Encode(), "b", 405, middleware.OutcomeBadMethod, false, "method not allowed"},
		{"delete", "DELETE", good.Encode(), "", 405, middleware.OutcomeBadMethod, false, "method not allowed"},
		{"head", "HEAD", good.Encode(), "", 405, middleware.OutcomeBadMethod, false, ""},
	}

	h := newHarness()
	srv := httptest.NewServer(middleware.Verify(token, h.options()...)(h.next()))
	defer srv.Close()

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			resp, got := do(t, srv.Client(), tt.method, srv.URL+"/cb?"+tt.query, body)
			logs, results, calls := h.take()

			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d; body %q", resp.StatusCode, tt.status, got)
			}
			if len(results) != 1 || results[0].Outcome != tt.outcome || results[0].PreviousToken != tt.previous || results[0].Encrypted != (tt.outcome == middleware.OutcomeNoAESKey) {
				t.Errorf("results %+v, want one %v", results, tt.outcome)
			}
			if strings.Contains(got, token) || strings.Contains(logs, token) {
				t.Errorf("the token leaked: body %q, log %q", got, logs)
			}
			switch tt.outcome {
			case middleware.OutcomePass:
				if calls != 1 || got != "handled" {
					t.Fatalf("next handler ran %d times, answer %q; want once", calls, got)
				}
				h.mu.Lock()
				nb, ncl, nq := string(h.nextBody), h.nextCL, h.nextQ
				h.mu.Unlock()
				if nb != tt.body || ncl != int64(len(tt.body)) {
					t.Errorf("next handler read %q (ContentLength %d), want %q", nb, ncl, tt.body)
				}
				if tt.name == "post" && nq.Get("openid") != "o9AgO5Kd5ggOC" {
					t.Errorf("next handler lost the query: %v", nq)
				}
				// An accepted callback is one Info line, never a
				// rejection; the body and the openid stay out of it.
				if strings.Count(logs, "\n") != 1 || !strings.Contains(logs, `level=INFO msg="wechat callback" outcome=pass`) {
					t.Errorf("an accepted request was not logged as one Info line: %s", logs)
				}
				if strings.Contains(logs, "o9AgO5Kd5ggOC") || tt.body != "" && strings.Contains(logs, tt.body) {
					t.Errorf("the log holds the openid or the body: %s", logs)
				}
			case middleware.OutcomeEcho:
				q, _ := url.ParseQuery(tt.query)
				if calls != 0 || got != q.Get("echostr") {
					t.Errorf("answer %q, next ran %d times; want echostr %q only", got, calls, q.Get("echostr"))
				}
			default:
				if calls != 0 {
					t.Errorf("a rejected request reached the next handler")
				}
				if !strings.Contains(got, tt.reason) {
					t.Errorf("body %q does not say %q", got, tt.reason)
				}
				if n := strings.Count(logs, "\n"); n != 1 {
					t.Errorf("rejection logged %d times, want once: %s", n, logs)
				}
				for _, want := range []string{"level=WARN", "outcome=" + tt.outcome.String(), "remote=127.0.0.1:", "status=" + strconv.Itoa(tt.status)} {
					if !strings.Contains(logs, want) {
						t.Errorf("log %q lacks %q", logs, want)
					}
				}
				if tt.status == 405 && resp.Header.Get("Allow") != "GET, POST" {
					t.Errorf("Allow %q, want GET, POST", resp.Header.Get("Allow"))
				}
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	const token, limit = "tok", 64
	q := signedQuery(token, strconv.FormatInt(vecTime.Unix(), 10), "n").Encode()
	tests := []struct {
		name    string
		size    int
		chunked bool // no Content-Length: the limit must hold while reading
		status  int
		outcome middleware.Outcome
	}{
		{"at the limit", limit, false, 200, middleware.OutcomePass},
		{"at the limit chunked", limit, true, 200, middleware.OutcomePass},
		{"one over", limit + 1, false, 413, middleware.OutcomeTooLarge},
		{"one over chunked", limit + 1, true, 413, middleware.OutcomeTooLarge},
		{"far over chunked", 1 << 20, true, 413, middleware.OutcomeTooLarge},
	}
	h := newHarness()
	// Dedupe off: the bodies of one size are the same message.
	srv := httptest.NewServer(middleware.Verify(token, h.options(middleware.WithMaxBodySize(limit), middleware.WithDedupe(nil))...)(h.next()))
	defer srv.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := sizedMsg(tt.size)
			var body io.Reader = strings.NewReader(payload)
			if tt.chunked {
				body = io.NopCloser(body) // hides the length from NewRequest
			}
			resp, got := do(t, srv.Client(), "POST", srv.URL+"/?"+q, body)
			_, results, calls := h.take()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%q)", resp.StatusCode, tt.status, got)
			}
			if len(results) != 1 || results[0].Outcome != tt.outcome {
				t.Errorf("results %+v, want %v", results, tt.outcome)
			}
			wantCalls := 0
			if tt.status == 200 {
				wantCalls = 1
				h.mu.Lock()
				if string(h.nextBody) != payload {
					t.Errorf("next read %d bytes, want %d", len(h.nextBody), len(payload))
				}
				h.mu.Unlock()
			}
			if calls != wantCalls {
				t.Errorf("next ran %d times, want %d", calls, wantCalls)
			}
		})
	}
}

// failingBody fails after handing out some bytes, like a client that hangs up.
type failingBody struct{ n int }

func (f *failingBody) Read(p []byte) (int, error) {
	if f.n > 0 {
		n := min(len(p), f.n)
		f.n -= n
		return n, nil
	}
	return 0, errors.New("connection reset by peer")
}

func (f *failingBody) Close() error { return nil }

func TestBodyReadError(t *testing.T) {
	h := newHarness()
	mw := middleware.Verify("tok", h.options()...)(h.next())
	q := signedQuery("tok", strconv.FormatInt(vecTime.Unix(), 10), "n").Encode()
	r := httptest.NewRequest("POST", "/?"+q, nil)
	r.Body, r.ContentLength = &failingBody{n: 10}, 100
	w := httptest.NewRecorder()
	mw.ServeHTTP(w, r)
	_, results, calls := h.take()
	if w.Code != 400 || calls != 0 || len(results) != 1 || results[0].Outcome != middleware.OutcomeBodyError {
		t.Errorf("status %d, next ran %d times, results %+v; want 400, 0, body_error", w.Code, calls, results)
	}
}

// TestTimestampWindow moves an injected clock around a fixed, signed request.
func TestTimestampWindow(t *testing.T) {
	q := "signature=" + vecSig + "&timestamp=" + vecTS + "&nonce=" + vecNonce + "&echostr=" + vecEcho
	tests := []struct {
		name   string
		window *time.Duration // nil: the default
		skew   time.Duration  // clock minus the request's timestamp
		status int
	}{
		{"default on time", nil, 0, 200},
		{"default late", nil, 300 * time.Second, 200},
		{"default too late", nil, 301 * time.Second, 403},
		{"default early", nil, -300 * time.Second, 200},
		{"default too early", nil, -301 * time.Second, 403},
		{"90s inside", ptr(90 * time.Second), -90 * time.Second, 200},
		{"90s outside", ptr(90 * time.Second), 91 * time.Second, 403},
		{"off, ten years late", ptr(time.Duration(0)), 10 * 365 * 24 * time.Hour, 200},
		{"off, far future", ptr(time.Duration(0)), -50 * 365 * 24 * time.Hour, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness()
			h.setNow(vecTime.Add(tt.skew))
			opts := h.options()
			if tt.window != nil {
				opts = append(opts, middleware.WithTimestampWindow(*tt.window))
			}
			mw := middleware.Verify(vecToken, opts...)(h.next())
			w := httptest.NewRecorder()
			mw.ServeHTTP(w, httptest.NewRequest("GET", "/?"+q, nil))
			if w.Code != tt.status {
				t.Errorf("status %d, want %d (%s)", w.Code, tt.status, w.Body)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestTokenRotation(t *testing.T) {
	const oldTok, newTok = "oldToken123", "newToken456"
	ts := strconv.FormatInt(vecTime.Unix(), 10)
	tests := []struct {
		name     string
		previous string // option; "" means not given
		signer   string
		status   int
		usedPrev bool
	}{
		{"new token", oldTok, newTok, 200, false},
		{"old token during rotation", oldTok, oldTok, 200, true},
		{"a third token", oldTok, "guess", 403, false},
		{"old token after rotation", "", oldTok, 403, false},
		{"new token after rotation", "", newTok, 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness()
			opts := h.options()
			if tt.previous != "" {
				opts = append(opts, middleware.WithPreviousToken(tt.previous))
			}
			mw := middleware.Verify(newTok, opts...)(h.next())
			w := httptest.NewRecorder()
			r := httptest.NewRequest("POST", "/?"+signedQuery(tt.signer, ts, "nn").Encode(), strings.NewReader(textMsg(1)))
			mw.ServeHTTP(w, r)
			logs, results, _ := h.take()
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if len(results) != 1 || results[0].PreviousToken != tt.usedPrev {
				t.Errorf("results %+v, want PreviousToken %v", results, tt.usedPrev)
			}
			for _, secret := range []string{oldTok, newTok} {
				if strings.Contains(logs, secret) || strings.Contains(w.Body.String(), secret) {
					t.Errorf("token %q leaked: log %q, body %q", secret, logs, w.Body)
				}
			}
		})
	}
}

// TestGorillaMux mounts the middleware with Router.Use on a subrouter and
// checks it guards that subrouter only.
func TestGorillaMux(t *testing.T) {
	h := newHarness()
	r := mux.NewRouter()
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	wx := r.PathPrefix("/wechat").Subrouter()
	wx.Use(middleware.Verify(vecToken, h.options()...))
	wx.Handle("", h.next())
	srv := httptest.NewServer(r)
	defer srv.Close()

	vec := "signature=" + vecSig + "&timestamp=" + vecTS + "&nonce=" + vecNonce
	tests := []struct {
		method, path, body string
		status             int
		answer             string
		calls              int
	}{
		{"GET", "/wechat?" + vec + "&echostr=" + vecEcho, "", 200, vecEcho, 0},
		{"POST", "/wechat?" + vec + "&openid=o1", textMsg(1), 200, "handled", 1},
		{"POST", "/wechat?timestamp=" + vecTS + "&nonce=" + vecNonce, textMsg(2), 400, "missing signature\n", 0},
		{"PATCH", "/wechat?" + vec, "", 405, "method not allowed: use GET or POST\n", 0},
		{"GET", "/healthz", "", 200, "ok", 0},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, got := do(t, srv.Client(), tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			_, _, calls := h.take()
			if resp.StatusCode != tt.status || got != tt.answer || calls != tt.calls {
				t.Errorf("got %d %q with %d calls, want %d %q with %d", resp.StatusCode, got, calls, tt.status, tt.answer, tt.calls)
			}
		})
	}
}

func TestVerifyPanics(t *testing.T) {
	ok := http.NotFoundHandler()
	tests := []struct {
		name string
		f    func()
	}{
		{"empty token", func() { middleware.Verify("") }},
		{"negative window", func() { middleware.Verify("t", middleware.WithTimestampWindow(-time.Second)) }},
		{"zero body size", func() { middleware.Verify("t", middleware.WithMaxBodySize(0)) }},
		{"nil handler", func() { middleware.Verify("t")(nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.f()
		})
	}
	// And the defaults do not panic.
	middleware.Verify("t", middleware.WithLogger(nil), middleware.WithClock(nil))(ok)
}

func TestOutcome(t *testing.T) {
	seen := map[string]bool{}
	for o := middleware.OutcomeEcho; o <= middleware.OutcomeBadMessage; o++ {
		s := o.String()
		if s == "unknown" || seen[s] {
			t.Errorf("Outcome(%d).String() = %q: not a unique label", o, s)
		}
		seen[s] = true
		if o.Accepted() != (o == middleware.OutcomeEcho || o == middleware.OutcomePass) {
			t.Errorf("%v.Accepted() = %v", o, o.Accepted())
		}
		if st := o.Status(); o != middleware.OutcomePass && (st < 200 || st >= 500) {
			t.Errorf("%v.Status() = %d", o, st)
		}
	}
	if s := middleware.Outcome(0).String(); s != "unknown" {
		t.Errorf("zero Outcome is %q", s)
	}
	if s := middleware.Outcome(200).String(); s != "unknown" {
		t.Errorf("Outcome(200) is %q", s)
	}
}

// TestConcurrent runs accepted and rejected requests at once; with -race it
// checks that the middleware shares nothing mutable between requests.
func TestConcurrent(t *testing.T) {
	h := newHarness()
	mw := middleware.Verify(vecToken, h.options()...)(h.next())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				// A nonce per push: one signature with two bodies is a replay.
				nonce := strconv.Itoa(g*1000 + i)
				good := "/?signature=" + util.Signature(vecToken, vecTS, nonce) + "&timestamp=" + vecTS + "&nonce=" + nonce
				target, want := good, http.StatusOK
				if (g+i)%3 == 0 {
					target, want = good+"0", http.StatusForbidden // another nonce
				}
				w := httptest.NewRecorder()
				mw.ServeHTTP(w, httptest.NewRequest("POST", target, strings.NewReader(textMsg(int64(g*1000+i)))))
				if w.Code != want {
					t.Errorf("status %d, want %d", w.Code, want)
					return
				}
			}
		})
	}
	wg.Wait()
	logs, results, calls := h.take()
	rejected := strings.Count(logs, "level=WARN")
	if len(results) != 400 || calls+rejected != 400 || calls == 0 || rejected == 0 {
		t.Errorf("%d results, %d passed, %d rejected; want 400 in all", len(results), calls, rejected)
	}
}
