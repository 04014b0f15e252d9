package middleware_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/util"
)

// jsonLog collects slog lines as decoded JSON objects.
type jsonLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *jsonLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *jsonLog) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// take decodes and clears the lines logged so far, and returns the raw
// text too, for checks that nothing secret was logged.
func (l *jsonLog) take(t *testing.T) ([]map[string]any, string) {
	t.Helper()
	l.mu.Lock()
	raw := l.buf.String()
	l.buf.Reset()
	l.mu.Unlock()
	var lines []map[string]any
	for line := range strings.Lines(raw) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, m)
	}
	return lines, raw
}

func prefixes(t *testing.T, s ...string) []netip.Prefix {
	t.Helper()
	var ps []netip.Prefix
	for _, p := range s {
		ps = append(ps, netip.MustParsePrefix(p))
	}
	return ps
}

// TestTrustedProxies checks which address a rejected request is logged
// with, for direct peers and chains of proxies.
func TestTrustedProxies(t *testing.T) {
	tests := []struct {
		name     string
		trusted  []string
		peer     string   // r.RemoteAddr
		xff      []string // X-Forwarded-For lines
		realIP   string
		remote   string // logged as remote
		withPeer bool   // the peer logged too
	}{
		{"no proxies trusted", nil, "203.0.113.7:4711", []string{"1.2.3.4"}, "1.2.3.5", "203.0.113.7:4711", false},
		{"spoofed from an untrusted peer", []string{"10.0.0.0/8"}, "203.0.113.7:4711", []string{"1.2.3.4"}, "1.2.3.5", "203.0.113.7:4711", false},
		{"trusted peer, one hop", []string{"10.0.0.0/8"}, "10.1.2.3:80", []string{"198.51.100.9"}, "", "198.51.100.9", true},
		{"client's own prefix ignored", []string{"10.0.0.0/8"}, "10.1.2.3:80", []string{"6.6.6.6, 198.51.100.9"}, "", "198.51.100.9", true},
		{"chain of proxies", []string{"10.0.0.0/8", "192.168.0.0/16"}, "10.1.2.3:80", []string{"6.6.6.6, 198.51.100.9, 192.168.1.1, 10.9.9.9"}, "", "198.51.100.9", true},
		{"chain over several lines", []string{"10.0.0.0/8", "192.168.0.0/16"}, "10.1.2.3:80", []string{"6.6.6.6, 198.51.100.9", "192.168.1.1", "10.9.9.9"}, "", "198.51.100.9", true},
		{"every hop trusted", []string{"10.0.0.0/8"}, "10.1.2.3:80", []string{"10.0.0.1, 10.0.0.2"}, "", "10.0.0.1", true},
		{"malformed hop ends the walk", []string{"10.0.0.0/8"}, "10.1.2.3:80", []string{"6.6.6.6, unknown, 10.0.0.2"}, "", "10.0.0.2", true},
		{"malformed only hop", []string{"10.0.0.0/8"}, "10.1.2.3:80", []string{"unknown"}, "", "10.1.2.3:80", false},
		{"hop with a port", []string{"10.0.0.0/8"}, "10.1.2.3:80", []string{"198.51.100.9:5555"}, "", "198.51.100.9", true},
		{"X-Real-IP", []string{"10.0.0.0/8"}, "10.1.2.3:80", nil, "198.51.100.9", "198.51.100.9", true},
		{"X-Real-IP not an address", []string{"10.0.0.0/8"}, "10.1.2.3:80", nil, "nobody", "10.1.2.3:80", false},
		{"X-Forwarded-For before X-Real-IP", []string{"10.0.0.0/8"}, "10.1.2.3:80", []string{"198.51.100.9"}, "1.1.1.1", "198.51.100.9", true},
		{"IPv6 proxy", []string{"fd00::/8"}, "[fd00::1]:80", []string{"2001:db8::7"}, "", "2001:db8::7", true},
		{"IPv4-mapped peer", []string{"10.0.0.0/8"}, "[::ffff:10.1.2.3]:80", []string{"198.51.100.9"}, "", "198.51.100.9", true},
		{"IPv4-mapped prefix", []string{"::ffff:10.0.0.0/104"}, "10.1.2.3:80", []string{"198.51.100.9"}, "", "198.51.100.9", true},
		{"IPv4-mapped prefix, not 96 bits", []string{"::ffff:0.0.0.0/90"}, "10.1.2.3:80", []string{"198.51.100.9"}, "", "10.1.2.3:80", false},
		{"nginx: X-Real-IP and an appended X-Forwarded-For", []string{"10.0.0.0/8"}, "10.1.2.3:80", []string{"6.6.6.6, 198.51.100.9"}, "198.51.100.9", "198.51.100.9", true},
		{"no header from a trusted peer", []string{"10.0.0.0/8"}, "10.1.2.3:80", nil, "", "10.1.2.3:80", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log jsonLog
			mw := middleware.Verify(vecToken, middleware.WithLogger(log.logger()),
				middleware.WithTrustedProxies(prefixes(t, tt.trusted...)))(http.NotFoundHandler())
			r := httptest.NewRequest("POST", "/?signature=00&timestamp=1&nonce=1", strings.NewReader("b"))
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if tt.realIP != "" {
				r.Header.Set("X-Real-IP", tt.realIP)
			}
			w := httptest.NewRecorder()
			mw.ServeHTTP(w, r)
			if w.Code != http.StatusForbidden {
				t.Fatalf("status %d, want 403", w.Code)
			}
			lines, _ := log.take(t)
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1: %v", len(lines), lines)
			}
			l := lines[0]
			if l["remote"] != tt.remote {
				t.Errorf("remote %v, want %s", l["remote"], tt.remote)
			}
			if peer, ok := l["peer"]; ok != tt.withPeer || ok && peer != tt.peer {
				t.Errorf("peer %v (logged %v), want %s logged %v", peer, ok, tt.peer, tt.withPeer)
			}
		})
	}
}

// TestTrustedProxiesHTTP sends X-Forwarded-For over a real connection from
// 127.0.0.1: ignored while loopback is not trusted, used once it is.
func TestTrustedProxiesHTTP(t *testing.T) {
	for _, tt := range []struct {
		name    string
		trusted []string
		remote  string // prefix of the logged remote
	}{
		{"untrusted peer", []string{"10.0.0.0/8"}, "127.0.0.1:"},
		{"trusted peer", []string{"127.0.0.0/8", "::1/128"}, "198.51.100.9"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var log jsonLog
			srv := httptest.NewServer(middleware.Verify(vecToken, middleware.WithLogger(log.logger()),
				middleware.WithTrustedProxies(prefixes(t, tt.trusted...)))(http.NotFoundHandler()))
			defer srv.Close()
			req, err := http.NewRequest("GET", srv.URL+"/?signature=00&timestamp=1&nonce=1&echostr=x", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Forwarded-For", "6.6.6.6, 198.51.100.9")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403", resp.StatusCode)
			}
			lines, _ := log.take(t)
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1", len(lines))
			}
			if r, _ := lines[0]["remote"].(string); !strings.HasPrefix(r, tt.remote) {
				t.Errorf("remote %q, want %s…", r, tt.remote)
			}
		})
	}
}

func TestTrustedProxiesPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "WithTrustedProxies") {
			t.Errorf("panic %v, want one naming WithTrustedProxies", r)
		}
	}()
	middleware.Verify("tok", middleware.WithTrustedProxies([]netip.Prefix{{}}))
}

// TestAcceptedLogLine checks the one Info line of each accepted callback:
// its fields, the client address behind a trusted proxy, the latency on
// the injected clock, and that neither the OpenID, the body, the token nor
// the key reach it.
func TestAcceptedLogLine(t *testing.T) {
	const openID = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY"
	sum := sha256.Sum256([]byte(openID))
	wantUser := hex.EncodeToString(sum[:4])
	wx := wechat{testToken, testAppID, mustKey(t, testKey)}

	var log jsonLog
	var mu sync.Mutex
	now := vecTime
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now = now.Add(1500 * time.Millisecond) // the handler takes 1.5 s
		mu.Unlock()
		m, _ := message.FromContext(r.Context())
		if m.MsgType == message.TypeEvent {
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, "success")
			return
		}
		w.Header().Set("Content-Type", message.ContentType)
		w.Write(m.ReplyText(vecTime, "SECRET-REPLY"))
	})
	srv := httptest.NewServer(middleware.Verify(testToken,
		middleware.WithLogger(log.logger()),
		middleware.WithClock(util.ClockFunc(clock)),
		middleware.WithAES(testAppID, testKey),
		middleware.WithAllowPlaintext(true),
		middleware.WithTrustedProxies(prefixes(t, "127.0.0.0/8", "::1/128")),
	)(next))
	defer srv.Close()

	text := strings.Replace(textMsg(1), "o9AgO5Kd5ggOC", openID, 1)
	event := "<xml><ToUserName>gh_1</ToUserName><FromUserName>" + openID + "</FromUserName><CreateTime>1</CreateTime>" +
		"<MsgType>event</MsgType><Event>subscribe</Event><EventKey>SECRET-KEY</EventKey></xml>"
	ts := strconv.FormatInt(vecTime.Unix(), 10)
	send := func(target, body string) {
		t.Helper()
		req, err := http.NewRequest("POST", srv.URL+target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-For", "6.6.6.6, 198.51.100.9")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	sealed := wx.seal(t, vecTime.Unix(), "n3", strings.Replace(textMsg(3), "o9AgO5Kd5ggOC", openID, 1), false)
	for _, tc := range []struct {
		name   string
		target string
		body   string
		want   map[string]any
	}{
		{"plain text", "/?" + signedQuery(testToken, ts, "n1").Encode() + "&openid=" + openID, text,
			map[string]any{"outcome": "pass", "msg_type": "text", "encrypted": false, "status": 200.0}},
		{"plain event", "/?" + signedQuery(testToken, ts, "n2").Encode() + "&openid=" + openID, event,
			map[string]any{"outcome": "pass", "msg_type": "event", "event": "subscribe", "encrypted": false, "status": 202.0}},
		{"safe text", "/?" + sealed.q.Encode(), sealed.body,
			map[string]any{"outcome": "pass", "msg_type": "text", "encrypted": true, "status": 200.0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			send(tc.target, tc.body)
			lines, raw := log.take(t)
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1: %s", len(lines), raw)
			}
			l := lines[0]
			want := map[string]any{
				"level": "INFO", "msg": "wechat callback", "user": wantUser,
				"latency": 1.5e9, "method": "POST", "path": "/",
				"remote": "198.51.100.9",
			}
			for k, v := range tc.want {
				want[k] = v
			}
			for k, v := range want {
				if l[k] != v {
					t.Errorf("%s = %v (%T), want %v", k, l[k], l[k], v)
				}
			}
			if _, ok := l["event"]; ok && tc.want["event"] == nil {
				t.Errorf("event logged for a message: %v", l)
			}
			if p, _ := l["peer"].(string); !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("peer %q, want the proxy's address", p)
			}
			for _, secret := range []string{openID, testToken, testKey, "hello", "SECRET", "signature", sealed.q.Get("msg_signature")} {
				if strings.Contains(raw, secret) {
					t.Errorf("the log holds %q: %s", secret, raw)
				}
			}
		})
	}

	// A handler that writes nothing leaves the answer to whatever wraps
	// the middleware (net/http: 200, echo: the handler's error): the line
	// says status 0, not a 200 nobody may send.
	silent := httptest.NewServer(middleware.Verify(testToken, middleware.WithLogger(log.logger()),
		middleware.WithClock(util.ClockFunc(clock)))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	defer silent.Close()
	for _, tc := range []struct{ name, body string }{{"plain", text}, {"safe", sealed.body}} {
		target := "/?" + signedQuery(testToken, ts, "n5"+tc.name).Encode()
		var v []middleware.Option
		if tc.name == "safe" {
			target = "/?" + sealed.q.Encode()
			v = append(v, middleware.WithAES(testAppID, testKey))
		}
		srv := silent
		if v != nil {
			srv = httptest.NewServer(middleware.Verify(testToken, append(v, middleware.WithLogger(log.logger()),
				middleware.WithClock(util.ClockFunc(clock)))...)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
			defer srv.Close()
		}
		resp, err := srv.Client().Post(srv.URL+target, "text/xml", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		lines, raw := log.take(t)
		if len(lines) != 1 || lines[0]["outcome"] != "pass" || lines[0]["status"] != 0.0 {
			t.Errorf("%s, nothing written: %s", tc.name, raw)
		}
	}

	// The handshake is accepted too: one line, no message fields.
	req := "/?" + signedQuery(testToken, ts, "n4").Encode() + "&echostr=e"
	resp, err := srv.Client().Get(srv.URL + req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	lines, raw := log.take(t)
	if len(lines) != 1 || lines[0]["outcome"] != "echo" || lines[0]["status"] != 200.0 || lines[0]["level"] != "INFO" {
		t.Errorf("handshake log: %s", raw)
	}
}

// ProxyPrefix unmaps and masks, so that a check for a prefix that trusts
// everyone sees the mapped form of 0.0.0.0/0 as /0.
func TestProxyPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"::ffff:0.0.0.0/96":   "0.0.0.0/0",
		"::ffff:10.1.2.3/104": "10.0.0.0/8",
		"::ffff:10.1.2.3/128": "10.1.2.3/32",
		"::ffff:0.0.0.0/90":   "::ffc0:0:0/90", // an IPv6 prefix: the ffff part is masked away
		"10.1.2.3/8":          "10.0.0.0/8",
		"fd00::1/8":           "fd00::/8",
	} {
		if got := middleware.ProxyPrefix(netip.MustParsePrefix(in)); got.String() != want {
			t.Errorf("ProxyPrefix(%s) = %v, want %s", in, got, want)
		}
	}
}
