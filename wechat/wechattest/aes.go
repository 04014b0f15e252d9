package wechattest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/wxcentral/wxcentral/middleware/msgcrypt"
)

// ErrReplyNotEncrypted is wrapped by the error of AESSealer.Open, and so of
// Callback.Send, when a safe-mode reply other than "" or "success" is not
// the encrypted reply envelope. WeChat drops such a reply.
var ErrReplyNotEncrypted = errors.New("the reply is not encrypted")

// An AESSealer is the Sealer of safe mode (安全模式) and compatible mode
// (兼容模式), doing what WeChat does: it encrypts each push with the
// EncodingAESKey (AES-256-CBC, a fresh random prefix, the AppID appended),
// wraps it in the <xml><ToUserName/><Encrypt/></xml> envelope and signs it
// with msg_signature; it verifies the MsgSignature of an encrypted reply,
// decrypts it and checks its AppID.
//
// Create one with NewAESSealer, or set Token, AppID and Key. The fields
// must not change while the sealer is in use; it is then safe for
// concurrent use.
type AESSealer struct {
	Token string        // the callback token; signs msg_signature
	AppID string        // the official account's AppID, sealed into every message
	Key   *msgcrypt.Key // from the EncodingAESKey, see msgcrypt.ParseKey

	// Compatible sends compatible mode instead of safe mode: the body
	// carries the plaintext fields as well as Encrypt, and a plaintext
	// reply is accepted as well as an encrypted one ("公众号回复明文或密文
	// 均可"). In safe mode a plaintext reply is an error wrapping
	// ErrReplyNotEncrypted.
	Compatible bool

	// Rand is read for the 16 random bytes before each message; nil means
	// crypto/rand. Tests set it to reproduce official vectors.
	Rand io.Reader
}

// NewAESSealer returns a safe-mode AESSealer for the callback token, the
// account's appID and its 43-character encodingAESKey, as entered on the
// server configuration page. The error says what is wrong, without the key.
func NewAESSealer(token, appID, encodingAESKey string) (*AESSealer, error) {
	k, err := msgcrypt.ParseKey(encodingAESKey)
	if err != nil {
		return nil, fmt.Errorf("wechattest: EncodingAESKey: %w", err)
	}
	s := &AESSealer{Token: token, AppID: appID, Key: k}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *AESSealer) check() error {
	switch {
	case s.Key == nil:
		return errors.New("wechattest: the AESSealer has no Key: parse the EncodingAESKey with msgcrypt.ParseKey")
	case s.AppID == "":
		return errors.New("wechattest: the AESSealer has no AppID: safe mode seals every message for one official account")
	case s.Token == "":
		return errors.New("wechattest: the AESSealer has no Token: it signs msg_signature")
	}
	return nil
}

// Seal encrypts plain, a push as WeChat sends it (XML, or JSON for an
// account whose data format is JSON), and returns the request body and its
// msg_signature over timestamp and nonce. The body is the same form as
// plain: <xml><ToUserName>…</ToUserName><Encrypt>…</Encrypt></xml> or
// {"ToUserName":"…","Encrypt":"…"}; in compatible mode it is plain with an
// Encrypt field added.
func (s *AESSealer) Seal(plain []byte, timestamp, nonce string) (body []byte, msgSignature string, err error) {
	if err := s.check(); err != nil {
		return nil, "", err
	}
	isJSON := startsWith(plain, '{')
	var to string
	if isJSON {
		var v struct{ ToUserName string }
		err = json.Unmarshal(plain, &v)
		to = v.ToUserName
	} else {
		var v struct {
			XMLName    xml.Name `xml:"xml"`
			ToUserName string
		}
		err = xml.Unmarshal(plain, &v)
		to = v.ToUserName
	}
	if err != nil {
		return nil, "", fmt.Errorf("wechattest: the message to seal is not a WeChat push: %w", err)
	}
	r := s.Rand
	if r == nil {
		r = rand.Reader
	}
	enc, err := s.Key.Encrypt(r, plain, s.AppID)
	if err != nil {
		return nil, "", fmt.Errorf("wechattest: %w", err)
	}
	sig := msgcrypt.Sign(s.Token, timestamp, nonce, enc)
	switch {
	case isJSON && s.Compatible:
		body, err = addJSONField(plain, "Encrypt", enc)
		if err != nil {
			return nil, "", fmt.Errorf("wechattest: the message to seal is not a JSON object: %w", err)
		}
	case isJSON:
		body, _ = json.Marshal(msgcrypt.Envelope{ToUserName: to, Encrypt: enc}) // strings always marshal
	case s.Compatible:
		end := bytes.LastIndex(plain, []byte("</xml>"))
		if end < 0 {
			return nil, "", errors.New("wechattest: the message to seal does not end in </xml>")
		}
		var b strings.Builder
		b.Write(plain[:end])
		cdata(&b, "Encrypt", enc)
		b.Write(plain[end:])
		body = []byte(b.String())
	default:
		var b strings.Builder
		b.WriteString("<xml>")
		cdata(&b, "ToUserName", to)
		cdata(&b, "Encrypt", enc)
		b.WriteString("</xml>")
		body = []byte(b.String())
	}
	return body, sig, nil
}

// addJSONField returns the JSON object obj with the string field name set.
func addJSONField(obj []byte, name, value string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		return nil, err
	}
	v, _ := json.Marshal(value)
	m[name] = v
	return json.Marshal(m)
}

// replyEnvelope is an encrypted passive reply as the developer's server
// sends it. TimeStamp is kept as text: the signature covers it as sent.
type replyEnvelope struct {
	Encrypt      string
	MsgSignature string
	TimeStamp    string
	Nonce        string
}

// parseReplyEnvelope parses the XML or JSON reply envelope. ok is false
// when reply is not one (no Encrypt field, or not XML/JSON at all).
func parseReplyEnvelope(reply []byte) (env replyEnvelope, ok bool) {
	if startsWith(reply, '{') {
		var v struct {
			Encrypt, MsgSignature, Nonce string
			TimeStamp                    json.Number
		}
		if json.Unmarshal(reply, &v) != nil {
			return env, false
		}
		env = replyEnvelope{v.Encrypt, v.MsgSignature, v.TimeStamp.String(), v.Nonce}
	} else {
		var v struct {
			XMLName xml.Name `xml:"xml"`
			replyEnvelope
		}
		if xml.Unmarshal(reply, &v) != nil {
			return env, false
		}
		env = v.replyEnvelope
	}
	env.Encrypt = strings.TrimSpace(env.Encrypt)
	env.TimeStamp = strings.TrimSpace(env.TimeStamp)
	return env, env.Encrypt != ""
}

// Open checks an encrypted reply as WeChat does and returns the plaintext
// reply: the envelope's MsgSignature must be the sorted sha1 of the token,
// its TimeStamp, Nonce and Encrypt; Encrypt must decrypt with the key and
// name AppID. Each error says which check failed and wraps
// ErrReplyNotEncrypted (a reply without Encrypt, in safe mode),
// msgcrypt.ErrSignature, msgcrypt.ErrAppID, or the msgcrypt error of the
// failed decryption. In compatible mode a reply without Encrypt is returned
// unchanged.
func (s *AESSealer) Open(reply []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	env, ok := parseReplyEnvelope(reply)
	if !ok {
		if s.Compatible {
			return reply, nil
		}
		return nil, fmt.Errorf("%w: in safe mode a reply other than \"\" or \"success\" must be the envelope "+
			"<xml><Encrypt>…</Encrypt><MsgSignature>…</MsgSignature><TimeStamp>…</TimeStamp><Nonce>…</Nonce></xml>, got %q",
			ErrReplyNotEncrypted, excerpt(reply))
	}
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"MsgSignature", env.MsgSignature}, {"TimeStamp", env.TimeStamp}, {"Nonce", env.Nonce},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: the encrypted reply has no %s", msgcrypt.ErrSignature, strings.Join(missing, ", "))
	}
	if !msgcrypt.VerifySignature(env.MsgSignature, s.Token, env.TimeStamp, env.Nonce, env.Encrypt) {
		return nil, fmt.Errorf("%w: the reply's MsgSignature %s is not the sha1 of the sorted token, TimeStamp %s, Nonce %s and Encrypt",
			msgcrypt.ErrSignature, quoteShort(env.MsgSignature), env.TimeStamp, quoteShort(env.Nonce))
	}
	msg, appID, err := s.Key.Decrypt(env.Encrypt)
	if err != nil {
		return nil, fmt.Errorf("the reply does not decrypt with this EncodingAESKey: %w", err)
	}
	if appID != s.AppID {
		return nil, fmt.Errorf("%w: the reply is encrypted for AppID %s, want %q", msgcrypt.ErrAppID, quoteShort(appID), s.AppID)
	}
	return msg, nil
}

func startsWith(b []byte, c byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == c
}

// quoteShort quotes at most 48 bytes of s, which may be binary garbage
// from a wrong key.
func quoteShort(s string) string {
	const max = 48
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:max]) + "…"
}
