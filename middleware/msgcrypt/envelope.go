package msgcrypt

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// An Envelope is the body of a safe-mode or compatible-mode push:
//
//	<xml><ToUserName><![CDATA[gh_…]]></ToUserName><Encrypt><![CDATA[…]]></Encrypt></xml>
//
// In compatible mode the same XML also carries the plaintext fields; they
// are ignored here, because only the encrypted copy is authenticated.
type Envelope struct {
	ToUserName string `xml:"ToUserName" json:"ToUserName"`
	Encrypt    string `xml:"Encrypt" json:"Encrypt"`
}

// ParseEnvelope parses an inbound envelope, as JSON if its first non-space
// byte is '{' and as XML otherwise. An envelope without an Encrypt field is
// an error (wrapping ErrEnvelope): when the query says encrypt_type=aes, a
// plaintext body must be refused, never trusted.
func ParseEnvelope(body []byte) (Envelope, error) {
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) > 0 && b[0] == '{' {
		return ParseJSONEnvelope(body)
	}
	return ParseXMLEnvelope(body)
}

// ParseXMLEnvelope parses the XML form of an inbound envelope.
func ParseXMLEnvelope(body []byte) (Envelope, error) {
	var v struct {
		XMLName xml.Name `xml:"xml"`
		Envelope
	}
	if err := xml.Unmarshal(body, &v); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrEnvelope, err)
	}
	return v.Envelope, checkEnvelope(v.Envelope)
}

// ParseJSONEnvelope parses the JSON form of an inbound envelope
// ({"ToUserName":"gh_…","Encrypt":"…"}).
func ParseJSONEnvelope(body []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(body, &e); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrEnvelope, err)
	}
	return e, checkEnvelope(e)
}

func checkEnvelope(e Envelope) error {
	if strings.TrimSpace(e.Encrypt) == "" {
		return fmt.Errorf("%w: no Encrypt field (a plaintext body is not accepted in safe mode)", ErrEnvelope)
	}
	return nil
}

// A ReplyEnvelope is an encrypted passive reply, built by Crypter.Seal.
type ReplyEnvelope struct {
	Encrypt      string `xml:"Encrypt" json:"Encrypt"`
	MsgSignature string `xml:"MsgSignature" json:"MsgSignature"`
	TimeStamp    int64  `xml:"TimeStamp" json:"TimeStamp"`
	Nonce        string `xml:"Nonce" json:"Nonce"`
}

// AppendXML appends the XML form of the reply to dst:
//
//	<xml><Encrypt><![CDATA[…]]></Encrypt><MsgSignature><![CDATA[…]]></MsgSignature><TimeStamp>…</TimeStamp><Nonce><![CDATA[…]]></Nonce></xml>
func (r ReplyEnvelope) AppendXML(dst []byte) []byte {
	dst = append(dst, "<xml><Encrypt>"...)
	dst = appendCDATA(dst, r.Encrypt)
	dst = append(dst, "</Encrypt><MsgSignature>"...)
	dst = appendCDATA(dst, r.MsgSignature)
	dst = append(dst, "</MsgSignature><TimeStamp>"...)
	dst = strconv.AppendInt(dst, r.TimeStamp, 10)
	dst = append(dst, "</TimeStamp><Nonce>"...)
	dst = appendCDATA(dst, r.Nonce)
	return append(dst, "</Nonce></xml>"...)
}

// XML returns the XML form of the reply, the body WeChat expects from a
// 公众号 callback (Content-Type text/xml).
func (r ReplyEnvelope) XML() []byte {
	return r.AppendXML(make([]byte, 0, 128+len(r.Encrypt)+len(r.Nonce)))
}

// JSON returns the JSON form of the reply:
// {"Encrypt":"…","MsgSignature":"…","TimeStamp":1713424427,"Nonce":"…"}.
func (r ReplyEnvelope) JSON() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		// Strings and an int64 always marshal.
		panic("msgcrypt: marshal ReplyEnvelope: " + err.Error())
	}
	return b
}

// appendCDATA appends s as a CDATA section. A "]]>" inside s is split
// across two sections, and characters XML forbids become U+FFFD, so any
// string yields well-formed XML.
func appendCDATA(dst []byte, s string) []byte {
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
