package msgcrypt_test

import (
	"fmt"
	"log"

	"github.com/wxcentral/wxcentral/middleware/msgcrypt"
)

// A safe-mode push is opened with the query's msg_signature, timestamp and
// nonce and the body's Encrypt field; the reply is sealed with the key and
// token that opened it.
func ExampleCrypter() {
	c, err := msgcrypt.New("AAAAA", "wxba5fad812f8e6fb9", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if err != nil {
		log.Fatal(err)
	}
	body := []byte(`<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><Encrypt><![CDATA[+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04=]]></Encrypt></xml>`)
	env, err := msgcrypt.ParseEnvelope(body)
	if err != nil {
		log.Fatal(err)
	}
	// From the query: msg_signature, timestamp, nonce.
	o, err := c.Open("046e02f8204d34f8ba5fa3b1db94908f3df2e9b3", "1714112445", "415670741", env.Encrypt)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(o.Msg))

	reply, err := c.Seal(o, []byte(`{"demo_resp":"good luck"}`), 1713424427, "415670741")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(msgcrypt.VerifySignature(reply.MsgSignature, "AAAAA", "1713424427", "415670741", reply.Encrypt))
	// Output:
	// {"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}
	// true
}

// Deterministic encryption reproduces the official vectors.
func ExampleKey_EncryptWith() {
	k, err := msgcrypt.ParseKey("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
	if err != nil {
		log.Fatal(err)
	}
	var random [16]byte
	copy(random[:], "aaaabbbbccccdddd")
	fmt.Println(k.EncryptWith(random, []byte("我是中文abcd123"), "wxb11529c136998cb6"))
	// Output: jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==
}
