package middleware

import "net/http"

// An Outcome says how the middleware decided one request. Its String is a
// short, stable label meant for metrics (callback checks by outcome).
type Outcome uint8

// The outcomes of a callback check. OutcomeEcho and OutcomePass are the two
// accepted ones; every other outcome is a rejection the middleware answered
// itself, with the status given below.
const (
	// OutcomeEcho: a GET handshake with a valid signature; the middleware
	// answered 200 with echostr.
	OutcomeEcho Outcome = iota + 1
	// OutcomePass: a POST with a valid signature and a body within the
	// limit; it went to the next handler.
	OutcomePass
	// OutcomeBadMethod: neither GET nor POST (405).
	OutcomeBadMethod
	// OutcomeMissingParam: signature, timestamp or nonce absent or empty (400).
	OutcomeMissingParam
	// OutcomeBadQuery: one of the callback parameters was given twice or
	// has a malformed %-escape, or encrypt_type is neither aes nor raw
	// (400).
	OutcomeBadQuery
	// OutcomeBadTimestamp: timestamp is not a decimal number of seconds (400).
	OutcomeBadTimestamp
	// OutcomeBadSignature: signature matches neither the token nor the
	// previous token (403).
	OutcomeBadSignature
	// OutcomeStale: the signature is valid but timestamp is outside the
	// allowed window, a replay or a badly set clock (403).
	OutcomeStale
	// OutcomeNoEcho: a GET with a valid signature but no echostr (400).
	OutcomeNoEcho
	// OutcomeTooLarge: a POST whose body exceeds the maximum size (413).
	OutcomeTooLarge
	// OutcomeBodyError: a POST whose body could not be read, usually
	// because the client went away (400).
	OutcomeBodyError
	// OutcomePlaintextRefused: a POST without encrypt_type=aes while an
	// EncodingAESKey is configured and plaintext is not allowed
	// (WithAllowPlaintext) (403).
	OutcomePlaintextRefused
	// OutcomeNoAESKey: a POST with encrypt_type=aes, but no EncodingAESKey
	// is configured (WithAES): the official account platform is in safe
	// or compatible mode and this server is not (400).
	OutcomeNoAESKey
	// OutcomeBadMsgSignature: a safe-mode POST whose msg_signature matches
	// neither token over its Encrypt (403).
	OutcomeBadMsgSignature
	// OutcomeBadEncrypt: a safe-mode POST whose body has no Encrypt field,
	// or one that does not decrypt: not base64, not whole AES blocks, bad
	// padding or length (400). Nothing falls back to plaintext.
	OutcomeBadEncrypt
	// OutcomeWrongAppID: a safe-mode POST that decrypted but names another
	// AppID than the one configured (403).
	OutcomeWrongAppID
	// OutcomeBadMessage: the (decrypted) body is not a WeChat push: not
	// well-formed XML or JSON, or without MsgType (400).
	OutcomeBadMessage
	// OutcomeReplay: a plain-mode POST whose signature, timestamp and
	// nonce an accepted POST had already, with another body: someone who
	// saw a signed URL posting a message of their own (403). The same
	// triple with a byte-identical body is WeChat re-sending a push, and
	// passes.
	OutcomeReplay
)

var outcomeNames = [...]string{
	0:                   "unknown",
	OutcomeEcho:         "echo",
	OutcomePass:         "pass",
	OutcomeBadMethod:    "bad_method",
	OutcomeMissingParam: "missing_param",
	OutcomeBadQuery:     "bad_query",
	OutcomeBadTimestamp: "bad_timestamp",
	OutcomeBadSignature: "bad_signature",
	OutcomeStale:        "stale",
	OutcomeNoEcho:       "no_echo",
	OutcomeTooLarge:     "too_large",
	OutcomeBodyError:    "body_error",

	OutcomePlaintextRefused: "plaintext_refused",
	OutcomeNoAESKey:         "no_aes_key",
	OutcomeBadMsgSignature:  "bad_msg_signature",
	OutcomeBadEncrypt:       "bad_encrypt",
	OutcomeWrongAppID:       "wrong_appid",
	OutcomeBadMessage:       "bad_message",
	OutcomeReplay:           "replay",
}

// String returns the outcome's label, e.g. "pass" or "bad_signature".
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Accepted reports whether the request was a genuine WeChat callback that
// was answered (OutcomeEcho) or passed on (OutcomePass).
func (o Outcome) Accepted() bool {
	return o == OutcomeEcho || o == OutcomePass
}

// Status returns the HTTP status the middleware answers with for o, or 0
// for OutcomePass, whose status the next handler chooses.
func (o Outcome) Status() int {
	switch o {
	case OutcomeEcho:
		return http.StatusOK
	case OutcomePass:
		return 0
	case OutcomeBadMethod:
		return http.StatusMethodNotAllowed
	case OutcomeBadSignature, OutcomeStale, OutcomePlaintextRefused, OutcomeBadMsgSignature, OutcomeWrongAppID, OutcomeReplay:
		return http.StatusForbidden
	case OutcomeTooLarge:
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// A Result is what the middleware decided about one request, handed to the
// function set with WithResultFunc. It is a struct so that later options
// can add fields without breaking callers.
type Result struct {
	Outcome Outcome

	// PreviousToken is true when the signature matched the previous token
	// (WithPreviousToken) rather than the current one: WeChat is still
	// configured with the old token, and it cannot be retired yet.
	PreviousToken bool

	// Encrypted is true for a POST that came with encrypt_type=aes (safe
	// or compatible mode), whether or not it then decrypted.
	Encrypted bool

	// PreviousAESKey is true when the message decrypted only with the
	// previous EncodingAESKey (WithPreviousAESKey): WeChat still uses the
	// old key, and it cannot be dropped yet.
	PreviousAESKey bool
}
