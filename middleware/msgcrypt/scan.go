package msgcrypt

import "github.com/wxcentral/wxcentral/util"

// scanEnvelope reads the envelope WeChat sends,
// <xml><ToUserName><![CDATA[…]]></ToUserName><Encrypt><![CDATA[…]]></Encrypt></xml>,
// and, in compatible mode, the plaintext fields beside it, with
// util.XMLScanner. It reports false for a body outside the scanner's
// shapes, which is then left to encoding/xml; where it reports true its
// result is encoding/xml's.
func scanEnvelope(body []byte) (Envelope, bool) {
	// The envelope and the scanner in one allocation, as the scanner
	// escapes through the setter's interface call; one copy of the body,
	// of which both fields are substrings.
	p := &struct {
		e Envelope
		s util.XMLScanner
	}{}
	if !p.s.ScanXML(string(body), (*envelopeFields)(&p.e)) {
		return Envelope{}, false
	}
	return p.e, true
}

// envelopeFields sets the fields of an Envelope and skips the others.
type envelopeFields Envelope

func (e *envelopeFields) SetElement(s *util.XMLScanner, name string, selfClosing bool, depth int) bool {
	var dst *string
	switch name {
	case "ToUserName":
		dst = &e.ToUserName
	case "Encrypt":
		dst = &e.Encrypt
	default:
		return s.Skip(name, selfClosing, depth)
	}
	v, ok := s.Value(name, selfClosing)
	*dst = v
	return ok
}
