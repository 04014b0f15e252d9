package util

import (
	"strings"
	"unicode/utf8"
)

// AppendCDATA appends s to dst as an XML CDATA section, the way WeChat's
// XML carries text. A "]]>" inside s is split across two sections, and
// bytes that are not valid UTF-8 or characters XML 1.0 forbids become
// U+FFFD, so any string yields well-formed XML.
func AppendCDATA(dst []byte, s string) []byte {
	dst = append(dst, "<![CDATA["...)
	for len(s) > 0 {
		if strings.HasPrefix(s, "]]>") {
			dst = append(dst, "]]]]><![CDATA[>"...)
			s = s[3:]
			continue
		}
		r, n := utf8.DecodeRuneInString(s)
		if (r == utf8.RuneError && n == 1) || !xmlChar(r) {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, s[:n]...)
		}
		s = s[n:]
	}
	return append(dst, "]]>"...)
}

// xmlChar reports whether r may appear in an XML 1.0 document.
func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}
