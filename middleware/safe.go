package middleware

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/wxcentral/wxcentral/middleware/internal/respbuf"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/middleware/msgcrypt"
)

// WithAES turns on safe mode (安全模式) and compatible mode (兼容模式) for
// the official account appID with its 43-character EncodingAESKey: a POST
// with encrypt_type=aes has its msg_signature checked, its Encrypt field
// decrypted and its AppID checked, and the next handler sees the plaintext;
// a reply other than "" or "success" is encrypted. See Verify.
//
// With a key configured, plaintext POSTs (no encrypt_type, or
// encrypt_type=raw) are refused with 403 unless WithAllowPlaintext(true)
// is given.
//
// Verify panics if appID is empty or the key is malformed. Keys from
// configuration are better checked at start-up with msgcrypt.ParseKey,
// which returns an error, and passed to WithAESKeys.
func WithAES(appID, encodingAESKey string) Option {
	return func(s *settings) {
		k, err := msgcrypt.ParseKey(encodingAESKey)
		if err != nil {
			s.badOption = "WithAES: " + err.Error()
			return
		}
		s.setAES("WithAES", appID, k)
	}
}

// WithPreviousAESKey also decrypts messages with encodingAESKey, the
// EncodingAESKey being replaced, and answers such a message with it, as
// WeChat asks. Rotate by deploying the new key with the old one as previous,
// changing the key on the official account platform, and dropping the
// previous key once Result.PreviousAESKey stays false. An empty key accepts
// nothing more. Verify panics if the key is malformed or WithAES is not
// given too.
func WithPreviousAESKey(encodingAESKey string) Option {
	return func(s *settings) {
		if encodingAESKey == "" {
			s.aesPrevious = nil
			return
		}
		k, err := msgcrypt.ParseKey(encodingAESKey)
		if err != nil {
			s.badOption = "WithPreviousAESKey: " + err.Error()
			return
		}
		s.aesPrevious = k
	}
}

// WithAESKeys is WithAES and WithPreviousAESKey with keys already parsed by
// msgcrypt.ParseKey, for a server that reads them from its configuration
// and reports a malformed key as an error rather than a panic:
//
//	key, err := msgcrypt.ParseKey(os.Getenv("WECHAT_ENCODING_AES_KEY"))
//	if err != nil {
//		return fmt.Errorf("WECHAT_ENCODING_AES_KEY: %w", err)
//	}
//	mw := middleware.Verify(token, middleware.WithAESKeys(appID, key, nil))
//
// previous may be nil. Verify panics if appID is empty or current is nil.
func WithAESKeys(appID string, current, previous *msgcrypt.Key) Option {
	return func(s *settings) {
		if current == nil {
			s.badOption = "WithAESKeys: the current key is nil"
			return
		}
		s.setAES("WithAESKeys", appID, current)
		s.aesPrevious = previous
	}
}

func (s *settings) setAES(option, appID string, k *msgcrypt.Key) {
	if appID == "" {
		// An empty AppID would accept messages whose ciphertext names none.
		s.badOption = option + ": the AppID is empty"
		return
	}
	s.aesAppID, s.aesKey = appID, k
}

// WithAllowPlaintext sets whether plaintext POSTs (without encrypt_type=aes)
// are accepted when an EncodingAESKey is configured. The default, false,
// refuses them with 403: in plain mode the signature covers only the
// timestamp and nonce, not the body, so whoever intercepts a signed URL
// before it reaches the server can replace its message (the replay check
// refuses a second body for a signature, not the first), while
// msg_signature binds the body. WeChat sends encrypt_type=aes in both safe
// and compatible mode, so the default suits both. Allow plaintext only for
// the minutes of switching an account from plain mode to safe mode (deploy
// the key with plaintext allowed, switch the platform, then drop this
// option). Without a key, plaintext POSTs are always accepted.
func WithAllowPlaintext(allow bool) Option {
	return func(s *settings) { s.allowPlain = allow }
}

// mode decides, from the query alone, whether a POST that passed the
// signature check is encrypted and whether this server takes it.
func (s *settings) mode(q query, res Result) (Result, string) {
	switch q.encryptType {
	case "aes":
		res.Encrypted = true
		if s.crypter == nil {
			res.Outcome = OutcomeNoAESKey
			return res, "encrypt_type=aes, but this server has no EncodingAESKey: configure it, or set the account to plain mode"
		}
		if q.msgSignature == "" {
			res.Outcome = OutcomeMissingParam
			return res, "missing msg_signature"
		}
	case "", "raw":
		if s.crypter != nil && !s.allowPlain {
			res.Outcome = OutcomePlaintextRefused
			return res, "plaintext message refused: this server takes encrypted messages only (encrypt_type=aes)"
		}
	default:
		res.Outcome = OutcomeBadQuery
		return res, "unknown encrypt_type: want aes or raw"
	}
	return res, ""
}

// inbound is a POST's message, opened and parsed.
type inbound struct {
	plain  []byte // the push in plaintext: the body, or what Encrypt held
	msg    *message.Message
	opened msgcrypt.Opened // in safe mode: which token and key to answer with
	json   bool            // the envelope was JSON: answer in JSON
}

// open decrypts the body of an encrypted POST and parses the push.
func (s *settings) open(q query, res Result, body []byte) (inbound, Result, string) {
	in := inbound{plain: body}
	if res.Encrypted {
		in.json = isJSON(body)
		env, err := msgcrypt.ParseEnvelope(body)
		if err != nil {
			res.Outcome = OutcomeBadEncrypt
			return in, res, "no Encrypt in the body: encrypt_type=aes needs an encrypted message"
		}
		o, err := s.crypter.Open(q.msgSignature, q.timestamp, q.nonce, env.Encrypt)
		switch {
		case err == nil:
		case errors.Is(err, msgcrypt.ErrSignature):
			res.Outcome = OutcomeBadMsgSignature
			return in, res, "msg_signature mismatch"
		case errors.Is(err, msgcrypt.ErrAppID):
			// Signed with our token, so this is WeChat: the AppID
			// configured here is not the account's.
			res.Outcome = OutcomeWrongAppID
			return in, res, "the message is for another AppID: check the configured AppID"
		default:
			res.Outcome = OutcomeBadEncrypt
			return in, res, "Encrypt does not decrypt: check the EncodingAESKey"
		}
		in.plain, in.opened = o.Msg, o
		res.PreviousAESKey = o.PreviousKey()
	}
	m, err := message.Parse(in.plain)
	if err != nil {
		res.Outcome = OutcomeBadMessage
		return in, res, "the body is not a WeChat push (" + err.Error() + ")"
	}
	m.ReceivedAt = s.now()
	in.msg = m
	return in, res, ""
}

func isJSON(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// Content types of the encrypted reply envelopes.
const (
	contentTypeXML  = message.ContentType
	contentTypeJSON = "application/json; charset=utf-8"
)

// seal sends the reply the next handler wrote into rec: encrypted when it
// is a 2xx reply other than "" or "success", as is otherwise.
func (s *settings) seal(w http.ResponseWriter, r *http.Request, rec *respbuf.Buffer, in inbound, nonce string) {
	if !rec.Written() {
		// The handler wrote nothing at all: neither does this, so that a
		// framework around the middleware can still answer (net/http
		// sends 200 with an empty body; echo writes a handler's error
		// into the writer the handler had, which now passes it on).
		rec.PassLater()
		return
	}
	hdr := w.Header() // rec's too: what the handler set is in it
	hdr.Del("Content-Length")
	status := rec.Status()
	body := rec.Bytes()
	if status < 200 || status > 299 || noReply(body) {
		// WeChat takes "" and "success" unencrypted; an error is not a
		// reply at all.
		w.WriteHeader(status)
		w.Write(body)
		return
	}
	env, err := s.crypter.Seal(in.opened, body, s.now().Unix(), nonce)
	if err != nil {
		s.log(r, slog.LevelError, "wechat callback reply not encrypted", slog.String("error", err.Error()))
		hdr.Del("Content-Type")
		http.Error(w, "could not encrypt the reply", http.StatusInternalServerError)
		return
	}
	var out []byte
	if in.json {
		out = env.JSON()
		hdr.Set("Content-Type", contentTypeJSON)
	} else {
		out = env.XML()
		hdr.Set("Content-Type", contentTypeXML)
	}
	hdr.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	w.Write(out)
}

// noReply reports whether body means "received, no reply": "" or "success".
func noReply(body []byte) bool {
	b := bytes.TrimSpace(body)
	return len(b) == 0 || string(b) == "success"
}
