package util

import (
	"slices"
	"strings"
	"testing"
)

// Vectors from shared/wechat-platform.md §8 and §10.1, each checked there
// with sha1sum.
var signatureVectors = []struct {
	name  string
	parts []string
	want  string
}{
	{"handshake", []string{"AAAAA", "1714036504", "1514711492"}, "f464b24fc39322e44b38aa78f5edd27bd1441696"},
	{"plain post", []string{"AAAAA", "1714037059", "486452656"}, "899cf89e464efb63f54ddac96b0a0a235f53aa78"},
	{"safe post", []string{"AAAAA", "1714112445", "415670741"}, "6c5c811b55cc85e0e1b54100749188c20beb3f5d"},
	{"order does not matter", []string{"1514711492", "AAAAA", "1714036504"}, "f464b24fc39322e44b38aa78f5edd27bd1441696"},
	{"msg_signature", []string{"AAAAA", "1714112445", "415670741",
		"+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="},
		"046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"},
	{"reply MsgSignature", []string{"AAAAA", "1713424427", "415670741",
		"ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ=="},
		"1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1"},
	{"pamtest", []string{"pamtest", "1409304348", "xxxxxx"}, "76480565cbe296026c53aaacd1ad523a1ddba24f"},
	// sha1 of the empty string.
	{"nothing", nil, "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
}

func TestSignatureVectors(t *testing.T) {
	for _, v := range signatureVectors {
		t.Run(v.name, func(t *testing.T) {
			orig := append([]string(nil), v.parts...)
			if got := Signature(v.parts...); got != v.want {
				t.Errorf("Signature = %s, want %s", got, v.want)
			}
			if got := string(AppendSignature([]byte("x"), v.parts...)); got != "x"+v.want {
				t.Errorf("AppendSignature = %s, want x%s", got, v.want)
			}
			if !VerifySignature(v.want, v.parts...) {
				t.Error("VerifySignature rejects the right signature")
			}
			if !VerifySignature(strings.ToUpper(v.want), v.parts...) {
				t.Error("VerifySignature rejects the right signature in upper case")
			}
			for i := range v.parts {
				if v.parts[i] != orig[i] {
					t.Fatalf("caller's slice reordered: %q", v.parts)
				}
			}
		})
	}
}

func TestVerifySignatureRejects(t *testing.T) {
	good := "f464b24fc39322e44b38aa78f5edd27bd1441696"
	parts := []string{"AAAAA", "1714036504", "1514711492"}
	for _, sig := range []string{
		"",
		good[:39],
		good + "0",
		"0" + good[1:],
		good[:39] + "7",
		strings.Repeat("0", 40),
		// Bytes that fold onto hex digits under a careless case fold.
		"\x16" + good[1:],
		"E" + good[1:],
	} {
		if VerifySignature(sig, parts...) {
			t.Errorf("VerifySignature(%q) = true", sig)
		}
	}
	if VerifySignature(good, "AAAAB", "1714036504", "1514711492") {
		t.Error("signature accepted for another token")
	}
}

func TestSignatureLargeInput(t *testing.T) {
	// More parts and bytes than fit on the stack take the heap path and
	// must agree with the small path's definition.
	long := strings.Repeat("z", 3000)
	parts := []string{"b", long, "a", "c", "d", "e", "f", "g", "h", "i"}
	want := Signature("a", "b", "c", "d", "e", "f", "g", "h", "i"+long)
	if got := Signature(parts...); got != want {
		t.Errorf("Signature over many parts = %s, want %s", got, want)
	}
}

func TestEqualHex(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"abcdef0123", "ABCDEF0123", true},
		{"abc", "abd", false},
		{"abc", "abcd", false},
		{"g", "G", false},
		{"@", "`", false},
	}
	for _, tt := range tests {
		if got := EqualHex(tt.a, tt.b); got != tt.want {
			t.Errorf("EqualHex(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestVerifySignatureAllocs(t *testing.T) {
	parts := []string{"AAAAA", "1714036504", "1514711492"}
	allocs := testing.AllocsPerRun(100, func() {
		if !VerifySignature("f464b24fc39322e44b38aa78f5edd27bd1441696", parts...) {
			t.Fatal("rejected")
		}
	})
	if allocs != 0 {
		t.Errorf("VerifySignature allocates %v times per call, want 0", allocs)
	}
}

func BenchmarkVerifySignature(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		VerifySignature("f464b24fc39322e44b38aa78f5edd27bd1441696", "AAAAA", "1714036504", "1514711492")
	}
}

func BenchmarkSignature(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Signature("AAAAA", "1714036504", "1514711492")
	}
}

// TestSignatureOrder checks that the parts are sorted whatever order they
// come in, for every permutation of four parts (two of them equal, one a
// prefix of another) and for more parts than are sorted inline.
func TestSignatureOrder(t *testing.T) {
	parts := []string{"1714036504", "tok", "nonce", "tok", "to"}
	want := Signature(strings.Join(slices.Sorted(slices.Values(parts)), ""))
	var permute func(p []string, k int)
	permute = func(p []string, k int) {
		if k == len(p) {
			if got := Signature(p...); got != want {
				t.Errorf("Signature%q = %s, want %s", p, got, want)
			}
			return
		}
		for i := k; i < len(p); i++ {
			p[k], p[i] = p[i], p[k]
			permute(p, k+1)
			p[k], p[i] = p[i], p[k]
		}
	}
	permute(slices.Clone(parts), 0)
	many := []string{"j", "i", "h", "g", "f", "e", "d", "c", "b", "a"}
	if got, want := Signature(many...), Signature("abcdefghij"); got != want {
		t.Errorf("ten parts: %s, want %s", got, want)
	}
}
