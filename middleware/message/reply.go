package message

import (
	"fmt"
	"strconv"
	"time"

	"github.com/wxcentral/wxcentral/util"
)

// ContentType is the Content-Type of a passive reply.
const ContentType = "text/xml; charset=utf-8"

// MaxArticles is the most articles a news reply may carry. WeChat shows a
// single one when the reply answers a user's text, image, voice, video,
// link or location message.
const MaxArticles = 8

// An Article is one item of a news (图文) reply.
type Article struct {
	Title       string
	Description string
	PicURL      string // the cover image; large 360×200, small 200×200
	URL         string // where a tap leads
}

// ReplyText returns a passive text reply to m: To and From swapped,
// CreateTime taken from now.
func (m *Message) ReplyText(now time.Time, content string) []byte {
	b := m.replyHead(now, "text")
	b = append(b, "<Content>"...)
	b = util.AppendCDATA(b, content)
	b = append(b, "</Content></xml>"...)
	return b
}

// ReplyImage returns a passive image reply to m showing the uploaded media
// mediaID.
func (m *Message) ReplyImage(now time.Time, mediaID string) []byte {
	b := m.replyHead(now, "image")
	b = append(b, "<Image><MediaId>"...)
	b = util.AppendCDATA(b, mediaID)
	b = append(b, "</MediaId></Image></xml>"...)
	return b
}

// ReplyNews returns a passive news reply to m with 1 to MaxArticles
// articles.
func (m *Message) ReplyNews(now time.Time, articles ...Article) ([]byte, error) {
	if len(articles) == 0 || len(articles) > MaxArticles {
		return nil, fmt.Errorf("message: a news reply needs 1 to %d articles, got %d", MaxArticles, len(articles))
	}
	b := m.replyHead(now, "news")
	b = append(b, "<ArticleCount>"...)
	b = strconv.AppendInt(b, int64(len(articles)), 10)
	b = append(b, "</ArticleCount><Articles>"...)
	for _, a := range articles {
		b = append(b, "<item><Title>"...)
		b = util.AppendCDATA(b, a.Title)
		b = append(b, "</Title><Description>"...)
		b = util.AppendCDATA(b, a.Description)
		b = append(b, "</Description><PicUrl>"...)
		b = util.AppendCDATA(b, a.PicURL)
		b = append(b, "</PicUrl><Url>"...)
		b = util.AppendCDATA(b, a.URL)
		b = append(b, "</Url></item>"...)
	}
	b = append(b, "</Articles></xml>"...)
	return b, nil
}

func (m *Message) replyHead(now time.Time, msgType string) []byte {
	b := make([]byte, 0, 256)
	b = append(b, "<xml><ToUserName>"...)
	b = util.AppendCDATA(b, m.FromUserName)
	b = append(b, "</ToUserName><FromUserName>"...)
	b = util.AppendCDATA(b, m.ToUserName)
	b = append(b, "</FromUserName><CreateTime>"...)
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, "</CreateTime><MsgType>"...)
	b = util.AppendCDATA(b, msgType)
	b = append(b, "</MsgType>"...)
	return b
}
