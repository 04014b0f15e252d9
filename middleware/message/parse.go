package message

import (
	"math"
	"strconv"
	"strings"

	"github.com/wxcentral/wxcentral/util"
)

// parseFlat parses the shapes WeChat sends with util.XMLScanner: <xml>
// holding elements whose content is one CDATA section, plain text without
// references, or other elements (the nested event fields). It reports
// false for anything else (entities, comments, processing instructions,
// attributes, mixed content, carriage returns, a number that does not
// parse, …), and the caller then parses the body with encoding/xml, whose
// result it gives in those cases. Where it reports true, its result is the
// one encoding/xml gives (FuzzParse checks this).
func parseFlat(body []byte) (*Message, bool) {
	// The message and the scanner in one allocation: the scanner escapes
	// through the setters' interface calls anyway.
	p := &struct {
		m Message
		s util.XMLScanner
	}{}
	// One copy of the body; every field is a substring of it.
	if !p.s.ScanXML(string(body), (*messageFields)(&p.m)) {
		return nil, false
	}
	return &p.m, true
}

// The field setters of the scanned types. A pointer in an interface costs
// no allocation, where a method value would; the conversions keep
// SetElement out of the exported types' method sets.
type (
	messageFields          Message
	scanCodeInfoFields     ScanCodeInfo
	sendPicsInfoFields     SendPicsInfo
	picListFields          SendPicsInfo // the items of SendPicsInfo's PicList
	picItemFields          PicItem
	sendLocationInfoFields SendLocationInfo
)

func scanStr(s *util.XMLScanner, dst *string, name string, selfClosing bool) bool {
	v, ok := s.Value(name, selfClosing)
	*dst = v
	return ok
}

func scanInt64(s *util.XMLScanner, dst *int64, name string, selfClosing bool) bool {
	v, ok := s.Value(name, selfClosing)
	if !ok {
		return false
	}
	if v == "" {
		*dst = 0
		return true
	}
	if n, ok := parseDigits(v); ok {
		*dst = n
		return true
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	*dst = n
	return err == nil
}

// parseDigits parses the numbers WeChat sends (CreateTime, MsgId):
// decimal digits only, at most 18 of them, which always fit an int64.
// Anything else (a sign, spaces, more digits) reports false and is left
// to strconv.ParseInt, which gives the same result for what this parses.
func parseDigits(v string) (int64, bool) {
	if len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func scanInt(s *util.XMLScanner, dst *int, name string, selfClosing bool) bool {
	var n int64
	ok := scanInt64(s, &n, name, selfClosing)
	*dst = int(n)
	return ok
}

func scanFloat(s *util.XMLScanner, dst *float64, name string, selfClosing bool) bool {
	v, ok := s.Value(name, selfClosing)
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

func (m *messageFields) SetElement(s *util.XMLScanner, name string, sc bool, depth int) bool {
	switch name {
	case "ToUserName":
		return scanStr(s, &m.ToUserName, name, sc)
	case "FromUserName":
		return scanStr(s, &m.FromUserName, name, sc)
	case "CreateTime":
		return scanInt64(s, &m.CreateTime, name, sc)
	case "MsgType":
		return scanStr(s, &m.MsgType, name, sc)
	case "MsgId":
		return scanInt64(s, &m.MsgID, name, sc)
	case "MsgDataId":
		return scanInt64(s, &m.MsgDataID, name, sc)
	case "Idx":
		return scanInt(s, &m.Idx, name, sc)
	case "Content":
		return scanStr(s, &m.Content, name, sc)
	case "PicUrl":
		return scanStr(s, &m.PicURL, name, sc)
	case "MediaId":
		return scanStr(s, &m.MediaID, name, sc)
	case "Format":
		return scanStr(s, &m.Format, name, sc)
	case "Recognition":
		return scanStr(s, &m.Recognition, name, sc)
	case "ThumbMediaId":
		return scanStr(s, &m.ThumbMediaID, name, sc)
	case "Location_X":
		return scanFloat(s, &m.LocationX, name, sc)
	case "Location_Y":
		return scanFloat(s, &m.LocationY, name, sc)
	case "Scale":
		return scanInt(s, &m.Scale, name, sc)
	case "Label":
		return scanStr(s, &m.Label, name, sc)
	case "Title":
		return scanStr(s, &m.Title, name, sc)
	case "Description":
		return scanStr(s, &m.Description, name, sc)
	case "Url":
		return scanStr(s, &m.URL, name, sc)
	case "Event":
		return scanStr(s, &m.Event, name, sc)
	case "EventKey":
		return scanStr(s, &m.EventKey, name, sc)
	case "Ticket":
		return scanStr(s, &m.Ticket, name, sc)
	case "Latitude":
		return scanFloat(s, &m.Latitude, name, sc)
	case "Longitude":
		return scanFloat(s, &m.Longitude, name, sc)
	case "Precision":
		return scanFloat(s, &m.Precision, name, sc)
	case "MenuId":
		return scanStr(s, &m.MenuID, name, sc)
	case "Status":
		return scanStr(s, &m.Status, name, sc)
	case "debug_str":
		return scanStr(s, &m.DebugStr, name, sc)
	case "ScanCodeInfo":
		return sc || s.Elements(name, depth, (*scanCodeInfoFields)(&m.ScanCodeInfo))
	case "SendPicsInfo":
		return sc || s.Elements(name, depth, (*sendPicsInfoFields)(&m.SendPicsInfo))
	case "SendLocationInfo":
		return sc || s.Elements(name, depth, (*sendLocationInfoFields)(&m.SendLocationInfo))
	}
	return s.Skip(name, sc, depth)
}

func (c *scanCodeInfoFields) SetElement(s *util.XMLScanner, name string, sc bool, depth int) bool {
	switch name {
	case "ScanType":
		return scanStr(s, &c.ScanType, name, sc)
	case "ScanResult":
		return scanStr(s, &c.ScanResult, name, sc)
	}
	return s.Skip(name, sc, depth)
}

func (p *sendPicsInfoFields) SetElement(s *util.XMLScanner, name string, sc bool, depth int) bool {
	switch name {
	case "Count":
		return scanInt(s, &p.Count, name, sc)
	case "PicList":
		return sc || s.Elements(name, depth, (*picListFields)(p))
	}
	return s.Skip(name, sc, depth)
}

func (p *picListFields) SetElement(s *util.XMLScanner, name string, sc bool, depth int) bool {
	if name != "item" {
		return s.Skip(name, sc, depth)
	}
	p.PicList = append(p.PicList, PicItem{})
	return sc || s.Elements(name, depth, (*picItemFields)(&p.PicList[len(p.PicList)-1]))
}

func (it *picItemFields) SetElement(s *util.XMLScanner, name string, sc bool, depth int) bool {
	if name == "PicMd5Sum" {
		return scanStr(s, &it.PicMd5Sum, name, sc)
	}
	return s.Skip(name, sc, depth)
}

func (l *sendLocationInfoFields) SetElement(s *util.XMLScanner, name string, sc bool, depth int) bool {
	switch name {
	case "Location_X":
		return scanFloat(s, &l.LocationX, name, sc)
	case "Location_Y":
		return scanFloat(s, &l.LocationY, name, sc)
	case "Scale":
		return scanInt(s, &l.Scale, name, sc)
	case "Label":
		return scanStr(s, &l.Label, name, sc)
	case "Poiname":
		return scanStr(s, &l.Poiname, name, sc)
	}
	return s.Skip(name, sc, depth)
}
