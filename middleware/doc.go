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
// Safe mode (AES-encrypted bodies and replies) and the dedupe of WeChat's
// retries are not part of this package yet; they will come as further
// Options without changing Verify.
package middleware
