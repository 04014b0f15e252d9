package msgcrypt

import (
	"strconv"
	"testing"
)

func BenchmarkDecrypt(b *testing.B) {
	k := mustKey(b, nKey)
	b.ReportAllocs()
	b.SetBytes(int64(len(nEncrypt)))
	for b.Loop() {
		if _, _, err := k.Decrypt(nEncrypt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenSealXML is a whole safe-mode exchange: parse the envelope,
// verify msg_signature, decrypt, check the AppID, then encrypt, sign and
// render the reply.
func BenchmarkOpenSealXML(b *testing.B) {
	c := mustCrypter(b, nToken, nAppID, nKey)
	body := []byte(`<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><Encrypt><![CDATA[` + nEncrypt + `]]></Encrypt></xml>`)
	reply := []byte(nReplyMsg)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		env, err := ParseEnvelope(body)
		if err != nil {
			b.Fatal(err)
		}
		o, err := c.Open(nMsgSig, nTS, nNonce, env.Encrypt)
		if err != nil {
			b.Fatal(err)
		}
		r, err := c.Seal(o, reply, nReplyTS, nNonce)
		if err != nil {
			b.Fatal(err)
		}
		buf = r.AppendXML(buf[:0])
	}
}

func BenchmarkEncryptReply(b *testing.B) {
	c := mustCrypter(b, nToken, nAppID, nKey)
	reply := []byte(nReplyMsg)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		r, err := c.Seal(Opened{}, reply, nReplyTS, nNonce)
		if err != nil {
			b.Fatal(err)
		}
		buf = r.AppendXML(buf[:0])
	}
	_ = strconv.Itoa(len(buf))
}
