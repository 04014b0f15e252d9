package message

import (
	"context"
	"encoding/xml"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const head = `<ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1714112445</CreateTime>`

func TestParseXML(t *testing.T) {
	common := Message{ToUserName: "gh_1", FromUserName: "oUser", CreateTime: 1714112445}
	with := func(f func(m *Message)) Message {
		m := common
		f(&m)
		return m
	}
	tests := []struct {
		name  string
		body  string
		want  Message
		known bool
	}{
		{"official subscribe example",
			`<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>`,
			Message{ToUserName: "toUser", FromUserName: "FromUser", CreateTime: 123456789, MsgType: "event", Event: "subscribe"}, true},
		{"text", `<xml>` + head + `<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[this is a test]]></Content><MsgId>1234567890123456</MsgId><MsgDataId>9</MsgDataId><Idx>2</Idx></xml>`,
			with(func(m *Message) {
				m.MsgType, m.Content, m.MsgID, m.MsgDataID, m.Idx = "text", "this is a test", 1234567890123456, 9, 2
			}), true},
		{"image", `<xml>` + head + `<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://p/1.jpg]]></PicUrl><MediaId><![CDATA[media_id]]></MediaId><MsgId>1</MsgId></xml>`,
			with(func(m *Message) { m.MsgType, m.PicURL, m.MediaID, m.MsgID = "image", "http://p/1.jpg", "media_id", 1 }), true},
		{"voice with recognition", `<xml>` + head + `<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[腾讯微信团队]]></Recognition><MsgId>2</MsgId></xml>`,
			with(func(m *Message) {
				m.MsgType, m.MediaID, m.Format, m.Recognition, m.MsgID = "voice", "m", "amr", "腾讯微信团队", 2
			}), true},
		{"video", `<xml>` + head + `<MsgType><![CDATA[video]]></MsgType><MediaId><![CDATA[m]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId><MsgId>3</MsgId></xml>`,
			with(func(m *Message) { m.MsgType, m.MediaID, m.ThumbMediaID, m.MsgID = "video", "m", "t", 3 }), true},
		{"shortvideo", `<xml>` + head + `<MsgType><![CDATA[shortvideo]]></MsgType><MediaId><![CDATA[m]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId><MsgId>4</MsgId></xml>`,
			with(func(m *Message) { m.MsgType, m.MediaID, m.ThumbMediaID, m.MsgID = "shortvideo", "m", "t", 4 }), true},
		{"location", `<xml>` + head + `<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[位置信息]]></Label><MsgId>5</MsgId></xml>`,
			with(func(m *Message) {
				m.MsgType, m.LocationX, m.LocationY, m.Scale, m.Label, m.MsgID = "location", 23.134521, 113.358803, 20, "位置信息", 5
			}), true},
		{"link", `<xml>` + head + `<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[t]]></Title><Description><![CDATA[d]]></Description><Url><![CDATA[http://u]]></Url><MsgId>6</MsgId></xml>`,
			with(func(m *Message) { m.MsgType, m.Title, m.Description, m.URL, m.MsgID = "link", "t", "d", "http://u", 6 }), true},
		{"subscribe by QR", `<xml>` + head + `<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket></xml>`,
			with(func(m *Message) {
				m.MsgType, m.Event, m.EventKey, m.Ticket = "event", "subscribe", "qrscene_123123", "TICKET"
			}), true},
		{"unsubscribe", `<xml>` + head + `<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[unsubscribe]]></Event></xml>`,
			with(func(m *Message) { m.MsgType, m.Event = "event", "unsubscribe" }), true},
		{"SCAN", `<xml>` + head + `<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[123123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket></xml>`,
			with(func(m *Message) { m.MsgType, m.Event, m.EventKey, m.Ticket = "event", "SCAN", "123123", "TICKET" }), true},
		{"LOCATION", `<xml>` + head + `<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event><Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision></xml>`,
			with(func(m *Message) {
				m.MsgType, m.Event, m.Latitude, m.Longitude, m.Precision = "event", "LOCATION", 23.137466, 113.352425, 119.38504
			}), true},
		{"CLICK", `<xml>` + head + `<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[V1001_TODAY_MUSIC]]></EventKey></xml>`,
			with(func(m *Message) { m.MsgType, m.Event, m.EventKey = "event", "CLICK", "V1001_TODAY_MUSIC" }), true},
		{"VIEW", `<xml>` + head + `<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[VIEW]]></Event><EventKey><![CDATA[www.qq.com]]></EventKey></xml>`,
			with(func(m *Message) { m.MsgType, m.Event, m.EventKey = "event", "VIEW", "www.qq.com" }), true},
		{"TEMPLATESENDJOBFINISH", `<xml>` + head + `<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><Status><![CDATA[success]]></Status></xml>`,
			with(func(m *Message) { m.MsgType, m.Event, m.Status = "event", "TEMPLATESENDJOBFINISH", "success" }), true},
		{"unknown event", `<xml>` + head + `<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[MASSSENDJOBFINISH]]></Event><Status><![CDATA[send success]]></Status><TotalCount>100</TotalCount></xml>`,
			with(func(m *Message) { m.MsgType, m.Event, m.Status = "event", "MASSSENDJOBFINISH", "send success" }), false},
		{"unknown type", `<xml>` + head + `<MsgType><![CDATA[miniprogrampage]]></MsgType><AppId><![CDATA[wx1]]></AppId><MsgId>7</MsgId></xml>`,
			with(func(m *Message) { m.MsgType, m.MsgID = "miniprogrampage", 7 }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Raw) != tt.body {
				t.Errorf("Raw = %q, want the body", m.Raw)
			}
			got := *m
			got.Raw = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse =\n%+v\nwant\n%+v", got, tt.want)
			}
			if m.Known() != tt.known {
				t.Errorf("Known = %v, want %v", m.Known(), tt.known)
			}
		})
	}
}

func TestParseJSON(t *testing.T) {
	// The decrypted push of the official vector N.
	body := `{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}`
	m, err := Parse([]byte(" \n" + body))
	if err != nil {
		t.Fatal(err)
	}
	want := Message{ToUserName: "gh_97417a04a28d", FromUserName: "o9AgO5Kd5ggOC-bXrbNODIiE3bGY", CreateTime: 1714112445, MsgType: "event", Event: "debug_demo", DebugStr: "hello world", JSON: true}
	got := *m
	got.Raw = nil
	// debug_demo is modeled (DebugStr) since the router gave it a constant.
	if !reflect.DeepEqual(got, want) || !m.Known() || !strings.Contains(string(m.Raw), `"debug_str":"hello world"`) {
		t.Errorf("Parse = %+v (raw %q)", got, m.Raw)
	}
	text, err := Parse([]byte(`{"ToUserName":"gh_1","FromUserName":"o","CreateTime":1,"MsgType":"text","Content":"hi","MsgId":23}`))
	if err != nil || text.Content != "hi" || text.MsgID != 23 || !text.Known() {
		t.Errorf("text JSON = %+v, %v", text, err)
	}
}

func TestParseErrors(t *testing.T) {
	for name, body := range map[string]string{
		"empty":               ``,
		"not xml":             `hello`,
		"wrong root":          `<root><MsgType>text</MsgType></root>`,
		"truncated":           `<xml>` + head + `<MsgType><![CDATA[te`,
		"no MsgType":          `<xml>` + head + `</xml>`,
		"bad CreateTime":      `<xml><CreateTime>yesterday</CreateTime><MsgType>text</MsgType></xml>`,
		"MsgId overflow":      `<xml><MsgType>text</MsgType><MsgId>99999999999999999999999</MsgId></xml>`,
		"bad JSON":            `{"MsgType":`,
		"JSON wrong kind":     `{"MsgType":"text","CreateTime":"x"}`,
		"JSON without type":   `{"ToUserName":"gh"}`,
		"entity bomb attempt": `<!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><MsgType>&a;</MsgType></xml>`,
	} {
		t.Run(name, func(t *testing.T) {
			m, err := Parse([]byte(body))
			if !errors.Is(err, ErrMalformed) || m != nil {
				t.Errorf("Parse = %+v, %v; want ErrMalformed", m, err)
			}
		})
	}
}

func TestDedupeKeyAndScene(t *testing.T) {
	tests := []struct {
		name      string
		m         Message
		wantKey   string
		wantScene string
	}{
		{"message", Message{ToUserName: "gh_1", FromUserName: "o", CreateTime: 5, MsgType: "text", MsgID: 1234567890123456}, "gh_1|msg|1234567890123456", ""},
		{"event", Message{ToUserName: "gh_1", FromUserName: "o", CreateTime: 5, MsgType: "event", Event: "CLICK", EventKey: "k"}, "gh_1|event|CLICK|o|5", ""},
		{"subscribe by QR", Message{ToUserName: "gh_1", FromUserName: "o", CreateTime: 5, MsgType: "event", Event: "subscribe", EventKey: "qrscene_42"}, "gh_1|event|subscribe|o|5", "42"},
		{"plain subscribe", Message{ToUserName: "gh_1", FromUserName: "o", CreateTime: 5, MsgType: "event", Event: "subscribe"}, "gh_1|event|subscribe|o|5", ""},
		{"SCAN", Message{ToUserName: "gh_1", FromUserName: "o", CreateTime: 6, MsgType: "event", Event: "SCAN", EventKey: "42"}, "gh_1|event|SCAN|o|6", "42"},
		{"text mentioning qrscene", Message{MsgType: "text", EventKey: "qrscene_1", MsgID: 1}, "|msg|1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.DedupeKey(); got != tt.wantKey {
				t.Errorf("DedupeKey = %q, want %q", got, tt.wantKey)
			}
			if got := tt.m.Scene(); got != tt.wantScene {
				t.Errorf("Scene = %q, want %q", got, tt.wantScene)
			}
		})
	}
	// A re-delivery has the same key; another user's event in the same second does not.
	a := Message{ToUserName: "gh_1", FromUserName: "o1", CreateTime: 5, MsgType: "event", Event: "CLICK"}
	b := a
	b.FromUserName = "o2"
	if a.DedupeKey() == b.DedupeKey() {
		t.Error("two users' events share a dedupe key")
	}
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	if m, ok := FromContext(ctx); ok || m != nil {
		t.Errorf("FromContext(empty) = %v, %v", m, ok)
	}
	if _, ok := FromContext(NewContext(ctx, nil)); ok {
		t.Error("FromContext reports a nil message as present")
	}
	m := &Message{MsgType: TypeText}
	if got, ok := FromContext(NewContext(ctx, m)); !ok || got != m {
		t.Errorf("FromContext = %v, %v; want the message", got, ok)
	}
}

func TestReplies(t *testing.T) {
	m := &Message{ToUserName: "gh_1", FromUserName: "oUser", CreateTime: 1, MsgType: TypeText, Content: "hi", MsgID: 9}
	now := time.Unix(1714112450, 0)

	got := string(m.ReplyText(now, "你好 ]]> <b>"))
	want := `<xml><ToUserName><![CDATA[oUser]]></ToUserName><FromUserName><![CDATA[gh_1]]></FromUserName><CreateTime>1714112450</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好 ]]]]><![CDATA[> <b>]]></Content></xml>`
	if got != want {
		t.Errorf("ReplyText =\n%s\nwant\n%s", got, want)
	}
	// The reply parses back, with the content intact.
	back, err := Parse([]byte(got))
	if err != nil || back.Content != "你好 ]]> <b>" || back.ToUserName != "oUser" || back.FromUserName != "gh_1" || back.CreateTime != 1714112450 {
		t.Errorf("reply parses back to %+v, %v", back, err)
	}

	got = string(m.ReplyImage(now, "media\x00id"))
	want = `<xml><ToUserName><![CDATA[oUser]]></ToUserName><FromUserName><![CDATA[gh_1]]></FromUserName><CreateTime>1714112450</CreateTime><MsgType><![CDATA[image]]></MsgType><Image><MediaId><![CDATA[media` + "\uFFFD" + `id]]></MediaId></Image></xml>`
	if got != want {
		t.Errorf("ReplyImage =\n%s\nwant\n%s", got, want)
	}

	news, err := m.ReplyNews(now, Article{"t1", "d1", "http://p/1", "http://u/1"}, Article{Title: "t2"})
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		ToUserName   string
		MsgType      string
		ArticleCount int
		Items        []struct {
			Title, Description, PicUrl, Url string
		} `xml:"Articles>item"`
	}
	if err := xml.Unmarshal(news, &parsed); err != nil {
		t.Fatalf("news reply is not XML: %v\n%s", err, news)
	}
	if parsed.ToUserName != "oUser" || parsed.MsgType != "news" || parsed.ArticleCount != 2 || len(parsed.Items) != 2 ||
		parsed.Items[0].Title != "t1" || parsed.Items[0].Description != "d1" || parsed.Items[0].PicUrl != "http://p/1" ||
		parsed.Items[0].Url != "http://u/1" || parsed.Items[1].Title != "t2" {
		t.Errorf("news reply = %+v\n%s", parsed, news)
	}
	for _, n := range []int{0, MaxArticles + 1} {
		if _, err := m.ReplyNews(now, make([]Article, n)...); err == nil {
			t.Errorf("ReplyNews with %d articles succeeded", n)
		}
	}
}
