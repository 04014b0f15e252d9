package msgcrypt

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strconv"
)

// A Sender plays WeChat's side of safe mode, for tests and simulators: it
// seals a push into the envelope WeChat posts and opens the encrypted reply
// a server sends back. Its methods match wechattest.Sealer. Set its fields
// once, before use; it is then safe for concurrent use.
type Sender struct {
	// Crypter holds the token, AppID and key the server shares; its
	// Rand, if set, gives the random prefixes. The previous key and token
	// are not used: WeChat signs and encrypts with the current ones.
	Crypter *Crypter

	// ToUserName is the account's original id (gh_…) in the envelope.
	ToUserName string
}

// Seal encrypts plain (the push's XML or JSON) and returns the XML
// envelope WeChat posts and its msg_signature over timestamp and nonce.
func (s *Sender) Seal(plain []byte, timestamp, nonce string) (body []byte, msgSignature string, err error) {
	c := s.Crypter
	if c == nil {
		return nil, "", fmt.Errorf("%w: the Sender has no Crypter", ErrKey)
	}
	if err := c.check(); err != nil {
		return nil, "", err
	}
	enc, err := c.Key.Encrypt(c.rand(), plain, c.AppID)
	if err != nil {
		return nil, "", err
	}
	b := make([]byte, 0, 96+len(s.ToUserName)+len(enc))
	b = append(b, "<xml><ToUserName>"...)
	b = appendCDATA(b, s.ToUserName)
	b = append(b, "</ToUserName><Encrypt>"...)
	b = appendCDATA(b, enc)
	b = append(b, "</Encrypt></xml>"...)
	return b, Sign(c.Token, timestamp, nonce, enc), nil
}

// Open checks an encrypted reply (the XML or JSON envelope of
// ReplyEnvelope) as WeChat does: its MsgSignature over TimeStamp, Nonce and
// Encrypt under the token, then decrypts it and checks the AppID. It
// returns the plaintext reply. A reply of "" or "success" is no envelope:
// do not call Open on it.
func (s *Sender) Open(reply []byte) ([]byte, error) {
	c := s.Crypter
	if c == nil {
		return nil, fmt.Errorf("%w: the Sender has no Crypter", ErrKey)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	env, err := ParseReplyEnvelope(reply)
	if err != nil {
		return nil, err
	}
	if !VerifySignature(env.MsgSignature, c.Token, strconv.FormatInt(env.TimeStamp, 10), env.Nonce, env.Encrypt) {
		return nil, fmt.Errorf("%w: in the reply envelope", ErrSignature)
	}
	return c.decrypt(c.Key, env.Encrypt)
}

// ParseReplyEnvelope parses an encrypted reply, as JSON if its first
// non-space byte is '{' and as XML otherwise. An envelope without Encrypt
// is an error wrapping ErrEnvelope.
func ParseReplyEnvelope(body []byte) (ReplyEnvelope, error) {
	var r ReplyEnvelope
	var err error
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) > 0 && b[0] == '{' {
		err = json.Unmarshal(body, &r)
	} else {
		var v struct {
			XMLName xml.Name `xml:"xml"`
			ReplyEnvelope
		}
		err = xml.Unmarshal(body, &v)
		r = v.ReplyEnvelope
	}
	if err != nil {
		return ReplyEnvelope{}, fmt.Errorf("%w: reply: %v", ErrEnvelope, err)
	}
	if r.Encrypt == "" {
		return ReplyEnvelope{}, fmt.Errorf("%w: the reply has no Encrypt field", ErrEnvelope)
	}
	return r, nil
}
