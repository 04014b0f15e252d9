package message

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds how deep the flat scanner follows elements it does not
// model before it leaves the body to encoding/xml.
const maxDepth = 8

// parseFlat parses the shapes WeChat sends: <xml> holding elements whose
// content is one CDATA section, plain text without references, or other
// elements (the nested event fields). It reports false for anything else
// (entities, comments, processing instructions, attributes, mixed content,
// carriage returns, a number that does not parse, …), and the caller then
// parses the body with encoding/xml, whose result it gives in those cases.
// Where it reports true, its result is the one encoding/xml gives
// (FuzzParse checks this).
func parseFlat(body []byte) (*Message, bool) {
	// The message and the scanner in one allocation: the scanner escapes
	// through the setters' interface calls anyway.
	p := &struct {
		m Message
		s scanner
	}{s: scanner{s: string(body)}} // one copy; every field is a substring of it
	s, m := &p.s, &p.m
	for s.i < len(s.s) && isSpace(s.s[s.i]) {
		s.i++
	}
	if !strings.HasPrefix(s.s[s.i:], "<xml>") {
		return nil, false
	}
	s.i += len("<xml>")
	if !s.elems("xml", 0, m) {
		return nil, false
	}
	return m, true
}

type scanner struct {
	s string
	i int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// elems scans the children of the element end up to and including its
// end tag, calling f for each child after its start tag (selfClosing when
// it was <Name/>). f must consume the child, end tag included.
// An elementSetter takes the children of one element; a pointer in an
// interface costs no allocation, where a method value would.
type elementSetter interface {
	set(s *scanner, name string, selfClosing bool, depth int) bool
}

func (s *scanner) elems(end string, depth int, f elementSetter) bool {
	if depth > maxDepth {
		return false
	}
	for {
		for s.i < len(s.s) && isSpace(s.s[s.i]) {
			s.i++
		}
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
		for j < len(s.s) && isNameByte(s.s[j]) {
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
		if !f.set(s, name, selfClosing, depth+1) {
			return false
		}
	}
}

// value scans the content and end tag of the element name, which must be
// one CDATA section or plain text.
func (s *scanner) value(name string, selfClosing bool) (string, bool) {
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
		if strings.ContainsAny(v, "&]") {
			return "", false
		}
		s.i += k
	}
	rest = s.s[s.i:]
	if len(rest) < len(name)+3 || rest[0] != '<' || rest[1] != '/' || rest[2:2+len(name)] != name || rest[2+len(name)] != '>' {
		return "", false
	}
	s.i += len(name) + 3
	if !validText(v) {
		return "", false
	}
	return v, true
}

// validText reports whether encoding/xml would return v unchanged: XML
// characters only, and no carriage return (which it turns into a newline).
func validText(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= utf8.RuneSelf {
			return validUTF8Text(v[i:])
		}
		if c < 0x20 && c != '\t' && c != '\n' {
			return false
		}
	}
	return true
}

func validUTF8Text(v string) bool {
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

// skip consumes an element this package does not model, as encoding/xml
// ignores it.
func (s *scanner) skip(name string, selfClosing bool, depth int) bool {
	if selfClosing {
		return true
	}
	save := s.i
	if _, ok := s.value(name, false); ok {
		return true
	}
	s.i = save
	return s.elems(name, depth, skipper{})
}

// skipper skips every child.
type skipper struct{}

func (skipper) set(s *scanner, name string, selfClosing bool, depth int) bool {
	return s.skip(name, selfClosing, depth)
}

func (s *scanner) str(dst *string, name string, selfClosing bool) bool {
	v, ok := s.value(name, selfClosing)
	*dst = v
	return ok
}

func (s *scanner) int64(dst *int64, name string, selfClosing bool) bool {
	v, ok := s.value(name, selfClosing)
	if !ok {
		return false
	}
	if v == "" {
		*dst = 0
		return true
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	*dst = n
	return err == nil
}

func (s *scanner) int(dst *int, name string, selfClosing bool) bool {
	var n int64
	ok := s.int64(&n, name, selfClosing)
	*dst = int(n)
	return ok
}

func (s *scanner) float(dst *float64, name string, selfClosing bool) bool {
	v, ok := s.value(name, selfClosing)
	if !ok {
		return false
	}
	if v == "" {
		*dst = 0
		return true
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	*dst = f
	return err == nil && !math.IsNaN(f)
}

func (m *Message) set(s *scanner, name string, sc bool, depth int) bool {
	switch name {
	case "ToUserName":
		return s.str(&m.ToUserName, name, sc)
	case "FromUserName":
		return s.str(&m.FromUserName, name, sc)
	case "CreateTime":
		return s.int64(&m.CreateTime, name, sc)
	case "MsgType":
		return s.str(&m.MsgType, name, sc)
	case "MsgId":
		return s.int64(&m.MsgID, name, sc)
	case "MsgDataId":
		return s.int64(&m.MsgDataID, name, sc)
	case "Idx":
		return s.int(&m.Idx, name, sc)
	case "Content":
		return s.str(&m.Content, name, sc)
	case "PicUrl":
		return s.str(&m.PicURL, name, sc)
	case "MediaId":
		return s.str(&m.MediaID, name, sc)
	case "Format":
		return s.str(&m.Format, name, sc)
	case "Recognition":
		return s.str(&m.Recognition, name, sc)
	case "ThumbMediaId":
		return s.str(&m.ThumbMediaID, name, sc)
	case "Location_X":
		return s.float(&m.LocationX, name, sc)
	case "Location_Y":
		return s.float(&m.LocationY, name, sc)
	case "Scale":
		return s.int(&m.Scale, name, sc)
	case "Label":
		return s.str(&m.Label, name, sc)
	case "Title":
		return s.str(&m.Title, name, sc)
	case "Description":
		return s.str(&m.Description, name, sc)
	case "Url":
		return s.str(&m.URL, name, sc)
	case "Event":
		return s.str(&m.Event, name, sc)
	case "EventKey":
		return s.str(&m.EventKey, name, sc)
	case "Ticket":
		return s.str(&m.Ticket, name, sc)
	case "Latitude":
		return s.float(&m.Latitude, name, sc)
	case "Longitude":
		return s.float(&m.Longitude, name, sc)
	case "Precision":
		return s.float(&m.Precision, name, sc)
	case "MenuId":
		return s.str(&m.MenuID, name, sc)
	case "Status":
		return s.str(&m.Status, name, sc)
	case "debug_str":
		return s.str(&m.DebugStr, name, sc)
	case "ScanCodeInfo":
		return sc || s.elems(name, depth, &m.ScanCodeInfo)
	case "SendPicsInfo":
		return sc || s.elems(name, depth, &m.SendPicsInfo)
	case "SendLocationInfo":
		return sc || s.elems(name, depth, &m.SendLocationInfo)
	}
	return s.skip(name, sc, depth)
}

func (c *ScanCodeInfo) set(s *scanner, name string, sc bool, depth int) bool {
	switch name {
	case "ScanType":
		return s.str(&c.ScanType, name, sc)
	case "ScanResult":
		return s.str(&c.ScanResult, name, sc)
	}
	return s.skip(name, sc, depth)
}

func (p *SendPicsInfo) set(s *scanner, name string, sc bool, depth int) bool {
	switch name {
	case "Count":
		return s.int(&p.Count, name, sc)
	case "PicList":
		return sc || s.elems(name, depth, (*picList)(p))
	}
	return s.skip(name, sc, depth)
}

// picList takes the items of SendPicsInfo's PicList.
type picList SendPicsInfo

func (p *picList) set(s *scanner, name string, sc bool, depth int) bool {
	if name != "item" {
		return s.skip(name, sc, depth)
	}
	p.PicList = append(p.PicList, PicItem{})
	return sc || s.elems(name, depth, &p.PicList[len(p.PicList)-1])
}

func (it *PicItem) set(s *scanner, name string, sc bool, depth int) bool {
	if name == "PicMd5Sum" {
		return s.str(&it.PicMd5Sum, name, sc)
	}
	return s.skip(name, sc, depth)
}

func (l *SendLocationInfo) set(s *scanner, name string, sc bool, depth int) bool {
	switch name {
	case "Location_X":
		return s.float(&l.LocationX, name, sc)
	case "Location_Y":
		return s.float(&l.LocationY, name, sc)
	case "Scale":
		return s.int(&l.Scale, name, sc)
	case "Label":
		return s.str(&l.Label, name, sc)
	case "Poiname":
		return s.str(&l.Poiname, name, sc)
	}
	return s.skip(name, sc, depth)
}
