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
//     its own. Without a key it answers only requests whose Host is
//     localhost, a loopback address or a name in AdminOptions.AllowedHosts
//     (WECHAT_ADMIN_HOSTS), and refuses others with 403: a web page could
//     otherwise read the token through a DNS rebinding name that resolves
//     to 127.0.0.1.
//   - Serve, which runs the whole server from a config.Config: the public
//     listener with the callback middleware, the admin listener, the
//     background refresh of one keeper built by wechat.Open (so its
//     back-off and cooldown span a start-up without a token), and a
//     graceful shutdown when its context ends: the listeners stop
//     accepting, requests in flight have half of
//     ServeOptions.ShutdownTimeout to finish, and those still waiting are
//     answered 503 (ErrShuttingDown). A file store is checked before
//     serving (its directory exists and is writable, the path is not a
//     directory). Header sizes are limited (16 KiB public, 64 KiB admin)
//     so that slow oversized headers cannot take the memory.
//   - Demo, which runs Serve against an in-process fake WeChat platform
//     (package wechattest) so that a newcomer sees it work without an
//     account.
//
// Business servers in other processes or hosts use wechat.NewRemote, a
// wechat.TokenSource backed by the admin API.
package central
