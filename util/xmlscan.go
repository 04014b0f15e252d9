package util

import (
	"strings"
	"unicode/utf8"
)

// An XMLScanner reads the flat XML WeChat sends without encoding/xml:
// <xml> holding elements whose content is one CDATA section, plain text
// without references, or more such elements (the nested event fields).
// Every method reports false for anything outside that shape (entities,
// comments, processing instructions, attributes, mixed content, carriage
// returns, nesting deeper than 8 levels, …); the caller then parses the
// body with encoding/xml, whose result a successful scan always equals.
// Values are substrings of the scanned string: scanning allocates nothing.
type XMLScanner struct {
	s string
	i int
}

// An XMLElementSetter takes the children of one element, as
// XMLScanner.Elements finds them. SetElement is called after the child's
// start tag, with selfClosing set for <Name/>, and must consume the child
// up to and including its end tag (with Value, Elements or Skip).
type XMLElementSetter interface {
	SetElement(s *XMLScanner, name string, selfClosing bool, depth int) bool
}

// xmlMaxDepth bounds how deep a scan follows elements before it leaves the
// body to encoding/xml.
const xmlMaxDepth = 8

// ScanXML scans doc, the document <xml>…</xml> after optional white
// space, handing the root's children to f. What follows the root's end
// tag is ignored, as encoding/xml's Unmarshal ignores it.
func (s *XMLScanner) ScanXML(doc string, f XMLElementSetter) bool {
	s.s, s.i = doc, 0
	s.space()
	if !strings.HasPrefix(s.s[s.i:], "<xml>") {
		return false
	}
	s.i += len("<xml>")
	return s.Elements("xml", 0, f)
}

func (s *XMLScanner) space() {
	for s.i < len(s.s) && isXMLSpace(s.s[s.i]) {
		s.i++
	}
}

func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

func isXMLNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// Elements scans the children of the element end, whose start tag was
// just read, up to and including its end tag, handing each to f.
func (s *XMLScanner) Elements(end string, depth int, f XMLElementSetter) bool {
	if depth > xmlMaxDepth {
		return false
	}
	for {
		s.space()
		if s.i+1 >= len(s.s) || s.s[s.i] != '<' {
			return false
		}
		if s.s[s.i+1] == '/' {
			rest := s.s[s.i+2:]
			if len(rest) > len(end) && rest[len(end)] == '>' && rest[:len(end)] == end {
				s.i += 2 + len(end) + 1
				return true
			}
			return false
		}
		j := s.i + 1
		for j < len(s.s) && isXMLNameByte(s.s[j]) {
			j++
		}
		if j == s.i+1 || j >= len(s.s) {
			return false
		}
		name := s.s[s.i+1 : j]
		selfClosing := false
		switch {
		case s.s[j] == '>':
			s.i = j + 1
		case s.s[j] == '/' && j+1 < len(s.s) && s.s[j+1] == '>':
			s.i = j + 2
			selfClosing = true
		default:
			return false
		}
		if !f.SetElement(s, name, selfClosing, depth+1) {
			return false
		}
	}
}

// Value scans the content and end tag of the element name, which must be
// one CDATA section or plain text, and returns the content.
func (s *XMLScanner) Value(name string, selfClosing bool) (string, bool) {
	if selfClosing {
		return "", true
	}
	var v string
	rest := s.s[s.i:]
	if strings.HasPrefix(rest, "<![CDATA[") {
		k := strings.Index(rest[9:], "]]>")
		if k < 0 {
			return "", false
		}
		v = rest[9 : 9+k]
		s.i += 9 + k + 3
	} else {
		k := strings.IndexByte(rest, '<')
		if k < 0 {
			return "", false
		}
		v = rest[:k]
		if strings.IndexByte(v, '&') >= 0 || strings.IndexByte(v, ']') >= 0 {
			return "", false
		}
		s.i += k
	}
	rest = s.s[s.i:]
	if len(rest) < len(name)+3 || rest[0] != '<' || rest[1] != '/' || rest[2:2+len(name)] != name || rest[2+len(name)] != '>' {
		return "", false
	}
	s.i += len(name) + 3
	if !validXMLText(v) {
		return "", false
	}
	return v, true
}

// Skip consumes the element name, as encoding/xml ignores an element a
// struct does not model.
func (s *XMLScanner) Skip(name string, selfClosing bool, depth int) bool {
	if selfClosing {
		return true
	}
	save := s.i
	if _, ok := s.Value(name, false); ok {
		return true
	}
	s.i = save
	return s.Elements(name, depth, xmlSkipper{})
}

// xmlSkipper skips every child.
type xmlSkipper struct{}

func (xmlSkipper) SetElement(s *XMLScanner, name string, selfClosing bool, depth int) bool {
	return s.Skip(name, selfClosing, depth)
}

// validXMLText reports whether encoding/xml would return v unchanged: XML
// characters only, and no carriage return (which it turns into a newline).
func validXMLText(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= utf8.RuneSelf {
			return validUTF8XMLText(v[i:])
		}
		if c < 0x20 && c != '\t' && c != '\n' {
			return false
		}
	}
	return true
}

func validUTF8XMLText(v string) bool {
	for _, r := range v {
		switch {
		case r == utf8.RuneError:
			return false // invalid UTF-8, or a literal U+FFFD: let encoding/xml decide
		case r < 0x20 && r != '\t' && r != '\n':
			return false
		case r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF:
			return false
		}
	}
	return true
}
