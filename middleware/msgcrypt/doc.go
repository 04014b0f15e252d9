// Package msgcrypt implements WeChat's message encryption (安全模式, safe
// mode, and 兼容模式, compatible mode) for official account callbacks.
//
// A pushed message arrives as an envelope whose Encrypt field is
//
//	base64(AES-256-CBC(random[16] ‖ len(msg) as 4 bytes big-endian ‖ msg ‖ AppID ‖ PKCS#7 padding to 32))
//
// with the key from the account's 43-character EncodingAESKey and the IV its
// first 16 bytes, and the query string carries msg_signature, the sorted
// sha1 of the token, timestamp, nonce and Encrypt. A Crypter verifies the
// signature, decrypts, checks the AppID (trying the previous key during a
// key rotation) and seals the reply in an envelope of the same form.
// WeChat's side (sealing pushes, opening replies) is played by
// wechattest.AESSealer, for tests and the simulate command.
//
// Every rejection of a message wraps one sentinel error (ErrSignature,
// ErrBase64, ErrBlockSize, ErrPadding, ErrLength, ErrAppID, ErrEnvelope),
// and a malformed or missing key wraps ErrKey, so a caller can count and
// answer failures with errors.Is; a Crypter without AppID or token refuses
// to work with a plain error naming the setting. Nothing here falls
// back to the plaintext of a compatible-mode body, and no error or String
// method contains a key or token.
package msgcrypt
