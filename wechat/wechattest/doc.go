// Package wechattest is a fake WeChat Official Account platform for tests,
// in the spirit of net/http/httptest, plus a client that behaves as WeChat
// does towards a developer's callback URL.
//
// # The API side
//
// NewServer starts a Platform on a loopback port; point the code under test
// at its URL instead of https://api.weixin.qq.com:
//
//	srv := wechattest.NewServer(wechattest.WithApp("wx123", "secret"))
//	defer srv.Close()
//
// The Platform serves:
//
//   - GET /cgi-bin/token: a new token per call; the previous one keeps
//     working for the grace period (WithGrace, default 300 s) and then
//     answers 40001; 2000 calls a day per app, then 45009 until the quota
//     day changes (00:00 Asia/Shanghai by default) or clear_quota is called.
//     Errors 40002, 41002, 40013, 41004, 40125, 40164, 40243.
//   - POST /cgi-bin/stable_token (JSON body only, else 43002/47001): the
//     current token with its remaining expires_in, renewed in its last 300 s;
//     force_refresh mints a new token (20 a day, ignored within 30 s of the
//     previous force); two slots, current and previous; 10 000 calls a
//     minute (45011) and 500 000 a day (45009). Independent of
//     /cgi-bin/token.
//   - GET /cgi-bin/ticket/getticket?access_token=&type=jsapi|wx_card: the
//     same ticket for its lifetime, expires_in always the full lifetime.
//   - GET /cgi-bin/get_api_domain_ip and /cgi-bin/getcallbackip: business
//     calls that only validate the access_token (41001 missing, 40014
//     unknown, 40001 superseded, 42001 expired).
//   - POST /cgi-bin/clear_quota, /cgi-bin/clear_quota/v2: reset the app's
//     daily counts, 10 times a calendar month, then 48006.
//   - POST /cgi-bin/openapi/quota/get: daily_limit, used and remain of a
//     cgi_path (76003, 76021, 76022).
//
// Every API answer is HTTP 200 with Content-Type
// "application/json; encoding=utf-8"; errors are {"errcode":N,"errmsg":"…"}
// with errmsg ending in " rid: …" as on the live platform (WithoutRID drops
// it). Other paths get HTTP 404 with a plain-text body.
//
// The platform's clock is real time unless WithClock freezes it; Advance
// moves either. Stats counts what was answered, and Fail injects faults
// (in-band errors, HTTP statuses, delays, malformed bodies, dropped
// connections) into the next calls of an endpoint. Points the
// documentation leaves open are options: WithExpiredCode,
// WithWrongSecretCode, WithWhitelistCode, WithClearQuotaKeepsStable,
// WithTicketFollowsToken, WithStableForceSpacing, WithDayLocation, and
// Callback.Deliveries.
//
// # The callback side
//
// Callback does what WeChat does towards a developer's server: Verify is
// the GET check made when the server configuration is saved, Send posts a
// signed message and re-sends it when no answer comes within 5 s. Simulate
// runs both and prints PASS or FAIL per step.
//
// With a Sealer the Callback runs in safe mode (安全模式). NewAESSealer
// returns the one that does what WeChat does, built on package
// middleware/msgcrypt: the push is AES-encrypted for the AppID, wrapped in
// the <xml><ToUserName/><Encrypt/></xml> envelope and signed with
// msg_signature (the query adds encrypt_type=aes); a reply other than ""
// or "success" must be the encrypted reply envelope, whose MsgSignature,
// key and AppID are checked before Send returns it decrypted. A plaintext
// reply fails with ErrReplyNotEncrypted, except in compatible mode (兼容模式,
// AESSealer.Compatible). SimulateConfig.AESKey and AppID run Simulate in
// safe mode.
//
// Package wechattest must not import package wechat (wechat's tests
// import it).
package wechattest
