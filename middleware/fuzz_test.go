package middleware_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/middleware/msgcrypt"
	"github.com/wxcentral/wxcentral/util"
)

// FuzzVerify feeds the middleware random methods, queries and bodies. When
// sign is set the harness prepends a valid signature for ts and nonce, so
// the fuzzer reaches the accepting paths too; extra is appended raw.
//
// Invariants: no panic; no 5xx; the next handler runs only for a POST whose
// query, parsed independently by url.ParseQuery, carries exactly one valid
// signature, timestamp (within the window) and nonce, no encrypt_type but
// raw, and whose body is a push (message.Parse), and then it reads the body
// exactly as sent and finds the message in the context; a well-formed valid
// request is always accepted.
func FuzzVerify(f *testing.F) {
	f.Add("GET", vecTS, vecNonce, "echostr="+vecEcho, true, []byte(nil), false)
	f.Add("POST", vecTS, vecNonce, "openid=o9AgO5Kd5ggOC", true, []byte("<xml><MsgType>text</MsgType></xml>"), false)
	f.Add("POST", vecTS, "a b+c%", "", true, []byte(`{"MsgType":"event"}`), true)
	f.Add("POST", vecTS, vecNonce, "encrypt_type=raw", true, []byte("<xml><MsgType>x</MsgType></xml>"), false)
	f.Add("POST", vecTS, vecNonce, "encrypt_type=aes&msg_signature=00", true, []byte("<xml><MsgType>x</MsgType></xml>"), false)
	f.Add("POST", vecTS, "a b+c%", "", true, []byte("x"), true)
	f.Add("POST", vecTS, vecNonce, "signature="+vecSig, true, []byte("dup"), false)
	f.Add("POST", vecTS, vecNonce, "", true, bytes.Repeat([]byte("y"), 300), true)
	f.Add("GET", "", "", "signature="+vecSig+"&timestamp="+vecTS+"&nonce="+vecNonce+"&echostr=e", false, []byte(nil), false)
	f.Add("GET", "", "", "signature=%zz&timestamp=1&nonce=;", false, []byte(nil), false)
	f.Add("PUT", vecTS, vecNonce, "", true, []byte("z"), false)
	f.Add("POST", "1714036000", vecNonce, "", true, []byte("stale"), false)
	f.Add("POST", "0017140365040", vecNonce, "", true, []byte("zeros"), false)
	f.Add("", "", "", "&&==&;", false, []byte{0}, true)

	const token, limit = "AAAAA", 256
	f.Fuzz(func(t *testing.T, method, ts, nonce, extra string, sign bool, body []byte, chunked bool) {
		var called, typed bool
		var got []byte
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			called = true
			got, _ = io.ReadAll(r.Body)
			m, ok := message.FromContext(r.Context())
			typed = ok && bytes.Equal(m.Raw, body)
		})
		mw := middleware.Verify(token,
			middleware.WithClock(util.ClockFunc(func() time.Time { return vecTime })),
			middleware.WithMaxBodySize(limit),
			middleware.WithLogger(slog.New(slog.DiscardHandler)),
		)(next)

		raw := extra
		if sign {
			pre := "signature=" + util.Signature(token, ts, nonce) +
				"&timestamp=" + url.QueryEscape(ts) + "&nonce=" + url.QueryEscape(nonce)
			if raw != "" {
				pre += "&"
			}
			raw = pre + raw
		}
		r := &http.Request{
			Method:        method,
			URL:           &url.URL{Path: "/", RawQuery: raw},
			Header:        http.Header{},
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
			RemoteAddr:    "192.0.2.1:4711",
		}
		if chunked {
			r.ContentLength = -1
		}
		w := httptest.NewRecorder()
		mw.ServeHTTP(w, r)

		if w.Code >= 500 {
			t.Fatalf("status %d", w.Code)
		}
		q, perr := url.ParseQuery(raw)
		_, merr := message.Parse(body)
		valid := oracle(token, q) && merr == nil
		if called {
			if method != http.MethodPost || !valid {
				t.Fatalf("next ran for %s ?%s (valid by url.ParseQuery: %v)", method, raw, valid)
			}
			if !bytes.Equal(got, body) || !typed {
				t.Fatalf("next read %q (message in the context: %v), sent %q", got, typed, body)
			}
			if w.Code != 200 {
				t.Fatalf("status %d after next", w.Code)
			}
			return
		}
		if perr != nil || !valid {
			return // rejecting is always allowed
		}
		switch {
		case method == http.MethodPost && len(body) <= limit:
			t.Fatalf("a valid POST was rejected: %d %q", w.Code, w.Body)
		case method == http.MethodPost && w.Code != http.StatusRequestEntityTooLarge:
			t.Fatalf("an oversized POST got %d, want 413", w.Code)
		case method == http.MethodGet && len(q["echostr"]) == 1 && q.Get("echostr") != "":
			if w.Code != 200 || w.Body.String() != q.Get("echostr") {
				t.Fatalf("valid handshake answered %d %q, want echostr %q", w.Code, w.Body, q.Get("echostr"))
			}
		}
	})
}

// oracle decides validity from url.ParseQuery's view of the query, without
// the middleware's parser or util.VerifySignature.
func oracle(token string, q url.Values) bool {
	for _, k := range []string{"signature", "timestamp", "nonce"} {
		if len(q[k]) != 1 || q[k][0] == "" {
			return false
		}
	}
	for _, k := range []string{"echostr", "encrypt_type", "msg_signature"} {
		if len(q[k]) > 1 {
			return false
		}
	}
	if et := q.Get("encrypt_type"); et != "" && et != "raw" {
		return false // no key configured: only plain mode
	}
	ts := q.Get("timestamp")
	if strings.TrimLeft(ts, "0123456789") != "" {
		return false
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(ts) > 18 {
		return false
	}
	if d := vecTime.Unix() - n; d > 300 || d < -300 {
		return false
	}
	return strings.EqualFold(util.Signature(token, ts, q.Get("nonce")), q.Get("signature"))
}

// FuzzSafeMode feeds the middleware in safe mode random pushes: plain is
// the message; how says how its Encrypt is made (0: encrypted for the
// configured AppID; 1: the raw text enc; 2: encrypted for another AppID;
// 3: encrypted, then one bit at pos flipped); msg_signature is valid when
// signMsg is set, else msgSig as given. The envelope is XML or JSON.
//
// Invariants: no panic; no 5xx; the next handler runs if and only if an
// independent oracle (its own AES-CBC, padding and AppID checks, then
// message.Parse) finds the request valid, and then it reads exactly the
// plaintext, and its reply comes back in an envelope that opens to it.
//
// Run it with a short -fuzzminimizetime (say 2s): minimising the many new
// inputs it finds otherwise stalls the run for long stretches.
func FuzzSafeMode(f *testing.F) {
	f.Add([]byte(textMsg(1)), uint8(0), "", true, "", false, uint16(0))
	f.Add([]byte(vnMsg), uint8(0), "", true, "", true, uint16(0))
	f.Add([]byte(textMsg(1)), uint8(3), "", true, "", false, uint16(17))
	f.Add([]byte(textMsg(1)), uint8(3), "", true, "", false, uint16(200))
	f.Add([]byte(textMsg(1)), uint8(2), "", true, "", false, uint16(0))
	f.Add([]byte(textMsg(1)), uint8(0), "", false, vnMsgSig, false, uint16(0))
	f.Add([]byte("not a message"), uint8(0), "", true, "", false, uint16(0))
	f.Add([]byte(nil), uint8(1), vnEnc, true, "", true, uint16(0))
	f.Add([]byte(nil), uint8(1), "AAAA", true, "", false, uint16(0))
	f.Add([]byte(nil), uint8(1), "", true, "", false, uint16(0))

	key := mustKey(f, testKey)
	ts := strconv.FormatInt(vecTime.Unix(), 10)
	const nonce = "n0nce"
	f.Fuzz(func(t *testing.T, plain []byte, how uint8, enc string, signMsg bool, msgSig string, asJSON bool, pos uint16) {
		switch how % 4 {
		case 0:
			enc = key.EncryptWith([16]byte{1, 2, 3}, plain, testAppID)
		case 1:
			enc = printable(enc)
		case 2:
			enc = key.EncryptWith([16]byte{1, 2, 3}, plain, "wx_someone_else")
		case 3:
			raw, _ := base64.StdEncoding.DecodeString(key.EncryptWith([16]byte{1, 2, 3}, plain, testAppID))
			bit := int(pos) % (len(raw) * 8)
			raw[bit/8] ^= 1 << (bit % 8)
			enc = base64.StdEncoding.EncodeToString(raw)
		}
		if signMsg {
			msgSig = msgcrypt.Sign(testToken, ts, nonce, enc)
		}
		var body []byte
		if asJSON {
			body, _ = json.Marshal(map[string]string{"ToUserName": "gh_1", "Encrypt": enc})
		} else {
			var b bytes.Buffer
			b.WriteString("<xml><ToUserName>gh_1</ToUserName><Encrypt>")
			xml.EscapeText(&b, []byte(enc))
			b.WriteString("</Encrypt></xml>")
			body = b.Bytes()
		}
		q := url.Values{
			"signature":     {util.Signature(testToken, ts, nonce)},
			"timestamp":     {ts},
			"nonce":         {nonce},
			"encrypt_type":  {"aes"},
			"msg_signature": {msgSig},
		}

		var called bool
		var got []byte
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			called = true
			got, _ = io.ReadAll(r.Body)
			w.Write([]byte("reply to "))
			w.Write(got)
		})
		mw := middleware.Verify(testToken,
			middleware.WithAES(testAppID, testKey),
			middleware.WithClock(util.ClockFunc(func() time.Time { return vecTime })),
			middleware.WithLogger(slog.New(slog.DiscardHandler)),
		)(next)
		r := httptest.NewRequest(http.MethodPost, "/?"+q.Encode(), bytes.NewReader(body))
		w := httptest.NewRecorder()
		mw.ServeHTTP(w, r)

		if w.Code >= 500 {
			t.Fatalf("status %d: %q", w.Code, w.Body)
		}
		want, valid := safeOracle(testToken, ts, nonce, msgSig, enc, testKey, testAppID)
		if called != valid {
			t.Fatalf("handler ran: %v, oracle says valid: %v (status %d %q)", called, valid, w.Code, w.Body)
		}
		if !called {
			if w.Code < 400 {
				t.Fatalf("rejected with status %d", w.Code)
			}
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("handler read %q, want %q", got, want)
		}
		if w.Code != 200 {
			t.Fatalf("status %d after the handler", w.Code)
		}
		wx := wechat{testToken, testAppID, key}
		if reply, _ := wx.open(t, w.Body.Bytes(), asJSON); reply != "reply to "+string(want) {
			t.Fatalf("reply opens to %q", reply)
		}
	})
}

// printable keeps the printable ASCII of s, so that it survives an XML or
// JSON envelope unchanged.
func printable(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b = append(b, c)
		}
	}
	return string(b)
}

// safeOracle decides a safe-mode push without package msgcrypt: the sorted
// sha1 msg_signature, AES-256-CBC with the key's first 16 bytes as IV,
// PKCS#7 padding to 32, the length field, the AppID, and a parseable push.
// It returns the plaintext of a valid push.
func safeOracle(token, ts, nonce, msgSig, enc, encodingAESKey, appID string) ([]byte, bool) {
	parts := []string{token, ts, nonce, enc}
	sort.Strings(parts)
	sum := sha1.Sum([]byte(strings.Join(parts, "")))
	if !strings.EqualFold(hex.EncodeToString(sum[:]), msgSig) {
		return nil, false
	}
	ct, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, false
	}
	aesKey, _ := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	block, _ := aes.NewCipher(aesKey)
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, aesKey[:16]).CryptBlocks(pt, ct)
	pad := int(pt[len(pt)-1])
	if pad < 1 || pad > 32 || pad > len(pt) || !bytes.Equal(pt[len(pt)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, false
	}
	pt = pt[:len(pt)-pad]
	if len(pt) < 20 {
		return nil, false
	}
	n := binary.BigEndian.Uint32(pt[16:20])
	if uint64(n) > uint64(len(pt)-20) {
		return nil, false
	}
	msg, id := pt[20:20+n], pt[20+n:]
	if string(id) != appID {
		return nil, false
	}
	if _, err := message.Parse(msg); err != nil {
		return nil, false
	}
	return msg, true
}
