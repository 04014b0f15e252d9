package middleware_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/wxcentral/wxcentral/middleware"
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
