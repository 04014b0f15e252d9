// Package server is the wxcentral application: the wiring that turns a
// config.Config into the running central control server (中控服务器). The
// wxcentral command (app.go) is a thin shell over it; a program that
// embeds the whole server, rather than mounting the admin API or the
// callback middleware in a server of its own, calls Serve the same way.
//
// It puts together what the library packages provide:
//
//   - Serve runs the public listener (the callback middleware,
//     middleware.Verify, with safe mode when an EncodingAESKey is set and
//     retry dedupe through the store's Redis when the store is Redis, in
//     front of Options.Handler, by default ReferenceHandler), the admin
//     listener (central.Admin), and the background refresh of a token
//     keeper per app (one app from the environment, or the [[app]] tables
//     of a config file, reloaded on SIGHUP or POST /v1/reload), each built
//     by wechat.Open on the store WECHAT_STORE names (a file path or a
//     directory of files, a Redis URL through wechat/redisstore, a MySQL
//     or PostgreSQL URL through wechat/sqlstore). The listeners run
//     in one errgroup; when ctx ends, or a listener fails, they stop
//     accepting, requests in flight have half of Options.ShutdownTimeout
//     to finish, and those still waiting are answered 503
//     (central.ErrShuttingDown). A file store is checked before serving;
//     header sizes are limited (16 KiB public, 64 KiB admin) so that slow
//     oversized headers cannot take the memory.
//   - Demo runs Serve against an in-process fake WeChat platform (package
//     wechattest), so that a newcomer sees it work without an account;
//     FakeWechat serves that fake platform alone.
//
// The admin API and its metrics are the library package wechat/central;
// business servers in other processes use wechat.NewRemote against it.
// Neither imports this package.
package server
