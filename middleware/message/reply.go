package message

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/wxcentral/wxcentral/util"
)

// ContentType is the Content-Type of a passive reply in XML.
const ContentType = "text/xml; charset=utf-8"

// JSONContentType is the Content-Type of a passive reply in JSON.
const JSONContentType = "application/json; charset=utf-8"

// MaxArticles is the most articles a news reply may carry. WeChat shows a
// single one when the reply answers a user's text, image, voice, video,
// link or location message.
const MaxArticles = 8

// A Reply is a passive reply to a push: Text, Image, Voice, Video, Music,
// News, TransferCustomerService or NoReply. AppendReply and WriteReply
// turn it into the body WeChat expects, in XML or, for a push that came
// as JSON, in JSON.
//
// WeChat takes a reply of the push's own format only. Official accounts
// push XML and take every reply type; Mini Programs and Mini Games, which
// may push JSON, take TransferCustomerService and NoReply alone (their
// other answers go through the customer-service message API).
type Reply interface {
	// msgType is the reply's MsgType; the methods are unexported so that
	// every Reply is one WeChat knows.
	msgType() string
	// check reports why WeChat would refuse the reply, if it would.
	check() error
	// appendBody appends the elements (or JSON members) after MsgType.
	appendBody(b []byte, json bool) []byte
	// size estimates the bytes appendBody appends.
	size() int
}

// Text is a text reply. Content may hold newlines and <a href="…">
// links; WeChat truncates it at 2048 bytes.
type Text struct {
	Content string
}

// Image is an image reply showing uploaded media.
type Image struct {
	MediaID string
}

// Voice is a voice reply playing uploaded media.
type Voice struct {
	MediaID string
}

// Video is a video reply; Title and Description are optional.
type Video struct {
	MediaID     string
	Title       string
	Description string
}

// Music is a music reply. ThumbMediaID, the cover, is required by WeChat;
// HQMusicURL is played on Wi-Fi in preference to MusicURL.
type Music struct {
	Title        string
	Description  string
	MusicURL     string
	HQMusicURL   string
	ThumbMediaID string
}

// News is a news (图文) reply of 1 to MaxArticles articles.
type News struct {
	Articles []Article
}

// An Article is one item of a news (图文) reply.
type Article struct {
	Title       string
	Description string
	PicURL      string // the cover image; large 360×200, small 200×200
	URL         string // where a tap leads
}

// TransferCustomerService hands the user's message to WeChat's customer
// service tool: to the agent KfAccount ("account@gh_…") when it is set and
// online, otherwise to any agent.
type TransferCustomerService struct {
	KfAccount string
}

// NoReply answers "success": WeChat takes the push as received, shows
// the user nothing and does not re-deliver it. It is what a Handler's nil
// Reply means.
var NoReply Reply = noReply{}

type noReply struct{}

func (noReply) msgType() string                    { return "" }
func (noReply) check() error                       { return nil }
func (noReply) appendBody(b []byte, _ bool) []byte { return b }
func (noReply) size() int                          { return 0 }
func (Text) msgType() string                       { return "text" }
func (Image) msgType() string                      { return "image" }
func (Voice) msgType() string                      { return "voice" }
func (Video) msgType() string                      { return "video" }
func (Music) msgType() string                      { return "music" }
func (News) msgType() string                       { return "news" }
func (TransferCustomerService) msgType() string    { return "transfer_customer_service" }
func (Text) check() error                          { return nil }
func (i Image) check() error                       { return needMedia("an image", i.MediaID) }
func (v Voice) check() error                       { return needMedia("a voice", v.MediaID) }
func (v Video) check() error                       { return needMedia("a video", v.MediaID) }
func (m Music) check() error                       { return needMedia("a music", m.ThumbMediaID) }
func (TransferCustomerService) check() error       { return nil }
func (t Text) size() int                           { return 32 + util.CDATALen(t.Content) }
func (i Image) size() int                          { return 48 + util.CDATALen(i.MediaID) }
func (v Voice) size() int                          { return 48 + util.CDATALen(v.MediaID) }
func (t TransferCustomerService) size() int        { return 64 + util.CDATALen(t.KfAccount) }

func needMedia(what, id string) error {
	if id == "" {
		return fmt.Errorf("message: %s reply needs a media id", what)
	}
	return nil
}

func (n News) check() error {
	if len(n.Articles) == 0 || len(n.Articles) > MaxArticles {
		return fmt.Errorf("message: a news reply needs 1 to %d articles, got %d", MaxArticles, len(n.Articles))
	}
	return nil
}

func (t Text) appendBody(b []byte, json bool) []byte {
	return member(b, json, "Content", t.Content)
}

func (i Image) appendBody(b []byte, json bool) []byte {
	b = open(b, json, "Image")
	b = first(b, json, "MediaId", i.MediaID)
	return closeTag(b, json, "Image")
}

func (v Voice) appendBody(b []byte, json bool) []byte {
	b = open(b, json, "Voice")
	b = first(b, json, "MediaId", v.MediaID)
	return closeTag(b, json, "Voice")
}

func (v Video) appendBody(b []byte, json bool) []byte {
	b = open(b, json, "Video")
	b = first(b, json, "MediaId", v.MediaID)
	b = member(b, json, "Title", v.Title)
	b = member(b, json, "Description", v.Description)
	return closeTag(b, json, "Video")
}

func (v Video) size() int {
	return 96 + util.CDATALen(v.MediaID) + util.CDATALen(v.Title) + util.CDATALen(v.Description)
}

func (m Music) appendBody(b []byte, json bool) []byte {
	b = open(b, json, "Music")
	b = first(b, json, "Title", m.Title)
	b = member(b, json, "Description", m.Description)
	b = member(b, json, "MusicUrl", m.MusicURL)
	b = member(b, json, "HQMusicUrl", m.HQMusicURL)
	b = member(b, json, "ThumbMediaId", m.ThumbMediaID)
	return closeTag(b, json, "Music")
}

func (m Music) size() int {
	return 160 + util.CDATALen(m.Title) + util.CDATALen(m.Description) + util.CDATALen(m.MusicURL) +
		util.CDATALen(m.HQMusicURL) + util.CDATALen(m.ThumbMediaID)
}

func (n News) appendBody(b []byte, json bool) []byte {
	if json {
		b = append(b, `,"ArticleCount":`...)
		b = strconv.AppendInt(b, int64(len(n.Articles)), 10)
		b = append(b, `,"Articles":[`...)
	} else {
		b = append(b, "<ArticleCount>"...)
		b = strconv.AppendInt(b, int64(len(n.Articles)), 10)
		b = append(b, "</ArticleCount><Articles>"...)
	}
	for i, a := range n.Articles {
		switch {
		case !json:
			b = append(b, "<item>"...)
		case i > 0:
			b = append(b, ",{"...)
		default:
			b = append(b, '{')
		}
		b = first(b, json, "Title", a.Title)
		b = member(b, json, "Description", a.Description)
		b = member(b, json, "PicUrl", a.PicURL)
		b = member(b, json, "Url", a.URL)
		if json {
			b = append(b, '}')
		} else {
			b = append(b, "</item>"...)
		}
	}
	if json {
		return append(b, ']')
	}
	return append(b, "</Articles>"...)
}

func (n News) size() int {
	s := 64
	for _, a := range n.Articles {
		s += 80 + util.CDATALen(a.Title) + util.CDATALen(a.Description) + util.CDATALen(a.PicURL) + util.CDATALen(a.URL)
	}
	return s
}

func (t TransferCustomerService) appendBody(b []byte, json bool) []byte {
	if t.KfAccount == "" {
		return b
	}
	b = open(b, json, "TransInfo")
	b = first(b, json, "KfAccount", t.KfAccount)
	return closeTag(b, json, "TransInfo")
}

// member appends a string member after others: <Name>v</Name> in XML,
// ,"Name":"v" in JSON.
func member(b []byte, json bool, name, v string) []byte {
	if json {
		b = append(b, ',')
	}
	return first(b, json, name, v)
}

// first appends the first member of an object open started: no comma.
func first(b []byte, json bool, name, v string) []byte {
	if json {
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
		return util.AppendJSONString(b, v)
	}
	b = append(b, '<')
	b = append(b, name...)
	b = append(b, '>')
	b = util.AppendCDATA(b, v)
	b = append(b, "</"...)
	b = append(b, name...)
	return append(b, '>')
}

// open starts a nested element or object: <Name> or ,"Name":{.
func open(b []byte, json bool, name string) []byte {
	if json {
		b = append(b, `,"`...)
		b = append(b, name...)
		return append(b, `":{`...)
	}
	b = append(b, '<')
	b = append(b, name...)
	return append(b, '>')
}

// closeTag ends what open started.
func closeTag(b []byte, json bool, name string) []byte {
	if json {
		return append(b, '}')
	}
	b = append(b, "</"...)
	b = append(b, name...)
	return append(b, '>')
}

// AppendReply appends the passive reply r to m to b: To and From swapped,
// CreateTime from m.ReceivedAt (the time now if that is zero), in JSON if
// m came as JSON and in XML otherwise. NoReply (or a nil r) appends
// "success". It fails, appending nothing, for a reply WeChat would refuse:
// a news reply of no or too many articles, a media reply without its
// media id.
func AppendReply(b []byte, m *Message, r Reply) ([]byte, error) {
	if r == nil || r == NoReply {
		return append(b, "success"...), nil
	}
	if err := r.check(); err != nil {
		return b, err
	}
	now := m.ReceivedAt
	if now.IsZero() {
		now = time.Now()
	}
	return appendReply(b, m, now, m.JSON, r), nil
}

// appendReply appends r, checked, at now, in JSON or XML. It is generic so
// that the helpers below do not box their reply into an interface, an
// allocation a text reply would otherwise cost.
func appendReply[R Reply](b []byte, m *Message, now time.Time, json bool, r R) []byte {
	if json {
		b = append(b, '{')
	} else {
		b = append(b, "<xml>"...)
	}
	b = first(b, json, "ToUserName", m.FromUserName)
	b = member(b, json, "FromUserName", m.ToUserName)
	if json {
		b = append(b, `,"CreateTime":`...)
		b = strconv.AppendInt(b, now.Unix(), 10)
	} else {
		b = append(b, "<CreateTime>"...)
		b = strconv.AppendInt(b, now.Unix(), 10)
		b = append(b, "</CreateTime>"...)
	}
	b = member(b, json, "MsgType", r.msgType())
	b = r.appendBody(b, json)
	if json {
		return append(b, '}')
	}
	return append(b, "</xml>"...)
}

// replySize is a capacity that holds the reply r to m without growing
// (in JSON, unless its text is mostly quotes and control characters).
func replySize[R Reply](m *Message, r R) int {
	// <xml>, the head's tags, a CreateTime and the longest MsgType.
	return 176 + util.CDATALen(m.FromUserName) + util.CDATALen(m.ToUserName) + r.size()
}

// WriteReply writes the passive reply r to m with its Content-Type and
// status 200: XML (ContentType), or JSON (JSONContentType) for a push
// that came as JSON. NoReply (or a nil r) writes "success" as text/plain.
// A reply AppendReply refuses is an error, and nothing is written.
func WriteReply(w http.ResponseWriter, m *Message, r Reply) error {
	if r == nil || r == NoReply {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, err := io.WriteString(w, "success")
		return err
	}
	b, err := AppendReply(make([]byte, 0, replySize(m, r)), m, r)
	if err != nil {
		return err
	}
	if m.JSON {
		w.Header().Set("Content-Type", JSONContentType)
	} else {
		w.Header().Set("Content-Type", ContentType)
	}
	_, err = w.Write(b)
	return err
}

// ReplyText returns a passive text reply to m in XML: To and From
// swapped, CreateTime taken from now.
func (m *Message) ReplyText(now time.Time, content string) []byte {
	return replyXML(m, now, Text{Content: content})
}

// ReplyImage returns a passive image reply to m in XML showing the
// uploaded media mediaID.
func (m *Message) ReplyImage(now time.Time, mediaID string) []byte {
	return replyXML(m, now, Image{MediaID: mediaID})
}

// ReplyNews returns a passive news reply to m in XML with 1 to
// MaxArticles articles.
func (m *Message) ReplyNews(now time.Time, articles ...Article) ([]byte, error) {
	n := News{Articles: articles}
	if err := n.check(); err != nil {
		return nil, err
	}
	return replyXML(m, now, n), nil
}

// replyXML appends r in XML at now without its check, as the helpers
// above always did.
func replyXML[R Reply](m *Message, now time.Time, r R) []byte {
	return appendReply(make([]byte, 0, replySize(m, r)), m, now, false, r)
}
