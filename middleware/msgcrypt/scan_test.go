package msgcrypt

import (
	"testing"
)

var envelopeSeeds = []string{
	`<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><Encrypt><![CDATA[+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQ==]]></Encrypt></xml>`,
	"<xml>\n<ToUserName><![CDATA[gh_1]]></ToUserName>\n<FromUserName><![CDATA[o]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><Encrypt>abc=</Encrypt>\n</xml>",
	`<xml><ToUserName/><Encrypt>abc</Encrypt></xml>`,
	`<xml><Encrypt>a&amp;b</Encrypt></xml>`,
	`<xml><!-- x --><Encrypt>ab</Encrypt></xml>`,
	`<xml><ScanCodeInfo><ScanType>q</ScanType></ScanCodeInfo><Encrypt>ab</Encrypt></xml>`,
	"<xml><Encrypt>a\r\nb</Encrypt></xml>",
	`<xml><Encrypt>ab</Encrypt>`,
	`<xml a="b"><Encrypt>ab</Encrypt></xml>`,
}

// FuzzEnvelope checks the envelope scanner against encoding/xml: where it
// takes a body its result must be encoding/xml's.
func FuzzEnvelope(f *testing.F) {
	for _, s := range envelopeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, wantErr := parseXMLEnvelopeStd(body)
		got, gotErr := ParseXMLEnvelope(body)
		if got != want || (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("ParseXMLEnvelope(%q) = %+v, %v; encoding/xml %+v, %v", body, got, gotErr, want, wantErr)
		}
		e, ok := scanEnvelope(body)
		if !ok {
			return // left to encoding/xml
		}
		if wantErr != nil && checkEnvelope(e) == nil {
			t.Fatalf("scanned %q, which encoding/xml refuses: %v", body, wantErr)
		}
		if wantErr == nil && e != want {
			t.Fatalf("scanned %q as %+v; encoding/xml %+v", body, e, want)
		}
	})
}

// The envelopes WeChat sends (seeds 0 to 2) are scanned, and so is an
// element the envelope does not model, nested or not, which is skipped as
// encoding/xml skips it (seed 5); the other seeds go to encoding/xml.
func TestScanEnvelopeTakesWeChatShapes(t *testing.T) {
	taken := map[int]bool{0: true, 1: true, 2: true, 5: true}
	for i, s := range envelopeSeeds {
		if _, ok := scanEnvelope([]byte(s)); ok != taken[i] {
			t.Errorf("seed %d: scanned = %v, want %v", i, ok, taken[i])
		}
	}
}

func BenchmarkParseXMLEnvelope(b *testing.B) {
	body := []byte(envelopeSeeds[0])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseXMLEnvelope(body); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReplyEnvelopeXMLOneAllocation checks that XML sizes its buffer so
// that it never grows, whatever the fields hold.
func TestReplyEnvelopeXMLOneAllocation(t *testing.T) {
	for _, r := range []ReplyEnvelope{
		{Encrypt: "ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ==", MsgSignature: "1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1", TimeStamp: 1713424427, Nonce: "415670741"},
		{Encrypt: "]]>]]>\xff", MsgSignature: "", TimeStamp: -9223372036854775808, Nonce: "你好]]>"},
		{},
	} {
		if n := testing.AllocsPerRun(10, func() { _ = r.XML() }); n != 1 {
			t.Errorf("XML of %+v: %v allocations, want 1", r, n)
		}
	}
}
