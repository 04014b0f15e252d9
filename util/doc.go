// Package util holds the small shared pieces the original Koa app kept in
// util.js: the sorted-sha1 signature WeChat uses to sign callbacks and
// messages, a constant-time comparison of hex signatures, and atomic file
// writes for the token store.
//
// Nothing here knows about access tokens or HTTP; it is deliberately small so
// that every other package can depend on it.
package util
