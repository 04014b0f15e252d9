package util

import (
	"encoding/json"
	"testing"
)

func TestAppendJSONString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"hello", `"hello"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"line\nnext\r\ttab\x00\x1f", `"line\nnext\r\ttab\u0000\u001f"`},
		{"<a href=\"x\">&</a>", `"<a href=\"x\">&</a>"`},
		{"你好", `"你好"`},
		{"bad\xffbyte", `"bad\ufffdbyte"`},
		{"sep\u2028\u2029", `"sep\u2028\u2029"`},
	} {
		if got := string(AppendJSONString(nil, tc.in)); got != tc.want {
			t.Errorf("AppendJSONString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// FuzzAppendJSONString checks that encoding/json reads back what
// AppendJSONString wrote: s itself when it is valid UTF-8.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"uote\\", "\x00\x7f\n", "é\xc3", "\u2028]]>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendJSONString([]byte("x"), s)
		if b[0] != 'x' {
			t.Fatal("the prefix was overwritten")
		}
		var got string
		if err := json.Unmarshal(b[1:], &got); err != nil {
			t.Fatalf("%q gave invalid JSON %s: %v", s, b[1:], err)
		}
		want := string([]rune(s)) // each invalid byte becomes U+FFFD, as encoding/json reads it
		if got != want {
			t.Fatalf("%q read back as %q, want %q", s, got, want)
		}
	})
}
