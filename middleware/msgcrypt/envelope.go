package msgcrypt

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"

	"github.com/wxcentral/wxcentral/util"
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

// ParseXMLEnvelope parses the XML form of an inbound envelope. The shape
// WeChat sends is scanned directly; anything unusual (nesting, entities,
// comments, attributes, …) goes to encoding/xml, whose result it always
// gives.
func ParseXMLEnvelope(body []byte) (Envelope, error) {
	if e, ok := scanEnvelope(body); ok {
		return e, checkEnvelope(e)
	}
	return parseXMLEnvelopeStd(body)
}

// parseXMLEnvelopeStd parses body with encoding/xml.
func parseXMLEnvelopeStd(body []byte) (Envelope, error) {
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
	dst = util.AppendCDATA(dst, r.Encrypt)
	dst = append(dst, "</Encrypt><MsgSignature>"...)
	dst = util.AppendCDATA(dst, r.MsgSignature)
	dst = append(dst, "</MsgSignature><TimeStamp>"...)
	dst = strconv.AppendInt(dst, r.TimeStamp, 10)
	dst = append(dst, "</TimeStamp><Nonce>"...)
	dst = util.AppendCDATA(dst, r.Nonce)
	return append(dst, "</Nonce></xml>"...)
}

// XML returns the XML form of the reply, the body WeChat expects from a
// 公众号 callback (Content-Type text/xml).
func (r ReplyEnvelope) XML() []byte {
	const fixed = len("<xml><Encrypt></Encrypt><MsgSignature></MsgSignature><TimeStamp></TimeStamp><Nonce></Nonce></xml>")
	n := fixed + util.CDATALen(r.Encrypt) + util.CDATALen(r.MsgSignature) + len("-9223372036854775808") + util.CDATALen(r.Nonce)
	return r.AppendXML(make([]byte, 0, n))
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
