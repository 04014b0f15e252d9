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
// still parse, with the body in Message.Raw. A message.Router is the usual
// next handler: it dispatches by message type and event to functions that
// return a reply (message.Text, message.News, …), and writes it with To and
// From swapped and CreateTime from the middleware's clock. New mounts one
// in a line, and its documentation lists the stack Verify builds.
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
// # Replays with another body
//
// In plain mode the signature covers the token, timestamp and nonce, not
// the body, so one signed URL would carry any body for as long as its
// timestamp is in the window. The middleware remembers the signature,
// timestamp and nonce of every plain-mode POST it accepts, with the
// SHA-256 of its body, until the timestamp leaves the window (at most
// twice the window; twice DefaultTimestampWindow when the window check is
// off). The same triple with a byte-identical body is WeChat re-sending
// the push, or someone who captured it replaying it: once a delivery of
// the triple has been answered (a status below 500), it never runs the
// next handler again. It is answered with the stored reply, which the
// dedupe keeps as long as the triple can come back (twice the window and
// a second, at least dedupe.DefaultTTL), or, when that reply is no longer
// kept (a full Memory forgot it), refused with 403 (OutcomeReplay). After
// a delivery that failed (a 5xx, or nothing written) the next one runs the
// handler again, as WeChat's re-delivery should. The same triple with any
// other body is refused with 403 (OutcomeReplay) and logged at Warn,
// without the body. A POST whose store lookup fails is accepted, and the
// failure logged at Error. With WithDedupe(nil) there is no stored reply:
// identical replays run the handler, which must then deduplicate itself.
//
// The triples are kept in the dedupe store when it is shared (a
// redisstore.Dedupe given with WithDedupe, so every host behind a load balancer sees the
// triples the others accepted), and otherwise in a memory of each
// Verify's own, of at most ReplayMaxEntries triples: when that fills up,
// the oldest triples are forgotten first. Only
// someone who can sign, that is WeChat or whoever holds the token, can
// fill it. This narrows plain mode; it does not make it safe: whoever
// intercepts a signed URL before it reaches the server can still replace
// its message. In safe and compatible mode msg_signature covers Encrypt,
// so another body fails the signature check already; the triple (with
// msg_signature) is remembered there too, so that an identical replay
// follows the same rule.
//
// # Re-deliveries
//
// WeChat re-sends a push whose reply takes more than 5 s, three times in
// all. The middleware runs the next handler once per push (keyed by
// Message.DedupeKey) and answers the re-deliveries with the first reply; by
// default it remembers pushes in memory, WithDedupe chooses another store
// (redisstore.NewDedupe of package wechat/redisstore, for many processes)
// or, with nil, turns this off. A reply with a 5xx status is not
// remembered, and neither is a handler that wrote nothing at all (no
// WriteHeader, no Write): the next delivery runs the handler again, and the
// middleware writes nothing for it either, so that a framework around it
// can still answer. What such a framework writes afterwards into the
// writer its handler had goes on to the client: echo's WrapMiddleware
// writes a handler's error that way, and WeChat gets the 500 and
// re-delivers. A handler that means "no reply" writes "success".
//
// # Logs and reverse proxies
//
// A rejected request is logged once at Warn with the reason; an accepted
// callback once at Info, after the next handler answered, with the
// message type, event, a short hash of the sender's OpenID, the status
// and the latency. No line holds the token, a key, the body or an OpenID.
// Each names the remote address: r.RemoteAddr, or, for a request from a
// reverse proxy named with WithTrustedProxies, the client address that
// proxy put in X-Forwarded-For or X-Real-IP. Those headers are ignored
// from every other peer, since anyone can send them.
package middleware
