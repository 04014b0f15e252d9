package middleware

import (
	"net/url"
	"strings"
)

// query holds the callback parameters the middleware reads. An empty field
// was absent (or empty, which is no better).
type query struct {
	signature string
	timestamp string
	nonce     string
	echostr   string

	encryptType  string // "aes" in safe and compatible mode; "" or "raw" in plain mode
	msgSignature string // safe mode: the sorted sha1 over the token, timestamp, nonce and Encrypt
}

// parseQuery picks the callback parameters out of a raw query string without
// building a url.Values map: values are substrings of raw unless they carry
// a %-escape or '+', so the common case allocates nothing.
//
// Pairs are split as url.ParseQuery splits them (on '&'; a pair holding ';'
// is skipped). Unlike url.Values.Get it refuses a callback parameter given
// twice, so that no proxy in front can read a different value than this
// code does, and a malformed escape in one of them; it returns the reason
// for the refusal, or "".
func parseQuery(raw string) (query, string) {
	var q query
	var seen uint8
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			continue
		}
		key, val, _ := strings.Cut(pair, "=")
		if needsUnescape(key) {
			k, err := url.QueryUnescape(key)
			if err != nil {
				continue // not a parameter this code reads
			}
			key = k
		}
		var dst *string
		var bit uint8
		switch key {
		case "signature":
			dst, bit = &q.signature, 1
		case "timestamp":
			dst, bit = &q.timestamp, 2
		case "nonce":
			dst, bit = &q.nonce, 4
		case "echostr":
			dst, bit = &q.echostr, 8
		case "encrypt_type":
			dst, bit = &q.encryptType, 16
		case "msg_signature":
			dst, bit = &q.msgSignature, 32
		default:
			continue
		}
		if seen&bit != 0 {
			return query{}, "duplicate " + key + " parameter"
		}
		seen |= bit
		if needsUnescape(val) {
			v, err := url.QueryUnescape(val)
			if err != nil {
				return query{}, "malformed escape in " + key + " parameter"
			}
			val = v
		}
		*dst = val
	}
	return q, ""
}

func needsUnescape(s string) bool {
	return strings.IndexByte(s, '%') >= 0 || strings.IndexByte(s, '+') >= 0
}
