package msgcrypt

import (
	"bytes"
	"unicode/utf8"
)

// scanEnvelope reads the envelope WeChat sends,
// <xml><ToUserName><![CDATA[…]]></ToUserName><Encrypt><![CDATA[…]]></Encrypt></xml>,
// and, in compatible mode, the plaintext fields beside them: one level of
// elements, each holding one CDATA section or plain text without
// references. It reports false for anything else (nesting, entities,
// comments, attributes, carriage returns, …), which is then left to
// encoding/xml; where it reports true its result is encoding/xml's.
func scanEnvelope(body []byte) (Envelope, bool) {
	i := 0
	for i < len(body) && isSpace(body[i]) {
		i++
	}
	const root = "<xml>"
	if len(body)-i < len(root) || string(body[i:i+len(root)]) != root {
		return Envelope{}, false
	}
	i += len(root)
	var e Envelope
	for {
		for i < len(body) && isSpace(body[i]) {
			i++
		}
		if i+1 >= len(body) || body[i] != '<' {
			return Envelope{}, false
		}
		if body[i+1] == '/' {
			return e, len(body)-i >= 6 && string(body[i:i+6]) == "</xml>"
		}
		j := i + 1
		for j < len(body) && isNameByte(body[j]) {
			j++
		}
		if j == i+1 || j >= len(body) {
			return Envelope{}, false
		}
		name := body[i+1 : j]
		var v []byte
		switch {
		case body[j] == '>':
			i = j + 1
			rest := body[i:]
			if len(rest) >= 9 && string(rest[:9]) == "<![CDATA[" {
				k := bytes.Index(rest[9:], cdataEnd)
				if k < 0 {
					return Envelope{}, false
				}
				v = rest[9 : 9+k]
				i += 9 + k + 3
			} else {
				k := 0
				for k < len(rest) && rest[k] != '<' {
					if rest[k] == '&' || rest[k] == ']' {
						return Envelope{}, false
					}
					k++
				}
				v = rest[:k]
				i += k
			}
			rest = body[i:]
			if len(rest) < len(name)+3 || rest[0] != '<' || rest[1] != '/' || string(rest[2:2+len(name)]) != string(name) || rest[2+len(name)] != '>' {
				return Envelope{}, false
			}
			i += len(name) + 3
			if !validText(v) {
				return Envelope{}, false
			}
		case body[j] == '/' && j+1 < len(body) && body[j+1] == '>':
			i = j + 2
		default:
			return Envelope{}, false
		}
		switch string(name) {
		case "ToUserName":
			e.ToUserName = string(v)
		case "Encrypt":
			e.Encrypt = string(v)
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// validText reports whether encoding/xml would return v unchanged: XML
// characters only, and no carriage return (which it turns into a newline).
func validText(v []byte) bool {
	for i, c := range v {
		if c >= utf8.RuneSelf {
			for _, r := range string(v[i:]) {
				switch {
				case r == utf8.RuneError, r < 0x20 && r != '\t' && r != '\n',
					r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF:
					return false
				}
			}
			return true
		}
		if c < 0x20 && c != '\t' && c != '\n' {
			return false
		}
	}
	return true
}

var cdataEnd = []byte("]]>")
