package msgcrypt

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/wxcentral/wxcentral/util"
)

// Sign returns the msg_signature of a safe-mode message: the sorted-sha1
// of token, timestamp, nonce and the Encrypt text.
func Sign(token, timestamp, nonce, encrypted string) string {
	return util.Signature(token, timestamp, nonce, encrypted)
}

// VerifySignature reports whether sig is the msg_signature of timestamp,
// nonce and encrypted under token, comparing in constant time.
func VerifySignature(sig, token, timestamp, nonce, encrypted string) bool {
	return util.VerifySignature(sig, token, timestamp, nonce, encrypted)
}

// A Crypter opens safe-mode messages for one official account and seals its
// replies. Set its fields once, before use; it is then safe for concurrent
// use.
//
// A rotation of the EncodingAESKey (or of the token) is covered by setting
// PreviousKey (PreviousToken) to the old one: Open tries the current one
// first, then the previous one, and Seal answers with whichever worked, as
// WeChat asks.
type Crypter struct {
	Token         string    // the callback token; signs msg_signature
	PreviousToken string    // the token before a rotation, or ""
	AppID         string    // the account's AppID; every message must carry it
	Key           *Key      // the current EncodingAESKey
	PreviousKey   *Key      // the EncodingAESKey before a rotation, or nil
	Rand          io.Reader // random prefixes for Seal; nil means crypto/rand
}

// New returns a Crypter for token, appID and the 43-character
// encodingAESKey. The error wraps ErrKey when the key is malformed.
func New(token, appID, encodingAESKey string) (*Crypter, error) {
	k, err := ParseKey(encodingAESKey)
	if err != nil {
		return nil, err
	}
	return &Crypter{Token: token, AppID: appID, Key: k}, nil
}

// Opened is a message Open decrypted, and what it takes to answer it: the
// reply must be signed with the token and encrypted with the key that
// worked. Its zero value stands for the current token and key.
type Opened struct {
	// Msg is the decrypted message: the XML (or JSON) WeChat pushed.
	Msg []byte

	previousKey   bool
	previousToken bool
}

// PreviousKey reports whether the message needed the previous
// EncodingAESKey: the sender has not switched to the new one yet.
func (o Opened) PreviousKey() bool { return o.previousKey }

// PreviousToken reports whether msg_signature matched only the previous
// token.
func (o Opened) PreviousToken() bool { return o.previousToken }

// Open verifies msgSignature (from the query string) over timestamp, nonce
// and encrypted (the Encrypt field of the body), then decrypts encrypted
// and checks that it names c.AppID. Nothing is decrypted unless the
// signature matches. Errors wrap one of the package's sentinel errors.
func (c *Crypter) Open(msgSignature, timestamp, nonce, encrypted string) (Opened, error) {
	if err := c.check(); err != nil {
		return Opened{}, err
	}
	var o Opened
	switch {
	case util.VerifySignature(msgSignature, c.Token, timestamp, nonce, encrypted):
	case c.PreviousToken != "" && util.VerifySignature(msgSignature, c.PreviousToken, timestamp, nonce, encrypted):
		o.previousToken = true
	default:
		return Opened{}, ErrSignature
	}
	msg, prev, err := c.Decrypt(encrypted)
	if err != nil {
		return Opened{}, err
	}
	o.Msg, o.previousKey = msg, prev
	return o, nil
}

// Decrypt decrypts encrypted with the current key and, if that fails, with
// the previous one, and checks the AppID. It reports whether the previous
// key was the one that worked. It does not check a signature: use Open on
// anything that came over the network.
func (c *Crypter) Decrypt(encrypted string) (msg []byte, previous bool, err error) {
	if err := c.check(); err != nil {
		return nil, false, err
	}
	msg, err = c.decrypt(c.Key, encrypted)
	if err == nil || c.PreviousKey == nil || !keyDependent(err) {
		return msg, false, err
	}
	msg, perr := c.decrypt(c.PreviousKey, encrypted)
	if perr == nil {
		return msg, true, nil
	}
	// Both failed. Report the attempt that got further: an AppID mismatch
	// means that key decrypted a well-formed message.
	if rank(perr) > rank(err) {
		err = perr
	}
	return nil, false, err
}

func (c *Crypter) decrypt(k *Key, encrypted string) ([]byte, error) {
	msg, appID, err := k.Decrypt(encrypted)
	if err != nil {
		return nil, err
	}
	if appID != c.AppID {
		return nil, fmt.Errorf("%w: the message is for %s, this server is %q", ErrAppID, quoteShort(appID), c.AppID)
	}
	return msg, nil
}

// Seal encrypts reply for o's sender with a fresh random prefix and signs it,
// returning the reply envelope. timestamp (Unix seconds) and nonce are the
// caller's; echoing the request's nonce is fine.
func (c *Crypter) Seal(o Opened, reply []byte, timestamp int64, nonce string) (ReplyEnvelope, error) {
	if err := c.check(); err != nil {
		return ReplyEnvelope{}, err
	}
	k, token := c.Key, c.Token
	if o.previousKey && c.PreviousKey != nil {
		k = c.PreviousKey
	}
	if o.previousToken && c.PreviousToken != "" {
		token = c.PreviousToken
	}
	enc, err := k.Encrypt(c.rand(), reply, c.AppID)
	if err != nil {
		return ReplyEnvelope{}, err
	}
	ts := strconv.FormatInt(timestamp, 10)
	return ReplyEnvelope{
		Encrypt:      enc,
		MsgSignature: util.Signature(token, ts, nonce, enc),
		TimeStamp:    timestamp,
		Nonce:        nonce,
	}, nil
}

// rand is the source of random prefixes: c.Rand, or crypto/rand.
func (c *Crypter) rand() io.Reader {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Reader
}

func (c *Crypter) check() error {
	switch {
	case c.Key == nil:
		return fmt.Errorf("%w: the Crypter has no key (set WECHAT_ENCODING_AES_KEY)", ErrKey)
	case c.AppID == "":
		// An empty AppID would make the AppID check pass for forged
		// messages that carry none; refuse to run without one.
		return errors.New("msgcrypt: the Crypter has no AppID (set WECHAT_APP_ID)")
	case c.Token == "":
		return errors.New("msgcrypt: the Crypter has no token (set WECHAT_TOKEN)")
	}
	return nil
}

// keyDependent reports whether another key might decrypt what err rejected;
// malformed base64 or a bad length is wrong for every key.
func keyDependent(err error) bool {
	return errors.Is(err, ErrPadding) || errors.Is(err, ErrLength) || errors.Is(err, ErrAppID)
}

func rank(err error) int {
	switch {
	case errors.Is(err, ErrAppID):
		return 3
	case errors.Is(err, ErrLength):
		return 2
	case errors.Is(err, ErrPadding):
		return 1
	}
	return 0
}

// quoteShort quotes at most 32 bytes of s: an AppID that came out of a bad
// decryption may be long binary garbage.
func quoteShort(s string) string {
	const max = 32
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:max]) + "…"
}
