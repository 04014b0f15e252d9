package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func testEnv(t *testing.T) *env {
	t.Helper()
	e, err := newEnv(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	return e
}

// Every implementation does every case right, batch after batch.
func TestCases(t *testing.T) {
	e := testEnv(t)
	for _, c := range cases {
		for _, im := range c.impls {
			t.Run(c.name+"/"+im.name, func(t *testing.T) {
				w := im.new(e)
				for _, n := range []int{5, 2} {
					w.prepare(n)
					for j := range n {
						w.do(j)
					}
					if err := w.check(n); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

// The harness's side of WeChat agrees with the official safe-mode vector
// (wechat-platform.md §10.1, vector N).
func TestHarnessCryptoMatchesVector(t *testing.T) {
	const (
		vnToken  = "AAAAA"
		vnKey    = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		vnAppID  = "wxba5fad812f8e6fb9"
		vnTS     = "1714112445"
		vnNonce  = "415670741"
		vnMsgSig = "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"
		vnEnc    = "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="
		vnMsg    = `{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}`
	)
	if got := sign(vnToken, vnTS, vnNonce, vnEnc); got != vnMsgSig {
		t.Errorf("msg_signature %s, want %s", got, vnMsgSig)
	}
	if got := sign(vecToken, vecTS, vecNonce); got != vecSig {
		t.Errorf("signature %s, want %s", got, vecSig)
	}
	key := aesKeyBytes(vnKey)
	msg, id, err := open(key, vnEnc)
	if err != nil || msg != vnMsg || id != vnAppID {
		t.Fatalf("open(vector N) = %q, %q, %v", msg, id, err)
	}
	var random [16]byte
	binary.BigEndian.PutUint64(random[8:], 7)
	if msg, id, err := open(key, seal(key, random, vnMsg, vnAppID)); err != nil || msg != vnMsg || id != vnAppID {
		t.Errorf("open(seal(vector N)) = %q, %q, %v", msg, id, err)
	}
}

// A wrong output fails the checks, so that the table cannot rot into
// measuring something that no longer works.
func TestChecksCatchWrongOutput(t *testing.T) {
	now := time.Now()
	key := aesKeyBytes(aesKey)
	reply := func(content string) string {
		return "<xml><ToUserName><![CDATA[" + openID + "]]></ToUserName><FromUserName><![CDATA[" + ghID + "]]></FromUserName>" +
			"<CreateTime>" + itoa(now.Unix()) + "</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[" + content + "]]></Content></xml>"
	}
	envelope := func(plain string, tamper func(enc, sig string) (string, string)) string {
		enc := seal(key, [16]byte{1}, plain, appID)
		ts, nonce := itoa(now.Unix()), "r1"
		enc, sig := tamper(enc, sign(token, ts, nonce, enc))
		return "<xml><Encrypt><![CDATA[" + enc + "]]></Encrypt><MsgSignature><![CDATA[" + sig + "]]></MsgSignature>" +
			"<TimeStamp>" + ts + "</TimeStamp><Nonce><![CDATA[" + nonce + "]]></Nonce></xml>"
	}
	same := func(enc, sig string) (string, string) { return enc, sig }
	fixed := func(body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	}

	for _, tc := range []struct {
		name string
		w    worker
	}{
		{"handshake with another echostr", newHTTPWorker(fixed("4375120948345356249"), handshakeInputs)},
		{"reply to another message", newHTTPWorker(fixed(reply("you said: hello 0")), plainInputs)},
		{"success instead of a reply", newHTTPWorker(fixed("success"), plainInputs)},
		{"safe mode reply in plaintext", newHTTPWorker(fixed(reply("you said: hello 1")), safeInputs)},
		{"safe mode reply with a wrong MsgSignature", newHTTPWorker(fixed(envelope(reply("you said: hello 1"), func(enc, sig string) (string, string) {
			return enc, sign(token, "0", "r1", enc)
		})), safeInputs)},
		{"safe mode reply for another AppID", newHTTPWorker(fixed(envelope(reply("you said: hello 1"), func(string, string) (string, string) {
			enc := seal(key, [16]byte{1}, reply("you said: hello 1"), "wx00000000000000ff")
			return enc, sign(token, itoa(now.Unix()), "r1", enc)
		})), safeInputs)},
		{"signature check that accepts anything", &sigWorker{verify: func(string) bool { return true }}},
		{"another token", &tokenWorker{want: "the-token", get: func() (string, error) { return "another-token", nil }}},
		{"JS-SDK config with a wrong signature", &jsWorker{ticket: "the-ticket", get: func() (jsConfig, error) {
			return jsConfig{AppID: appID, NonceStr: "abcdefghijklmnop", Timestamp: time.Now().Unix(), Signature: sign("x")}, nil
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.w.prepare(2)
			tc.w.do(0)
			tc.w.do(1)
			if err := tc.w.check(2); err == nil {
				t.Error("the check passed a wrong output")
			} else {
				t.Log(err)
			}
		})
	}

	// And a right one passes: the checks are not simply strict.
	t.Run("correct safe mode reply", func(t *testing.T) {
		if err := checkSafe([]byte(envelope(reply("you said: hello 1"), same)), "you said: hello 1", now); err != nil {
			t.Error(err)
		}
	})
}

// A short run prints a row for every case and implementation.
func TestShortRun(t *testing.T) {
	var out bytes.Buffer
	if err := runAll(t.Context(), &out, config{rounds: 2, benchtime: "3x"}); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	rows := 0
	for line := range strings.Lines(table) {
		if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| case ") {
			rows++
		}
	}
	want := 0
	for _, c := range cases {
		want += len(c.impls)
		if !strings.Contains(table, "| "+c.name+" | wxcentral |") {
			t.Errorf("no row for %s", c.name)
		}
	}
	if rows != want || !strings.Contains(table, "silenceper/wechat v2.") {
		t.Errorf("%d rows, want %d:\n%s", rows, want, table)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
