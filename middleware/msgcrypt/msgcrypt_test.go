package msgcrypt

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Official vectors, wechat-platform.md §10.1.
const (
	nToken   = "AAAAA"
	nKey     = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	nAppID   = "wxba5fad812f8e6fb9"
	nTS      = "1714112445"
	nNonce   = "415670741"
	nMsgSig  = "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"
	nRandom  = "a8eedb185eb2fecf"
	nMsg     = `{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}`
	nEncrypt = "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="

	nReplyRandom  = "707722b803182950"
	nReplyMsg     = `{"demo_resp":"good luck"}`
	nReplyEncrypt = "ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ=="
	nReplyTS      = 1713424427
	nReplySig     = "1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1"

	aToken  = "pamtest"
	aKey    = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	aAppID  = "wxb11529c136998cb6"
	aRandom = "aaaabbbbccccdddd"
	aTS     = "1409304348"
	aNonce  = "xxxxxx"
	a1Msg   = "我是中文abcd123"
	a1Enc   = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
	a1Sig   = "82c962d39941aa48552f90ef55aa323dc620cc10"
	a2Msg   = `<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>`
	a2Enc   = "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb"
)

func random16(s string) [RandomLen]byte {
	var r [RandomLen]byte
	if copy(r[:], s) != RandomLen {
		panic("random prefix must be 16 bytes")
	}
	return r
}

func mustKey(t testing.TB, s string) *Key {
	t.Helper()
	k, err := ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCrypter(t testing.TB, token, appID, key string) *Crypter {
	t.Helper()
	c, err := New(token, appID, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVectors(t *testing.T) {
	tests := []struct {
		name, key, random, msg, appID, encrypted string
	}{
		{"N push", nKey, nRandom, nMsg, nAppID, nEncrypt},
		{"N reply", nKey, nReplyRandom, nReplyMsg, nAppID, nReplyEncrypt},
		{"pamtest A1", aKey, aRandom, a1Msg, aAppID, a1Enc},
		{"pamtest A2", aKey, aRandom, a2Msg, aAppID, a2Enc},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := mustKey(t, tt.key)
			if got := k.EncryptWith(random16(tt.random), []byte(tt.msg), tt.appID); got != tt.encrypted {
				t.Errorf("EncryptWith =\n%s\nwant\n%s", got, tt.encrypted)
			}
			got, err := k.Encrypt(strings.NewReader(tt.random), []byte(tt.msg), tt.appID)
			if err != nil || got != tt.encrypted {
				t.Errorf("Encrypt = %s, %v; want the vector", got, err)
			}
			msg, appID, err := k.Decrypt(tt.encrypted)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if string(msg) != tt.msg || appID != tt.appID {
				t.Errorf("Decrypt = %q, %q; want %q, %q", msg, appID, tt.msg, tt.appID)
			}
		})
	}
}

func TestVectorNOpen(t *testing.T) {
	c := mustCrypter(t, nToken, nAppID, nKey)
	if got := Sign(nToken, nTS, nNonce, nEncrypt); got != nMsgSig {
		t.Errorf("Sign = %s, want %s", got, nMsgSig)
	}
	if got := Sign(aToken, aTS, aNonce, a1Enc); got != a1Sig {
		t.Errorf("Sign(A1) = %s, want %s", got, a1Sig)
	}
	o, err := c.Open(nMsgSig, nTS, nNonce, nEncrypt)
	if err != nil {
		t.Fatal(err)
	}
	if string(o.Msg) != nMsg || o.PreviousKey() || o.PreviousToken() {
		t.Errorf("Open = %q prevKey=%v prevToken=%v", o.Msg, o.PreviousKey(), o.PreviousToken())
	}
	// The reply vector, sealed with its random prefix.
	c.Rand = strings.NewReader(nReplyRandom)
	r, err := c.Seal(o, []byte(nReplyMsg), nReplyTS, nNonce)
	if err != nil {
		t.Fatal(err)
	}
	want := ReplyEnvelope{Encrypt: nReplyEncrypt, MsgSignature: nReplySig, TimeStamp: nReplyTS, Nonce: nNonce}
	if r != want {
		t.Errorf("Seal =\n%+v\nwant\n%+v", r, want)
	}
	wantXML := "<xml><Encrypt><![CDATA[" + nReplyEncrypt + "]]></Encrypt><MsgSignature><![CDATA[" + nReplySig +
		"]]></MsgSignature><TimeStamp>1713424427</TimeStamp><Nonce><![CDATA[415670741]]></Nonce></xml>"
	if got := string(r.XML()); got != wantXML {
		t.Errorf("XML =\n%s\nwant\n%s", got, wantXML)
	}
	wantJSON := `{"Encrypt":"` + nReplyEncrypt + `","MsgSignature":"` + nReplySig + `","TimeStamp":1713424427,"Nonce":"415670741"}`
	if got := string(r.JSON()); got != wantJSON {
		t.Errorf("JSON =\n%s\nwant\n%s", got, wantJSON)
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		name, key, wantInErr string
	}{
		{"short", nKey[:42], "must be 43 characters, got 42"},
		{"long", nKey + "A", "must be 43 characters, got 44"},
		{"empty", "", "got 0"},
		{"plus", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF+", "character 43 is not one of [a-zA-Z0-9]"},
		{"slash", "abcdefghij/lmnopqrstuvwxyz0123456789ABCDEFG", "character 11"},
		{"non-ascii", "中defghijklmnopqrstuvwxyz0123456789ABCDEFG", "character 1 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKey(tt.key)
			if !errors.Is(err, ErrKey) {
				t.Fatalf("err = %v, want ErrKey", err)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("err = %q, want it to say %q", err, tt.wantInErr)
			}
			if len(tt.key) > 8 && strings.Contains(err.Error(), tt.key[:8]) {
				t.Errorf("err %q contains the key", err)
			}
		})
	}
	k := mustKey(t, aKey)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(format, k); strings.Contains(s, "abcdef") || strings.Contains(s, "69b71d79") || !strings.Contains(s, "REDACTED") {
			t.Errorf("Sprintf(%q, key) = %q", format, s)
		}
	}
}

// reencrypt encrypts raw plaintext (already padded as the test wants) with
// k, to build hostile ciphertexts that only the key holder could make.
func reencrypt(t *testing.T, key string, plain []byte) string {
	t.Helper()
	k := mustKey(t, key)
	buf := bytes.Clone(plain)
	if len(buf)%16 != 0 {
		t.Fatalf("plaintext of %d bytes is not block aligned", len(buf))
	}
	cbcEncrypt(k, buf) // by hand, to control the padding

	return base64.StdEncoding.EncodeToString(buf)
}

func TestDecryptErrors(t *testing.T) {
	// Flipping a bit of the last block garbles it whole, padding included.
	tampered := mustDecode(t, nEncrypt)
	tampered[len(tampered)-1] ^= 1
	padTo := func(b []byte, n int, pad byte) []byte {
		for len(b) < n {
			b = append(b, pad)
		}
		return b
	}
	header := func(n uint32) []byte {
		b := []byte(aRandom)
		return append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	tests := []struct {
		name      string
		encrypted string
		want      error
	}{
		{"not base64", "%%%%", ErrBase64},
		{"empty", "", ErrBlockSize},
		{"truncated body", nEncrypt[:len(nEncrypt)-24], ErrBlockSize},
		{"truncated to a block", base64.StdEncoding.EncodeToString(mustDecode(t, nEncrypt)[:16]), ErrPadding},
		{"one byte", "QQ==", ErrBlockSize},
		{"tampered last block", base64.StdEncoding.EncodeToString(tampered), ErrPadding},
		{"pad byte zero", reencrypt(t, nKey, padTo(header(0), 32, 0)), ErrPadding},
		{"pad byte 33", reencrypt(t, nKey, padTo(header(0), 64, 33)), ErrPadding},
		{"pad bytes differ", reencrypt(t, nKey, append(padTo(header(0), 30, 7), 1, 2)), ErrPadding},
		{"shorter than header", reencrypt(t, nKey, padTo([]byte("0123456789"), 32, 22)), ErrLength},
		{"length past end", reencrypt(t, nKey, padTo(header(100), 32, 12)), ErrLength},
		{"length 2^32-1", reencrypt(t, nKey, padTo(header(0xFFFFFFFF), 32, 12)), ErrLength},
	}
	k := mustKey(t, nKey)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, appID, err := k.Decrypt(tt.encrypted)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decrypt = %q, %q, %v; want %v", msg, appID, err, tt.want)
			}
		})
	}
	// CBC has no integrity of its own: a flipped bit in the second-to-last
	// block garbles that block and flips one bit of the AppID. Decrypt
	// must not hand out the message; the AppID check catches it.
	c := mustCrypter(t, nToken, nAppID, nKey)
	tampered = mustDecode(t, nEncrypt)
	tampered[len(tampered)-20] ^= 0x01
	if msg, _, err := c.Decrypt(base64.StdEncoding.EncodeToString(tampered)); err == nil {
		t.Errorf("tampered ciphertext decrypted to %q", msg)
	}
}

// tamper flips one bit of the decoded ciphertext at byte i.
func tamper(t *testing.T, enc string, i int) string {
	b := mustDecode(t, enc)
	b[i] ^= 1
	return base64.StdEncoding.EncodeToString(b)
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenErrors(t *testing.T) {
	c := mustCrypter(t, nToken, nAppID, nKey)
	other := mustCrypter(t, nToken, "wx0000000000000000", nKey)
	wrongKey := mustCrypter(t, nToken, nAppID, aKey)
	tests := []struct {
		name                      string
		c                         *Crypter
		sig, ts, nonce, encrypted string
		want                      error
	}{
		{"wrong msg_signature", c, strings.Replace(nMsgSig, "046e", "046f", 1), nTS, nNonce, nEncrypt, ErrSignature},
		{"empty msg_signature", c, "", nTS, nNonce, nEncrypt, ErrSignature},
		{"plain signature used as msg_signature", c, "6c5c811b55cc85e0e1b54100749188c20beb3f5d", nTS, nNonce, nEncrypt, ErrSignature},
		{"other timestamp", c, nMsgSig, "1714112446", nNonce, nEncrypt, ErrSignature},
		{"tampered ciphertext", c, nMsgSig, nTS, nNonce, tamper(t, nEncrypt, 50), ErrSignature},
		{"wrong AppID", other, nMsgSig, nTS, nNonce, nEncrypt, ErrAppID},
		{"wrong key", wrongKey, nMsgSig, nTS, nNonce, nEncrypt, ErrPadding},
		{"no key", &Crypter{Token: nToken, AppID: nAppID}, nMsgSig, nTS, nNonce, nEncrypt, ErrKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := tt.c.Open(tt.sig, tt.ts, tt.nonce, tt.encrypted)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %q, %v; want %v", o.Msg, err, tt.want)
			}
			if o.Msg != nil {
				t.Errorf("Open returned a message with an error: %q", o.Msg)
			}
			if strings.Contains(err.Error(), nToken) || strings.Contains(err.Error(), nKey[:10]) {
				t.Errorf("error %q leaks a secret", err)
			}
		})
	}
	if _, err := (&Crypter{Token: nToken, Key: mustKey(t, nKey)}).Open(nMsgSig, nTS, nNonce, nEncrypt); err == nil {
		t.Error("a Crypter without AppID opened a message")
	}
	// A message for another AppID, properly signed: refused.
	enc := mustKey(t, nKey).EncryptWith(random16(nRandom), []byte("<xml/>"), "wxattacker")
	_, err := c.Open(Sign(nToken, nTS, nNonce, enc), nTS, nNonce, enc)
	if !errors.Is(err, ErrAppID) || !strings.Contains(err.Error(), `"wxattacker"`) {
		t.Errorf("foreign AppID: err = %v", err)
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := mustKey(t, aKey), mustKey(t, nKey)
	c := &Crypter{Token: "new-token", PreviousToken: "old-token", AppID: nAppID, Key: newKey, PreviousKey: oldKey}

	tests := []struct {
		name                     string
		key                      *Key
		token                    string
		wantPrevKey, wantPrevTok bool
	}{
		{"current key and token", newKey, "new-token", false, false},
		{"previous key", oldKey, "new-token", true, false},
		{"previous token", newKey, "old-token", false, true},
		{"both previous", oldKey, "old-token", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := tt.key.Encrypt(rand.Reader, []byte("<xml>hi</xml>"), nAppID)
			if err != nil {
				t.Fatal(err)
			}
			o, err := c.Open(Sign(tt.token, "1", "n", enc), "1", "n", enc)
			if err != nil {
				t.Fatal(err)
			}
			if string(o.Msg) != "<xml>hi</xml>" || o.PreviousKey() != tt.wantPrevKey || o.PreviousToken() != tt.wantPrevTok {
				t.Fatalf("Open = %q prevKey=%v prevToken=%v", o.Msg, o.PreviousKey(), o.PreviousToken())
			}
			r, err := c.Seal(o, []byte("reply"), 2, "m")
			if err != nil {
				t.Fatal(err)
			}
			// The reply uses the key and token the sender still has.
			msg, appID, err := tt.key.Decrypt(r.Encrypt)
			if err != nil || string(msg) != "reply" || appID != nAppID {
				t.Errorf("reply decrypts with the sender's key to %q, %q, %v", msg, appID, err)
			}
			if !VerifySignature(r.MsgSignature, tt.token, "2", "m", r.Encrypt) {
				t.Errorf("reply not signed with %s", tt.token)
			}
		})
	}
	// Without a previous key, a message under the old key is refused.
	c2 := &Crypter{Token: "new-token", AppID: nAppID, Key: newKey}
	enc, _ := oldKey.Encrypt(rand.Reader, []byte("x"), nAppID)
	if _, err := c2.Open(Sign("new-token", "1", "n", enc), "1", "n", enc); err == nil {
		t.Error("old key accepted with no PreviousKey set")
	}
	// A key-independent failure is not retried and reported as is.
	if _, err := c.Open(Sign("new-token", "1", "n", "QUJD"), "1", "n", "QUJD"); !errors.Is(err, ErrBlockSize) {
		t.Errorf("err = %v, want ErrBlockSize", err)
	}
}

func TestSealRandom(t *testing.T) {
	c := mustCrypter(t, nToken, nAppID, nKey)
	a, err := c.Seal(Opened{}, []byte("same"), 1, "n")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Seal(Opened{}, []byte("same"), 1, "n")
	if a.Encrypt == b.Encrypt {
		t.Error("two seals of one message gave the same ciphertext: the random prefix is not random")
	}
	c.Rand = strings.NewReader("short")
	if _, err := c.Seal(Opened{}, []byte("x"), 1, "n"); err == nil {
		t.Error("Seal succeeded with a failing random source")
	}
}

func TestParseEnvelope(t *testing.T) {
	tests := []struct {
		name, body string
		want       Envelope
		wantErr    bool
	}{
		{"safe XML", `<xml><ToUserName><![CDATA[toUser]]></ToUserName><Encrypt><![CDATA[` + a1Enc + `]]></Encrypt></xml>`,
			Envelope{"toUser", a1Enc}, false},
		{"compat XML", `<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[forged]]></Content><MsgId>1</MsgId><Encrypt><![CDATA[abc=]]></Encrypt></xml>`,
			Envelope{"gh_1", "abc="}, false},
		{"JSON", ` {"ToUserName":"gh_97417a04a28d","Encrypt":"` + nEncrypt + `"}`, Envelope{"gh_97417a04a28d", nEncrypt}, false},
		{"plaintext XML", `<xml><ToUserName><![CDATA[gh_1]]></ToUserName><MsgType><![CDATA[text]]></MsgType><Content>hi</Content></xml>`, Envelope{}, true},
		{"empty Encrypt", `<xml><Encrypt></Encrypt></xml>`, Envelope{}, true},
		{"plaintext JSON", `{"ToUserName":"gh_1","MsgType":"text"}`, Envelope{}, true},
		{"wrong root", `<notxml><Encrypt>abc</Encrypt></notxml>`, Envelope{}, true},
		{"broken XML", `<xml><Encrypt>abc</Enc`, Envelope{}, true},
		{"broken JSON", `{"Encrypt":`, Envelope{}, true},
		{"empty", ``, Envelope{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnvelope([]byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, ErrEnvelope) {
					t.Fatalf("ParseEnvelope = %+v, %v; want ErrEnvelope", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseEnvelope = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestReplyXMLEscapes(t *testing.T) {
	r := ReplyEnvelope{Encrypt: "e", MsgSignature: "s", TimeStamp: -1, Nonce: "a]]>b\x00c"}
	want := "<xml><Encrypt><![CDATA[e]]></Encrypt><MsgSignature><![CDATA[s]]></MsgSignature><TimeStamp>-1</TimeStamp><Nonce><![CDATA[a]]]]><![CDATA[>b\uFFFDc]]></Nonce></xml>"
	if got := string(r.XML()); got != want {
		t.Errorf("XML =\n%s\nwant\n%s", got, want)
	}
}
