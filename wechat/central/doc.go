// Package central is the admin API of wxcentral's central control server
// (中控服务器), the one process that keeps an official account's access
// token fresh and hands it to every business server, as a library.
//
// Admin is an http.Handler serving the admin API (GET /v1/token, POST
// /v1/token/refresh, GET /v1/ticket/jsapi, GET /v1/jssdk/config, GET
// /healthz, GET /metrics) on top of a token keeper (*wechat.Wechat, or
// any Keeper), or of many (SetApps: one App per account, each at
// /v1/apps/{app_id}/…, listed by GET /v1/apps), with an optional bearer
// key and Prometheus metrics on a registry of their own. Without a key it answers only requests whose Host
// is localhost, a loopback address or a name in AdminOptions.AllowedHosts
// (WECHAT_ADMIN_HOSTS), and refuses others with 403: a web page could
// otherwise read the token through a DNS rebinding name that resolves to
// 127.0.0.1. Every error body carries a stable machine-readable reason
// (see Admin); StatusOf and ErrorReason give the status and the reason of
// a keeper error.
//
// GET /status is a status page for people, one self-contained HTML page
// (no external assets) that shows every app's token state, life, quota,
// 24-hour refresh timeline, last error, store and gateway calls, and
// updates itself from GET /v1/status, the same data as JSON; neither
// ever holds a credential. A browser opens it with HTTP Basic, the admin
// key as the password.
//
// The server around it (listeners, stores from URLs, the callback
// middleware, the demo) is package wechat/server. Business servers in
// other processes or hosts use wechat.NewRemote, a wechat.TokenSource
// backed by the admin API.
package central
