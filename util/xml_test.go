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
