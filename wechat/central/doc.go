// Package central is wxcentral's central control server (中控服务器): the
// one process that keeps an official account's access token fresh and
// hands it to every business server.
//
// It has three parts:
//
//   - Admin, an http.Handler serving the admin API (GET /v1/token, POST
//     /v1/token/refresh, GET /v1/ticket/jsapi, GET /v1/jssdk/config,
//     GET /healthz, GET /metrics) on top of a token keeper (*wechat.Wechat),
//     with an optional bearer key and Prometheus metrics on a registry of
//     its own.
//   - Serve, which runs the whole server from a config.Config: the public
//     listener with the callback middleware, the admin listener, the
//     background refresh, and a graceful shutdown when its context ends.
//   - Demo, which runs Serve against an in-process fake WeChat platform
//     (package wechattest) so that a newcomer sees it work without an
//     account.
//
// Business servers in other processes or hosts use wechat.NewRemote, a
// wechat.TokenSource backed by the admin API.
package central
