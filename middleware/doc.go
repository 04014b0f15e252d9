// Package middleware verifies WeChat Official Account callbacks for net/http.
//
// WeChat calls the developer's URL in two ways (wechat-platform.md §8, §9):
//
//   - GET ?signature=…&timestamp=…&nonce=…&echostr=… when the server
//     configuration is saved: the server must answer echostr, unchanged.
//   - POST ?signature=…&timestamp=…&nonce=…&openid=… with a message or an
//     event in the body: the server handles it.
//
// In both, signature is the hex sha1 of token, timestamp and nonce sorted and
// concatenated, where token is the secret shared with the official account
// platform. Verify builds a middleware, func(http.Handler) http.Handler, that
// checks it: it answers the GET handshake itself and passes a verified POST,
// with its body read and bounded, to the next handler. Everything else is
// rejected with a 4xx status and a short plain-text reason. The middleware
// works with plain net/http and with gorilla/mux's Router.Use, and keeps no
// global state.
//
// # Typed messages
//
// The body of a POST is parsed once into a message.Message, which the next
// handler takes from the request's context with message.FromContext; a body
// that is no push is answered 400. Types the message package does not model
// still parse, with the body in Message.Raw. The reply helpers of package
// message (ReplyText, ReplyImage, ReplyNews) build the passive replies.
//
// # Safe mode
//
// With WithAES (or WithAESKeys) the middleware speaks safe mode (安全模式)
// and compatible mode (兼容模式): WeChat adds encrypt_type=aes and
// msg_signature to the query and puts the message, AES-encrypted, in the
// Encrypt field of the body. The middleware checks msg_signature, decrypts
// Encrypt, checks the AppID inside, and hands the next handler the
// plaintext, in r.Body and parsed in the context; it never falls back to the
// plaintext fields of a compatible-mode body. It buffers the reply and
// encrypts it, unless it is "" or "success", which WeChat takes as they
// are. WithPreviousAESKey and WithPreviousToken carry a rotation: a message
// under the old key or token is accepted and answered with it.
//
// Once a key is configured, plaintext POSTs are refused (403), because the
// plain-mode signature does not cover the body; WithAllowPlaintext(true)
// accepts them while an account moves from plain mode to safe mode. Without
// a key, a POST with encrypt_type=aes is refused (400): the account is in
// safe mode and the server is not configured for it.
//
// # Re-deliveries
//
// WeChat re-sends a push whose reply takes more than 5 s, three times in
// all. The middleware runs the next handler once per push (keyed by
// Message.DedupeKey) and answers the re-deliveries with the first reply; by
// default it remembers pushes in memory, WithDedupe chooses another store
// (dedupe.NewRedis for many processes) or, with nil, turns this off.
package middleware
