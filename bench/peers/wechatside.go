package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The account both implementations serve: the same callback token, AppID,
// EncodingAESKey and AppSecret on each side.
const (
	token     = "s3cretT0ken"
	appID     = "wx0123456789abcdef"
	appSecret = "app-secret"
	aesKey    = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	ghID      = "gh_97417a04a28d"
	openID    = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY"
	pageURL   = "https://example.com/shop/item?id=42"
)

// The signature vector of wechat-platform.md: token AAAAA, this timestamp
// and nonce, signed by WeChat.
const (
	vecToken = "AAAAA"
	vecTS    = "1714036504"
	vecNonce = "1514711492"
	vecSig   = "f464b24fc39322e44b38aa78f5edd27bd1441696"
)

// vecBadSig is vecSig with its last digit changed: the check must refuse it.
const vecBadSig = "f464b24fc39322e44b38aa78f5edd27bd1441697"

// The harness plays WeChat with code of its own, built on the standard
// library only, so that neither implementation under test builds the
// other's input or checks its own output.

// sign is WeChat's signature: the hex sha1 of parts sorted and joined.
func sign(parts ...string) string {
	parts = slices.Clone(parts)
	slices.Sort(parts)
	sum := sha1.Sum([]byte(strings.Join(parts, "")))
	return hex.EncodeToString(sum[:])
}

// aesKeyBytes is the AES-256 key of the EncodingAESKey k.
func aesKeyBytes(k string) []byte {
	key, err := base64.StdEncoding.DecodeString(k + "=")
	if err != nil || len(key) != 32 {
		panic("bad EncodingAESKey")
	}
	return key
}

// seal encrypts msg for appID as WeChat does: AES-256-CBC, IV the key's
// first 16 bytes, of random ‖ len(msg) ‖ msg ‖ appID padded to 32 bytes.
func seal(key []byte, random [16]byte, msg, appID string) string {
	plain := make([]byte, 0, 20+len(msg)+len(appID)+32)
	plain = append(plain, random[:]...)
	plain = binary.BigEndian.AppendUint32(plain, uint32(len(msg)))
	plain = append(plain, msg...)
	plain = append(plain, appID...)
	pad := 32 - len(plain)%32
	plain = append(plain, bytes.Repeat([]byte{byte(pad)}, pad)...)
	block, _ := aes.NewCipher(key)
	cipher.NewCBCEncrypter(block, key[:16]).CryptBlocks(plain, plain)
	return base64.StdEncoding.EncodeToString(plain)
}

// open decrypts an Encrypt field and returns the message and the AppID in it.
func open(key []byte, enc string) (msg, appID string, err error) {
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", "", fmt.Errorf("Encrypt is not base64: %w", err)
	}
	if len(raw) == 0 || len(raw)%aes.BlockSize != 0 {
		return "", "", fmt.Errorf("Encrypt is %d bytes, not whole blocks", len(raw))
	}
	block, _ := aes.NewCipher(key)
	cipher.NewCBCDecrypter(block, key[:16]).CryptBlocks(raw, raw)
	pad := int(raw[len(raw)-1])
	if pad < 1 || pad > 32 || pad > len(raw) {
		return "", "", fmt.Errorf("bad padding %d", pad)
	}
	raw = raw[:len(raw)-pad]
	if len(raw) < 20 {
		return "", "", errors.New("plaintext too short")
	}
	n := int(binary.BigEndian.Uint32(raw[16:20]))
	if 20+n > len(raw) {
		return "", "", fmt.Errorf("message length %d beyond the plaintext", n)
	}
	return string(raw[20 : 20+n]), string(raw[20+n:]), nil
}

// push is one callback as WeChat sends it, and the reply it must get.
type push struct {
	method, target, body string
	contentType          string
	want                 string // the echostr, or the Content of the text reply
}

// textPush is text message number seq from openID, "hello <seq>", signed
// for now; its reply must be "you said: hello <seq>". In safe mode it is
// encrypted, and the query carries encrypt_type and msg_signature.
func textPush(seq int, now time.Time, safe bool) push {
	ts := strconv.FormatInt(now.Unix(), 10)
	nonce := "n" + strconv.Itoa(seq)
	content := "hello " + strconv.Itoa(seq)
	msg := "<xml><ToUserName><![CDATA[" + ghID + "]]></ToUserName><FromUserName><![CDATA[" + openID + "]]></FromUserName>" +
		"<CreateTime>" + ts + "</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[" + content + "]]></Content>" +
		"<MsgId>" + strconv.Itoa(1e15+seq) + "</MsgId></xml>"
	q := "signature=" + sign(token, ts, nonce) + "&timestamp=" + ts + "&nonce=" + nonce + "&openid=" + openID
	p := push{method: "POST", contentType: "text/xml", want: "you said: " + content}
	if !safe {
		p.target, p.body = "/wechat?"+q, msg
		return p
	}
	var random [16]byte
	binary.BigEndian.PutUint64(random[8:], uint64(seq))
	enc := seal(aesKeyBytes(aesKey), random, msg, appID)
	p.target = "/wechat?" + q + "&encrypt_type=aes&msg_signature=" + sign(token, ts, nonce, enc)
	p.body = "<xml><ToUserName><![CDATA[" + ghID + "]]></ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>"
	return p
}

// handshake is the GET with which WeChat checks the URL, echostr number seq.
func handshake(seq int, now time.Time) push {
	ts := strconv.FormatInt(now.Unix(), 10)
	nonce := "h" + strconv.Itoa(seq)
	echo := strconv.Itoa(4375120948345356249 + seq)
	return push{
		method: "GET",
		target: "/wechat?signature=" + sign(token, ts, nonce) + "&timestamp=" + ts + "&nonce=" + nonce + "&echostr=" + echo,
		want:   echo,
	}
}

// textReply is a passive text reply.
type textReply struct {
	ToUserName, FromUserName, MsgType, Content string
	CreateTime                                 int64
}

// checkText checks a plain text reply to a push from openID to ghID.
func checkText(body []byte, want string, now time.Time) error {
	var r textReply
	if err := xml.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("reply %.80q is no XML: %v", body, err)
	}
	switch {
	case r.MsgType != "text":
		return fmt.Errorf("reply MsgType %q, want text", r.MsgType)
	case r.ToUserName != openID || r.FromUserName != ghID:
		return fmt.Errorf("reply goes from %q to %q, want from %q to %q", r.FromUserName, r.ToUserName, ghID, openID)
	case r.Content != want:
		return fmt.Errorf("reply Content %q, want %q", r.Content, want)
	case abs(now.Unix()-r.CreateTime) > 60:
		return fmt.Errorf("reply CreateTime %d is far from now (%d)", r.CreateTime, now.Unix())
	}
	return nil
}

// checkSafe checks an encrypted reply as WeChat does: MsgSignature over
// the token, TimeStamp, Nonce and Encrypt, then the AppID inside and the
// text reply.
func checkSafe(body []byte, want string, now time.Time) error {
	var env struct {
		Encrypt, MsgSignature, Nonce, TimeStamp string
	}
	if err := xml.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("reply %.80q is no XML: %v", body, err)
	}
	if env.Encrypt == "" {
		return fmt.Errorf("reply %.80q is not encrypted", body)
	}
	if got := sign(token, env.TimeStamp, env.Nonce, env.Encrypt); got != env.MsgSignature {
		return fmt.Errorf("reply MsgSignature %q, want %q", env.MsgSignature, got)
	}
	msg, id, err := open(aesKeyBytes(aesKey), env.Encrypt)
	if err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	if id != appID {
		return fmt.Errorf("reply sealed for AppID %q, want %q", id, appID)
	}
	return checkText([]byte(msg), want, now)
}

// jsConfig is a JS-SDK configuration, whichever implementation signed it.
type jsConfig struct {
	AppID, NonceStr, Signature string
	Timestamp                  int64
}

// checkJS checks a JS-SDK configuration for pageURL signed with ticket.
func checkJS(c jsConfig, ticket string, now time.Time) error {
	want := sha1.Sum([]byte("jsapi_ticket=" + ticket + "&noncestr=" + c.NonceStr +
		"&timestamp=" + strconv.FormatInt(c.Timestamp, 10) + "&url=" + pageURL))
	switch {
	case c.AppID != appID:
		return fmt.Errorf("JS-SDK appId %q, want %q", c.AppID, appID)
	case len(c.NonceStr) < 8:
		return fmt.Errorf("JS-SDK nonceStr %q is too short", c.NonceStr)
	case abs(now.Unix()-c.Timestamp) > 60:
		return fmt.Errorf("JS-SDK timestamp %d is far from now (%d)", c.Timestamp, now.Unix())
	case c.Signature != hex.EncodeToString(want[:]):
		return fmt.Errorf("JS-SDK signature %q, want %x", c.Signature, want)
	}
	return nil
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
