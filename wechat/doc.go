// Package wechat keeps a WeChat Official Account's access_token and
// jsapi_ticket the way WeChat asks a central control server (中控服务器) to:
// one fetch per refresh across every process and host that shares a Store,
// refreshed ahead of expiry while the old token is still served, and a
// passive refresh for callers whose token WeChat rejected.
package wechat
