package message

import (
	"encoding/json"
	"encoding/xml"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// decoded is every field a passive reply may carry, as WeChat reads it,
// in XML or in JSON.
type decoded struct {
	XMLName      xml.Name `xml:"xml" json:"-"`
	ToUserName   string
	FromUserName string
	CreateTime   int64
	MsgType      string
	Content      string
	Image        struct{ MediaId string }
	Voice        struct{ MediaId string }
	Video        struct{ MediaId, Title, Description string }
	Music        struct{ Title, Description, MusicUrl, HQMusicUrl, ThumbMediaId string }
	ArticleCount int
	Articles     []struct{ Title, Description, PicUrl, Url string } `xml:"Articles>item" json:"Articles"`
	TransInfo    struct{ KfAccount string }
}

// replyCases are one reply of each type, with text that needs escaping in
// both formats, and what WeChat reads of it.
func replyCases() []struct {
	name  string
	reply Reply
	check func(t *testing.T, r decoded)
} {
	tricky := `a "q" \ <b>&]]> 你好`
	type c = struct {
		name  string
		reply Reply
		check func(t *testing.T, r decoded)
	}
	eq := func(t *testing.T, what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %#v, want %#v", what, got, want)
		}
	}
	arts := make([]Article, MaxArticles)
	for i := range arts {
		arts[i] = Article{Title: tricky, Description: "d", PicURL: "https://p/" + string(rune('a'+i)), URL: "https://u"}
	}
	return []c{
		{"text", Text{Content: tricky}, func(t *testing.T, r decoded) {
			eq(t, "MsgType", r.MsgType, "text")
			eq(t, "Content", r.Content, tricky)
		}},
		{"image", Image{MediaID: "img1"}, func(t *testing.T, r decoded) {
			eq(t, "MsgType", r.MsgType, "image")
			eq(t, "Image.MediaId", r.Image.MediaId, "img1")
		}},
		{"voice", Voice{MediaID: "v1"}, func(t *testing.T, r decoded) {
			eq(t, "MsgType", r.MsgType, "voice")
			eq(t, "Voice.MediaId", r.Voice.MediaId, "v1")
		}},
		{"video", Video{MediaID: "vid", Title: tricky, Description: "desc"}, func(t *testing.T, r decoded) {
			eq(t, "MsgType", r.MsgType, "video")
			eq(t, "Video.MediaId", r.Video.MediaId, "vid")
			eq(t, "Video.Title", r.Video.Title, tricky)
			eq(t, "Video.Description", r.Video.Description, "desc")
		}},
		{"music", Music{Title: "t", Description: tricky, MusicURL: "http://m", HQMusicURL: "http://hq", ThumbMediaID: "th"}, func(t *testing.T, r decoded) {
			eq(t, "MsgType", r.MsgType, "music")
			eq(t, "Music.Title", r.Music.Title, "t")
			eq(t, "Music.Description", r.Music.Description, tricky)
			eq(t, "Music.MusicUrl", r.Music.MusicUrl, "http://m")
			eq(t, "Music.HQMusicUrl", r.Music.HQMusicUrl, "http://hq")
			eq(t, "Music.ThumbMediaId", r.Music.ThumbMediaId, "th")
		}},
		{"news", News{Articles: arts}, func(t *testing.T, r decoded) {
			eq(t, "MsgType", r.MsgType, "news")
			eq(t, "ArticleCount", r.ArticleCount, MaxArticles)
			eq(t, "articles", len(r.Articles), MaxArticles)
			eq(t, "item[7].PicUrl", r.Articles[7].PicUrl, "https://p/h")
			eq(t, "item[0].Title", r.Articles[0].Title, tricky)
		}},
		{"transfer", TransferCustomerService{}, func(t *testing.T, r decoded) {
			eq(t, "MsgType", r.MsgType, "transfer_customer_service")
			eq(t, "TransInfo.KfAccount", r.TransInfo.KfAccount, "")
		}},
		{"transfer to an agent", TransferCustomerService{KfAccount: "kf2001@gh_1"}, func(t *testing.T, r decoded) {
			eq(t, "MsgType", r.MsgType, "transfer_customer_service")
			eq(t, "TransInfo.KfAccount", r.TransInfo.KfAccount, "kf2001@gh_1")
		}},
	}
}

// checkReply decodes a reply body to m as WeChat would and checks its
// head: To and From swapped, CreateTime at.
func checkReply(t *testing.T, body []byte, asJSON bool, at time.Time) decoded {
	t.Helper()
	var r decoded
	err := xml.Unmarshal(body, &r)
	if asJSON {
		err = json.Unmarshal(body, &r)
	}
	if err != nil {
		t.Fatalf("reply %s does not decode: %v", body, err)
	}
	if r.ToUserName != "oUser" || r.FromUserName != "gh_acct" || r.CreateTime != at.Unix() {
		t.Errorf("reply head: To %q From %q CreateTime %d, want oUser, gh_acct, %d", r.ToUserName, r.FromUserName, r.CreateTime, at.Unix())
	}
	return r
}

func TestReplyTypes(t *testing.T) {
	at := time.Unix(1714112446, 0)
	for _, format := range []string{"xml", "json"} {
		m := &Message{ToUserName: "gh_acct", FromUserName: "oUser", MsgType: TypeText, JSON: format == "json", ReceivedAt: at}
		for _, tc := range replyCases() {
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				b, err := AppendReply([]byte("prefix"), m, tc.reply)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(string(b), "prefix") {
					t.Fatalf("AppendReply dropped what b held: %q", b)
				}
				tc.check(t, checkReply(t, b[len("prefix"):], m.JSON, at))

				rec := httptest.NewRecorder()
				if err := WriteReply(rec, m, tc.reply); err != nil {
					t.Fatal(err)
				}
				want := ContentType
				if m.JSON {
					want = JSONContentType
				}
				if ct := rec.Header().Get("Content-Type"); ct != want || rec.Code != 200 || rec.Body.String() != string(b[len("prefix"):]) {
					t.Errorf("WriteReply: %d %q %q, want 200 %q and AppendReply's body", rec.Code, ct, rec.Body, want)
				}
			})
		}
	}
}

// TestReplyExact pins the exact bytes of a text reply, in WeChat's element
// order, and that the reply's buffer is sized so it never grows.
func TestReplyExact(t *testing.T) {
	m := &Message{ToUserName: "gh_acct", FromUserName: "oUser", ReceivedAt: time.Unix(1714112446, 0)}
	b, err := AppendReply(nil, m, Text{Content: "hi"})
	want := "<xml><ToUserName><![CDATA[oUser]]></ToUserName><FromUserName><![CDATA[gh_acct]]></FromUserName>" +
		"<CreateTime>1714112446</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content></xml>"
	if err != nil || string(b) != want {
		t.Errorf("AppendReply = %s, %v\nwant %s", b, err, want)
	}
	m.JSON = true
	b, err = AppendReply(nil, m, Text{Content: "hi"})
	want = `{"ToUserName":"oUser","FromUserName":"gh_acct","CreateTime":1714112446,"MsgType":"text","Content":"hi"}`
	if err != nil || string(b) != want {
		t.Errorf("AppendReply JSON = %s, %v\nwant %s", b, err, want)
	}
	for _, tc := range replyCases() {
		for _, asJSON := range []bool{false, true} {
			m.JSON = asJSON
			size := replySize(m, tc.reply)
			b, _ := AppendReply(make([]byte, 0, size), m, tc.reply)
			if len(b) > size {
				t.Errorf("%s (JSON %v): %d bytes written, %d sized", tc.name, asJSON, len(b), size)
			}
		}
	}
}

func TestNoReply(t *testing.T) {
	m := &Message{ToUserName: "gh_acct", FromUserName: "oUser", JSON: true}
	for _, r := range []Reply{nil, NoReply} {
		b, err := AppendReply(nil, m, r)
		if err != nil || string(b) != "success" {
			t.Errorf("AppendReply(%v) = %q, %v; want success", r, b, err)
		}
		rec := httptest.NewRecorder()
		if err := WriteReply(rec, m, r); err != nil || rec.Body.String() != "success" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
			t.Errorf("WriteReply(%v) = %q %q, %v", r, rec.Body, rec.Header().Get("Content-Type"), err)
		}
	}
}

// TestRepliesRefused are replies WeChat would not take: an error, and
// nothing appended or written.
func TestRepliesRefused(t *testing.T) {
	m := &Message{ToUserName: "gh_acct", FromUserName: "oUser"}
	for _, r := range []Reply{
		News{}, News{Articles: make([]Article, MaxArticles+1)},
		Image{}, Voice{}, Video{Title: "no media"}, Music{Title: "no cover"},
	} {
		b, err := AppendReply([]byte("x"), m, r)
		if err == nil || string(b) != "x" {
			t.Errorf("AppendReply(%#v) = %q, %v; want an error and nothing appended", r, b, err)
		}
		rec := httptest.NewRecorder()
		if err := WriteReply(rec, m, r); err == nil || rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" {
			t.Errorf("WriteReply(%#v) wrote %q, %v", r, rec.Body, err)
		}
	}
}

func TestReplyTimeDefaultsToNow(t *testing.T) {
	m := &Message{ToUserName: "gh_acct", FromUserName: "oUser"}
	before := time.Now().Unix()
	b, err := AppendReply(nil, m, Text{Content: "x"})
	after := time.Now().Unix()
	var v decoded
	if err != nil || xml.Unmarshal(b, &v) != nil || v.CreateTime < before || v.CreateTime > after {
		t.Errorf("CreateTime %d outside [%d, %d] (%v)", v.CreateTime, before, after, err)
	}
}
