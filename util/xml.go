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
	if plainASCII(s) {
		dst = append(dst, s...)
	} else {
		dst = appendCDATAText(dst, s)
	}
	return append(dst, "]]>"...)
}

// appendCDATAText appends s as the content of a CDATA section, character
// by character.
func appendCDATAText(dst []byte, s string) []byte {
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
	return dst
}

// CDATALen returns the most bytes AppendCDATA(dst, s) appends, so that a
// buffer sized with it never grows: exact for printable ASCII without ']'.
func CDATALen(s string) int {
	const frame = len("<![CDATA[]]>")
	if plainASCII(s) {
		return frame + len(s)
	}
	// A byte becomes at most 3 (U+FFFD); "]]>" becomes 15 bytes.
	return frame + 5*len(s)
}

// plainASCII reports whether s is printable ASCII (tabs and line breaks
// included) without ']', which AppendCDATA copies as it is.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || c == ']' || c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// xmlChar reports whether r may appear in an XML 1.0 document.
func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}
