package util

import (
	"encoding/xml"
	"testing"
)

func TestAppendCDATA(t *testing.T) {
	tests := []struct {
		in, want string // want: the text an XML parser reads back
	}{
		{"", ""},
		{"hello 你好", "hello 你好"},
		{"a]]>b", "a]]>b"},
		{"]]>]]>", "]]>]]>"},
		{"<tag>&amp;", "<tag>&amp;"},
		{"bad\x00byte\x01", "bad\uFFFDbyte\uFFFD"},
		{"broken \xff utf-8", "broken \uFFFD utf-8"},
		{"tab\tnew\nline", "tab\tnew\nline"},
		{"plain ASCII, with <tags> & [brackets", "plain ASCII, with <tags> & [brackets"},
		{"a]b", "a]b"},
	}
	for _, tt := range tests {
		doc := string(AppendCDATA([]byte("<x>"), tt.in)) + "</x>"
		var v struct {
			Text string `xml:",chardata"`
		}
		if err := xml.Unmarshal([]byte(doc), &v); err != nil {
			t.Errorf("AppendCDATA(%q) = %q: not well-formed: %v", tt.in, doc, err)
			continue
		}
		if v.Text != tt.want {
			t.Errorf("AppendCDATA(%q) reads back as %q, want %q", tt.in, v.Text, tt.want)
		}
	}
}

// FuzzAppendCDATA checks that the ASCII fast path writes what the
// character-by-character path writes.
func FuzzAppendCDATA(f *testing.F) {
	for _, s := range []string{"", "hello", "a]]>b", "tab\t\r\n", "\x00\x7f", "你好", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := string(AppendCDATA(nil, s))
		want := "<![CDATA[" + string(appendCDATAText(nil, s)) + "]]>"
		if got != want {
			t.Fatalf("AppendCDATA(%q) = %q, want %q", s, got, want)
		}
		if n := CDATALen(s); len(got) > n {
			t.Fatalf("AppendCDATA(%q) wrote %d bytes, CDATALen said at most %d", s, len(got), n)
		}
	})
}

func BenchmarkAppendCDATA(b *testing.B) {
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendCDATA(dst[:0], "o9AgO5Kd5ggOC-bXrbNODIiE3bGY")
	}
}
