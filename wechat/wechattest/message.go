package wechattest

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// A Message is what WeChat pushes to a callback URL: a user's message or
// an event. Empty fields that WeChat always sends are filled in by Send.
type Message struct {
	ToUserName   string // the official account's original ID (gh_…); default DefaultOfficialAccount
	FromUserName string // the sender's OpenID, also sent as openid; default DefaultOpenID
	CreateTime   int64  // Unix seconds; default the Callback's clock
	MsgType      string // "text", "image", "event", …; default "text"

	Content string // text messages
	MsgID   int64  // messages (not events); default random

	Event    string // events: "subscribe", "CLICK", "VIEW", …
	EventKey string
}

// TextMessage returns a text message with content.
func TextMessage(content string) Message {
	return Message{MsgType: "text", Content: content}
}

// EventMessage returns an event push, e.g. EventMessage("subscribe", "").
func EventMessage(event, key string) Message {
	return Message{MsgType: "event", Event: event, EventKey: key}
}

// fill sets the fields WeChat always sends.
func (m *Message) fill(now time.Time) {
	if m.ToUserName == "" {
		m.ToUserName = DefaultOfficialAccount
	}
	if m.FromUserName == "" {
		m.FromUserName = DefaultOpenID
	}
	if m.CreateTime == 0 {
		m.CreateTime = now.Unix()
	}
	if m.MsgType == "" {
		m.MsgType = "text"
	}
	if m.MsgType != "event" && m.MsgID == 0 {
		var b [8]byte
		rand.Read(b[:])
		m.MsgID = int64(binary.BigEndian.Uint64(b[:]) >> 1)
	}
}

// XML returns m as WeChat sends it: an <xml> element, strings in CDATA.
// Only the fields that apply to the message type are written.
func (m Message) XML() []byte {
	var b strings.Builder
	b.WriteString("<xml>")
	cdata(&b, "ToUserName", m.ToUserName)
	cdata(&b, "FromUserName", m.FromUserName)
	b.WriteString("<CreateTime>" + strconv.FormatInt(m.CreateTime, 10) + "</CreateTime>")
	cdata(&b, "MsgType", m.MsgType)
	if m.MsgType == "event" {
		cdata(&b, "Event", m.Event)
		if m.EventKey != "" {
			cdata(&b, "EventKey", m.EventKey)
		}
	} else {
		if m.MsgType == "text" {
			cdata(&b, "Content", m.Content)
		}
		b.WriteString("<MsgId>" + strconv.FormatInt(m.MsgID, 10) + "</MsgId>")
	}
	b.WriteString("</xml>")
	return []byte(b.String())
}

// JSON returns m as WeChat pushes it to an account whose data format is
// JSON (a Mini Program or Mini Game may choose it): the same fields as XML,
// as one object, e.g. {"ToUserName":"gh_…","FromUserName":"o…",
// "CreateTime":1482048670,"MsgType":"text","Content":"hi","MsgId":1234}.
func (m Message) JSON() []byte {
	var v struct {
		ToUserName   string
		FromUserName string
		CreateTime   int64
		MsgType      string
		Content      *string `json:",omitempty"`
		MsgID        int64   `json:"MsgId,omitempty"`
		Event        string  `json:",omitempty"`
		EventKey     string  `json:",omitempty"`
	}
	v.ToUserName, v.FromUserName, v.CreateTime, v.MsgType = m.ToUserName, m.FromUserName, m.CreateTime, m.MsgType
	if m.MsgType == "event" {
		v.Event, v.EventKey = m.Event, m.EventKey
	} else {
		if m.MsgType == "text" {
			v.Content = &m.Content
		}
		v.MsgID = m.MsgID
	}
	b, _ := json.Marshal(v) // strings and numbers always marshal
	return b
}

// cdata writes <name><![CDATA[s]]></name>, splitting any "]]>" in s.
func cdata(b *strings.Builder, name, s string) {
	b.WriteString("<" + name + "><![CDATA[")
	b.WriteString(strings.ReplaceAll(s, "]]>", "]]]]><![CDATA[>"))
	b.WriteString("]]></" + name + ">")
}
