package middleware

import (
	"net/http/httptest"
	"testing"
	"time"
)

func TestParseQuery(t *testing.T) {
	tests := []struct {
		raw    string
		want   query
		reason string
	}{
		{"", query{}, ""},
		{"signature=s&timestamp=1&nonce=n&echostr=e", query{signature: "s", timestamp: "1", nonce: "n", echostr: "e"}, ""},
		{"encrypt_type=aes&msg_signature=m%20s&openid=o", query{encryptType: "aes", msgSignature: "m s"}, ""},
		{"msg_signature=a&msg_signature=b", query{}, "duplicate msg_signature parameter"},
		{"encrypt_type=aes&encrypt_type=raw", query{}, "duplicate encrypt_type parameter"},
		{"openid=o&nonce=a+b%26c&x=%zz", query{nonce: "a b&c"}, ""},
		{"sig%6Eature=s", query{signature: "s"}, ""},
		{"signature", query{}, ""},
		{"&&nonce=n&&", query{nonce: "n"}, ""},
		{"nonce=n;x&timestamp=1", query{timestamp: "1"}, ""},
		{"%zz=1&nonce=n", query{nonce: "n"}, ""},
		{"nonce=a&nonce=b", query{}, "duplicate nonce parameter"},
		{"echostr=&echostr=x", query{}, "duplicate echostr parameter"},
		{"timestamp=%g1", query{}, "malformed escape in timestamp parameter"},
	}
	for _, tt := range tests {
		got, reason := parseQuery(tt.raw)
		if got != tt.want || reason != tt.reason {
			t.Errorf("parseQuery(%q) = %+v, %q; want %+v, %q", tt.raw, got, reason, tt.want, tt.reason)
		}
	}
}

func TestParseSeconds(t *testing.T) {
	tests := []struct {
		s  string
		n  int64
		ok bool
	}{
		{"1714036504", 1714036504, true},
		{"0", 0, true},
		{"000000000000000001", 1, true},
		{"999999999999999999", 999999999999999999, true},
		{"1000000000000000000", 0, false},
		{"", 0, false},
		{"+1", 0, false},
		{"-1", 0, false},
		{" 1", 0, false},
		{"1e9", 0, false},
		{"0x10", 0, false},
	}
	for _, tt := range tests {
		n, ok := parseSeconds(tt.s)
		if n != tt.n || ok != tt.ok {
			t.Errorf("parseSeconds(%q) = %d, %v; want %d, %v", tt.s, n, ok, tt.n, tt.ok)
		}
	}
}

// BenchmarkCheck is the signature check alone, on the official handshake
// vector: query scan, timestamp, constant-time signature compare, window.
// It must report 0 allocs/op.
func BenchmarkCheck(b *testing.B) {
	for _, bc := range []struct {
		name  string
		query string
	}{
		{"handshake", "signature=f464b24fc39322e44b38aa78f5edd27bd1441696&timestamp=1714036504&nonce=1514711492&echostr=4375120948345356249"},
		{"post", "signature=f464b24fc39322e44b38aa78f5edd27bd1441696&timestamp=1714036504&nonce=1514711492&openid=o9AgO5Kd5ggOC-bXrbNODIiE3bGY&encrypt_type=aes&msg_signature=046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := &settings{token: "AAAAA", previous: "BBBBB", window: DefaultTimestampWindow, maxBody: DefaultMaxBodySize,
				now: func() time.Time { return time.Unix(1714036504, 0) }}
			method := "GET"
			if bc.name == "post" {
				method = "POST"
			}
			r := httptest.NewRequest(method, "/?"+bc.query, nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, res, _ := s.check(r); !res.Outcome.Accepted() {
					b.Fatalf("rejected: %v", res.Outcome)
				}
			}
		})
	}
}
