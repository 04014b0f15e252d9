package message

import (
	"encoding/xml"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// seeds are pushes of every shape WeChat sends, and near misses that must
// take the encoding/xml path.
var seeds = []string{
	`<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[o9AgO5Kd5ggOC-bXrbNODIiE3bGY]]></FromUserName><CreateTime>1714036504</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>1234567890123456</MsgId></xml>`,
	"<xml>\n <ToUserName><![CDATA[toUser]]></ToUserName>\n <FromUserName><![CDATA[FromUser]]></FromUserName>\n <CreateTime>123456789</CreateTime>\n <MsgType><![CDATA[event]]></MsgType>\n <Event><![CDATA[subscribe]]></Event>\n <EventKey><![CDATA[qrscene_123123]]></EventKey>\n <Ticket><![CDATA[TICKET]]></Ticket>\n</xml>",
	`<xml><ToUserName><![CDATA[gh_e136c6e50636]]></ToUserName><FromUserName><![CDATA[oMgHVjngRipVsoxg6TuX3vz6glDg]]></FromUserName><CreateTime>1408090502</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[scancode_push]]></Event><EventKey><![CDATA[6]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo></xml>`,
	`<xml><ToUserName><![CDATA[gh_e136c6e50636]]></ToUserName><FromUserName><![CDATA[oMgHVjngRipVsoxg6TuX3vz6glDg]]></FromUserName><CreateTime>1408090816</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[pic_weixin]]></Event><EventKey><![CDATA[6]]></EventKey><SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum><![CDATA[5a75aaca956d97be686719218f275c6b]]></PicMd5Sum></item><item><PicMd5Sum><![CDATA[7b5a6a4f2b8b6d4a8c4f5e2d1a3b4c5d]]></PicMd5Sum></item></PicList></SendPicsInfo></xml>`,
	`<xml><ToUserName><![CDATA[gh_e136c6e50636]]></ToUserName><FromUserName><![CDATA[oMgHVjngRipVsoxg6TuX3vz6glDg]]></FromUserName><CreateTime>1408091189</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[location_select]]></Event><EventKey><![CDATA[6]]></EventKey><SendLocationInfo><Location_X><![CDATA[23]]></Location_X><Location_Y><![CDATA[113]]></Location_Y><Scale><![CDATA[15]]></Scale><Label><![CDATA[ 广州市海珠区客村艺苑路 106号]]></Label><Poiname><![CDATA[]]></Poiname></SendLocationInfo></xml>`,
	`<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event><Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision></xml>`,
	`<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName><FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]></FromUserName><CreateTime>1395658920</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID><Status><![CDATA[success]]></Status></xml>`,
	`<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[view_miniprogram]]></Event><EventKey><![CDATA[pages/index/index]]></EventKey><MenuId>MENUID</MenuId></xml>`,
	`<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[abc+/=]]></Encrypt></xml>`,
	`<xml><MsgType>text</MsgType><Content>a &amp; b</Content></xml>`,
	`<?xml version="1.0"?><xml><MsgType>text</MsgType></xml>`,
	`<xml><!-- c --><MsgType>text</MsgType></xml>`,
	`<xml a="1"><MsgType>text</MsgType></xml>`,
	"<xml><MsgType>text</MsgType><Content>a\r\nb</Content></xml>",
	`<xml><MsgType>text</MsgType><CreateTime> 12 </CreateTime><Foo><Bar>x</Bar></Foo><Idx/></xml>`,
	`<xml><MsgType>text</MsgType><CreateTime>x</CreateTime></xml>`,
	`<xml><MsgType>text</MsgType><Content>ab<![CDATA[cd]]></Content></xml>`,
	`<xml><MsgType>text</MsgType></xm>`,
	`<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[]]]]><![CDATA[>]]></Content></xml>`,
	`<x><MsgType>text</MsgType></x>`,
	`<xml><Content>no type</Content></xml>`,
	`{"MsgType":"event","Event":"SCAN","EventKey":"1"}`,
}

// FuzzParse checks the flat scanner against encoding/xml: where it takes a
// body it must give encoding/xml's result; otherwise ParseXML falls back.
func FuzzParse(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if m, err := Parse(body); err == nil {
			// Whatever parsed can be answered with well-formed XML.
			var v struct{ Content string }
			if err := xml.Unmarshal(m.ReplyText(time.Unix(0, 0), m.Content), &v); err != nil {
				t.Fatalf("reply to %q is not XML: %v", body, err)
			}
			_ = m.DedupeKey()
		}
		want, wantErr := parseXMLStd(body)
		got, gotErr := ParseXML(body)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("ParseXML(%q) error %v, encoding/xml %v", body, gotErr, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseXML(%q) =\n%+v\nencoding/xml:\n%+v", body, got, want)
		}
		m, ok := parseFlat(body)
		if !ok {
			return // the fallback was taken
		}
		if wantErr != nil {
			if m.MsgType != "" {
				t.Fatalf("flat scan of %q took a body encoding/xml refuses (%v)", body, wantErr)
			}
			return
		}
		m.Raw = body
		if !reflect.DeepEqual(m, want) {
			t.Fatalf("flat scan of %q =\n%+v\nencoding/xml:\n%+v", body, m, want)
		}
	})
}

// TestParseFlatTakesWeChatShapes checks that the shapes WeChat sends are
// scanned, not left to encoding/xml, and the near misses are not.
func TestParseFlatTakesWeChatShapes(t *testing.T) {
	for i, s := range seeds {
		_, ok := parseFlat([]byte(s))
		if want := i < 9 || i == 14 || i == 20; ok != want {
			t.Errorf("seed %d: flat scan taken = %v, want %v: %s", i, ok, want, s)
		}
	}
	m, err := ParseXML([]byte(seeds[3]))
	if err != nil {
		t.Fatal(err)
	}
	if m.SendPicsInfo.Count != 2 || len(m.SendPicsInfo.PicList) != 2 || m.SendPicsInfo.PicList[1].PicMd5Sum != "7b5a6a4f2b8b6d4a8c4f5e2d1a3b4c5d" {
		t.Errorf("SendPicsInfo = %+v", m.SendPicsInfo)
	}
	m, _ = ParseXML([]byte(seeds[4]))
	if l := m.SendLocationInfo; l.LocationX != 23 || l.LocationY != 113 || l.Scale != 15 || l.Label != " 广州市海珠区客村艺苑路 106号" {
		t.Errorf("SendLocationInfo = %+v", l)
	}
	m, _ = ParseXML([]byte(seeds[2]))
	if c := m.ScanCodeInfo; c.ScanType != "qrcode" || c.ScanResult != "1" {
		t.Errorf("ScanCodeInfo = %+v", c)
	}
	m, _ = ParseXML([]byte(seeds[7]))
	if m.MenuID != "MENUID" {
		t.Errorf("MenuID = %q", m.MenuID)
	}
}

func BenchmarkParse(b *testing.B) {
	body := []byte(seeds[0])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseDigits checks the numbers' fast path against strconv.ParseInt,
// which every other number goes to: where it parses, it agrees, and it
// leaves signs, spaces and over-long numbers alone.
func TestParseDigits(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"0", true},
		{"1714036504", true},
		{"1234567890123456", true},
		{"000000000000000042", true},
		{"999999999999999999", true},
		{"9223372036854775807", false}, // 19 digits: strconv decides
		{"+1", false},
		{"-1", false},
		{" 1", false},
		{"1 ", false},
		{"1_000", false},
		{"0x10", false},
		{"١", false}, // an Arabic-Indic digit
	} {
		n, ok := parseDigits(tt.in)
		if ok != tt.ok {
			t.Errorf("parseDigits(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			continue
		}
		if want, err := strconv.ParseInt(strings.TrimSpace(tt.in), 10, 64); ok && (err != nil || n != want) {
			t.Errorf("parseDigits(%q) = %d; strconv: %d, %v", tt.in, n, want, err)
		}
	}
}
