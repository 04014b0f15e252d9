// Package wechattest is a fake WeChat platform for tests, in the spirit of
// net/http/httptest, plus a client that behaves as WeChat does towards a
// developer's callback URL. It serves Official Accounts, Mini Programs and
// Mini Games, and tests in any language can drive it over HTTP: the
// fake-wechat command runs it alone, and its control plane under /_fake/
// moves the clock, injects faults and reads the counters.
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
//   - The business APIs, with WeChat's shapes and state kept per app (see
//     the Path constants): menu create/get/delete and
//     get_current_selfmenu_info; user/info, user/info/batchget and
//     user/get (TestOpenIDs, and any 28-character OpenID, are followers);
//     tags create/get/update/delete, members batchtagging/batchuntagging,
//     getidlist and user/tag/get; message/custom/send and
//     message/template/send (recorded: Messages); qrcode/create and
//     showqrcode (a JPEG; no token, the ticket URL-encoded); shorturl and
//     shorten/gen, shorten/fetch; media/upload (the multipart part
//     "media", ?type=image|voice|video|thumb, kept 3 days) and media/get
//     (the file with its Content-Type and Content-Disposition; a video as
//     {"video_url"}; 40007 for an unknown media_id); material
//     add_material, get_material, del_material, batchget_material and
//     get_materialcount.
//   - GET /sns/jscode2session for Mini Programs and Mini Games: any js_code
//     starting with "test" (TestCodePrefix) logs in the user
//     OpenIDForCode(appid, code) with a fresh session_key; other codes are
//     40029.
//
// Every other path under an API family (/cgi-bin/, /wxa/, /datacube/,
// /customservice/, /card/, … as listed for proxies) answers
// {"errcode":0,"errmsg":"ok"} once the access_token checks out; any other
// path gets 40066 "invalid url". Each path takes one method, and the other
// gets 43001 "require GET method" or 43002 "require POST method".
//
// Every API answer is HTTP 200 with Content-Type
// "application/json; encoding=utf-8" (downloads aside); errors are
// {"errcode":N,"errmsg":"…"} with errmsg ending in " rid: …" as on the live
// platform (WithoutRID drops it).
//
// # Account kinds
//
// WithApp registers an Official Account; WithAppKind (or -app
// ID:SECRET:mini_program on the command line) a Mini Program or Mini Game.
// All kinds get their tokens the same way. A Mini Program or Mini Game has
// no tickets: getticket answers 48001 (WithMiniTicketCode picks another
// code, such as 40048); the Official Account APIs (menus, users, tags,
// template messages, QR codes, short links, material) answer 48001; custom
// messages, media and the other families work. Its pushes may be JSON
// (Callback.Format).
//
// # The control plane
//
// The Platform also serves /_fake/, the same state the Go methods change,
// for tests written in any language (one implementation: the routes call
// the methods):
//
//	GET    /_fake/stats        Stats as JSON, with the clock: fetches, issued, attempts, errors, accepted, rejected, apps
//	POST   /_fake/advance      {"seconds":N}: Advance
//	GET    /_fake/clock        the platform's time
//	POST   /_fake/clock        {"time":"RFC3339"}: SetClock
//	POST   /_fake/fail         {"path","errcode","errmsg","status","body","delay_ms","drop","times"}: Fail
//	DELETE /_fake/fail         ClearFaults (?path= for one path)
//	POST   /_fake/invalidate   {"appid"}: Invalidate (the app's tokens answer 40001 from now on)
//	POST   /_fake/reset        Reset: back to the start state
//	GET    /_fake/messages     ?appid=: Messages
//	GET    /_fake/media/{id}   the bytes of uploaded media, an alias of /_media/{id}
//
// The url, video_url and down_url the platform hands out point to
// /_media/{id}, outside the control plane: like WeChat's file URLs they
// need no credential, so they work with a control key, from any address
// and WithoutControlPlane.
//
// The control plane answers local programs only, unless WithControlKey is given: then
// it wants "Authorization: Bearer KEY" or "X-Fake-Key: KEY" from anyone.
// Local means a loopback caller asking for a loopback Host (localhost,
// 127.0.0.0/8 or [::1], any port) and no web page of another site behind
// the request (no Sec-Fetch-Site cross-site or same-site, no Origin other
// than a loopback one), so a page open in the developer's browser cannot
// drive it; curl and SDKs send neither header.
// Errors are HTTP 4xx with {"error":"…"}; unknown fields in a body are
// refused. WithoutControlPlane turns it off. NewFlags gives the
// fake-wechat command's flags for all of this.
//
// The platform's clock is real time unless WithClock freezes it; Advance
// and SetClock move either. Stats counts what was answered, and Fail injects faults
// (in-band errors, HTTP statuses, delays, malformed bodies, dropped
// connections) into the next calls of an endpoint. Points the
// documentation leaves open are options: WithExpiredCode,
// WithWrongSecretCode, WithWhitelistCode, WithClearQuotaKeepsStable,
// WithTicketFollowsToken, WithStableForceSpacing, WithDayLocation,
// WithMiniTicketCode, WithClearQuotaKeepsTokens and Callback.Deliveries.
//
// # The callback side
//
// Callback does what WeChat does towards a developer's server: Verify is
// the GET check made when the server configuration is saved, Send posts a
// signed message (XML, or JSON with Format for a Mini Program or Mini
// Game) and re-sends it when no answer comes within 5 s. Simulate
// runs both and prints PASS or FAIL per step.
//
// With a Sealer the Callback runs in safe mode (安全模式). NewAESSealer
// returns the one that does what WeChat does, built on package
// middleware/msgcrypt: the push is AES-encrypted for the AppID, wrapped in
// the <xml><ToUserName/><Encrypt/></xml> envelope (or
// {"ToUserName","Encrypt"} for a JSON push) and signed with
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
