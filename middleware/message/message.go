// Package message parses the messages and events WeChat pushes to an
// account's callback URL, routes them to handlers, and builds the passive
// replies.
//
// A push is parsed once, by the callback middleware, into a *Message. A
// Router behind the middleware dispatches it by MsgType, and for events by
// Event, to a Handler that returns a Reply (Text, Image, Voice, Video,
// Music, News, TransferCustomerService or NoReply):
//
//	var rt message.Router
//	rt.HandleFunc(message.TypeText, func(ctx context.Context, m *message.Message) (message.Reply, error) {
//		return message.Text{Content: "you said: " + m.Content}, nil
//	})
//	http.Handle("/wechat", middleware.New(token, &rt))
//
// The router writes the reply with To and From swapped and CreateTime from
// the time the middleware accepted the push (Message.ReceivedAt), in XML,
// or in JSON for a push that came as JSON; the middleware encrypts it in
// safe mode. A handler of one's own takes the message with FromContext and
// writes a reply with WriteReply.
//
// Message is one flat struct, as WeChat's own documentation describes the
// pushes: the fields of the types it does not carry stay zero. A message of
// a type this package does not model still parses; its body is in Raw.
package message

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wxcentral/wxcentral/middleware/internal/pushctx"
)

// Message types (MsgType).
const (
	TypeText       = "text"
	TypeImage      = "image"
	TypeVoice      = "voice"
	TypeVideo      = "video"
	TypeShortVideo = "shortvideo"
	TypeLocation   = "location"
	TypeLink       = "link"
	TypeEvent      = "event"
)

// Events (Event, when MsgType is TypeEvent). WeChat spells them with this
// case exactly. EventTemplateSendDone reports a template message's fate
// in Status; EventUserEnterSession is a user opening a Mini Program's
// customer-service chat.
const (
	EventSubscribe   = "subscribe"   // followed; via a QR code EventKey is "qrscene_<scene>"
	EventUnsubscribe = "unsubscribe" // unfollowed
	EventScan        = "SCAN"        // a follower scanned a parametric QR code; EventKey is the scene
	EventLocation    = "LOCATION"    // location report: Latitude, Longitude, Precision
	EventClick       = "CLICK"       // menu click; EventKey is the menu key
	EventView        = "VIEW"        // menu link; EventKey is the URL; MenuID

	// Menu events of the scan, photo and location buttons (EventKey is
	// the button's key).
	EventScancodePush      = "scancode_push"      // scanned, result shown by WeChat: ScanCodeInfo
	EventScancodeWaitMsg   = "scancode_waitmsg"   // scanned, the account answers: ScanCodeInfo
	EventPicSysPhoto       = "pic_sysphoto"       // camera: SendPicsInfo
	EventPicPhotoOrAlbum   = "pic_photo_or_album" // camera or album: SendPicsInfo
	EventPicWeixin         = "pic_weixin"         // WeChat album: SendPicsInfo
	EventLocationSelect    = "location_select"    // place picker: SendLocationInfo
	EventViewMiniprogram   = "view_miniprogram"   // menu link to a Mini Program; EventKey is its page path; MenuID
	EventTemplateSendDone  = "TEMPLATESENDJOBFINISH"
	EventMassSendDone      = "MASSSENDJOBFINISH" // a mass send ended; its counts are in Raw
	EventDebugDemo         = "debug_demo"        // the URL check of a Mini Program's push settings: DebugStr
	EventUserEnterSession  = "user_enter_tempsession"
	EventSubscribeMsgPopup = "subscribe_msg_popup_event"  // subscription message prompt answered; details in Raw
	EventSubscribeMsgSent  = "subscribe_msg_sent_event"   // subscription message delivered; details in Raw
	EventSubscribeMsgEdit  = "subscribe_msg_change_event" // subscription settings changed; details in Raw
)

// ErrMalformed is wrapped by the errors Parse returns.
var ErrMalformed = errors.New("message: malformed push")

// A Message is one push from WeChat: a user's message or an event.
type Message struct {
	// Common to every push.
	ToUserName   string `xml:"ToUserName" json:"ToUserName"`     // the account's original id, gh_…
	FromUserName string `xml:"FromUserName" json:"FromUserName"` // the sender's OpenID
	CreateTime   int64  `xml:"CreateTime" json:"CreateTime"`     // Unix seconds
	MsgType      string `xml:"MsgType" json:"MsgType"`           // one of the Type constants, or another

	// MsgID identifies a user's message (not an event); 0 when absent.
	MsgID int64 `xml:"MsgId" json:"MsgId"`
	// MsgDataID and Idx are set when the message was sent from an article.
	MsgDataID int64 `xml:"MsgDataId" json:"MsgDataId"`
	Idx       int   `xml:"Idx" json:"Idx"`

	Content      string  `xml:"Content" json:"Content"`           // text
	PicURL       string  `xml:"PicUrl" json:"PicUrl"`             // image
	MediaID      string  `xml:"MediaId" json:"MediaId"`           // image, voice, video, shortvideo
	Format       string  `xml:"Format" json:"Format"`             // voice: amr, speex…
	Recognition  string  `xml:"Recognition" json:"Recognition"`   // voice, when speech recognition is on
	ThumbMediaID string  `xml:"ThumbMediaId" json:"ThumbMediaId"` // video, shortvideo
	LocationX    float64 `xml:"Location_X" json:"Location_X"`     // location: latitude
	LocationY    float64 `xml:"Location_Y" json:"Location_Y"`     // location: longitude
	Scale        int     `xml:"Scale" json:"Scale"`               // location: map zoom
	Label        string  `xml:"Label" json:"Label"`               // location: place name
	Title        string  `xml:"Title" json:"Title"`               // link
	Description  string  `xml:"Description" json:"Description"`   // link
	URL          string  `xml:"Url" json:"Url"`                   // link

	Event     string  `xml:"Event" json:"Event"`         // events: one of the Event constants, or another
	EventKey  string  `xml:"EventKey" json:"EventKey"`   // subscribe (QR), SCAN, CLICK, VIEW
	Ticket    string  `xml:"Ticket" json:"Ticket"`       // subscribe (QR), SCAN: the QR code's ticket
	Latitude  float64 `xml:"Latitude" json:"Latitude"`   // LOCATION
	Longitude float64 `xml:"Longitude" json:"Longitude"` // LOCATION
	Precision float64 `xml:"Precision" json:"Precision"` // LOCATION
	MenuID    string  `xml:"MenuId" json:"MenuId"`       // VIEW, view_miniprogram: the menu's id
	Status    string  `xml:"Status" json:"Status"`       // TEMPLATESENDJOBFINISH: success, failed:user block…
	DebugStr  string  `xml:"debug_str" json:"debug_str"` // debug_demo (the URL check of a Mini Program)

	// The menu events scancode_push and scancode_waitmsg.
	ScanCodeInfo ScanCodeInfo `xml:"ScanCodeInfo" json:"ScanCodeInfo"`
	// The menu events pic_sysphoto, pic_photo_or_album and pic_weixin.
	SendPicsInfo SendPicsInfo `xml:"SendPicsInfo" json:"SendPicsInfo"`
	// The menu event location_select.
	SendLocationInfo SendLocationInfo `xml:"SendLocationInfo" json:"SendLocationInfo"`

	// Raw is the body as parsed (after decryption in safe mode), for the
	// fields and types this struct does not model. It shares memory with
	// the slice given to Parse.
	Raw []byte `xml:"-" json:"-"`
	// JSON reports that the push came as JSON (a Mini Program's or Mini
	// Game's push, when its data format is JSON); replies are then JSON.
	JSON bool `xml:"-" json:"-"`
	// ReceivedAt is when the callback middleware accepted the push, by
	// its clock (see middleware.WithClock); replies take their CreateTime
	// from it. Zero when the message was parsed some other way.
	ReceivedAt time.Time `xml:"-" json:"-"`
}

// ScanCodeInfo is what a scancode_push or scancode_waitmsg event scanned.
type ScanCodeInfo struct {
	ScanType   string `xml:"ScanType" json:"ScanType"`     // qrcode, barcode…
	ScanResult string `xml:"ScanResult" json:"ScanResult"` // the decoded text
}

// SendPicsInfo lists the pictures of a pic_* menu event.
type SendPicsInfo struct {
	Count   int       `xml:"Count" json:"Count"`
	PicList []PicItem `xml:"PicList>item" json:"PicList"`
}

// A PicItem is one picture of SendPicsInfo.
type PicItem struct {
	PicMd5Sum string `xml:"PicMd5Sum" json:"PicMd5Sum"`
}

// SendLocationInfo is the place a location_select menu event chose.
type SendLocationInfo struct {
	LocationX float64 `xml:"Location_X" json:"Location_X"` // latitude
	LocationY float64 `xml:"Location_Y" json:"Location_Y"` // longitude
	Scale     int     `xml:"Scale" json:"Scale"`
	Label     string  `xml:"Label" json:"Label"`
	Poiname   string  `xml:"Poiname" json:"Poiname"` // the point of interest's name, if any
}

// Parse parses a push, as JSON if its first non-space byte is '{' and as
// XML (<xml>…</xml>) otherwise. Raw is set to body. A push without
// MsgType is an error wrapping ErrMalformed, as is one that is not
// well-formed or has a field of the wrong kind (a non-numeric CreateTime).
func Parse(body []byte) (*Message, error) {
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) > 0 && b[0] == '{' {
		return ParseJSON(body)
	}
	return ParseXML(body)
}

// ParseXML parses the XML form of a push. The shapes WeChat sends are
// scanned directly; anything else (entities, comments, processing
// instructions, attributes, mixed content, …) goes to encoding/xml, so the
// result is always the one encoding/xml gives.
func ParseXML(body []byte) (*Message, error) {
	if m, ok := parseFlat(body); ok {
		return finish(m, body)
	}
	return parseXMLStd(body)
}

// parseXMLStd parses body with encoding/xml.
func parseXMLStd(body []byte) (*Message, error) {
	var v struct {
		XMLName xml.Name `xml:"xml"`
		Message
	}
	if err := xml.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return finish(&v.Message, body)
}

// ParseJSON parses the JSON form of a push.
func ParseJSON(body []byte) (*Message, error) {
	m := new(Message)
	if err := json.Unmarshal(body, m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	m.JSON = true
	return finish(m, body)
}

func finish(m *Message, body []byte) (*Message, error) {
	if m.MsgType == "" {
		return nil, fmt.Errorf("%w: no MsgType", ErrMalformed)
	}
	m.Raw = body
	return m, nil
}

// Known reports whether the message's type (and event) is one this
// package models; for the others, read Raw.
func (m *Message) Known() bool {
	switch m.MsgType {
	case TypeText, TypeImage, TypeVoice, TypeVideo, TypeShortVideo, TypeLocation, TypeLink:
		return true
	case TypeEvent:
		switch m.Event {
		case EventSubscribe, EventUnsubscribe, EventScan, EventLocation, EventClick, EventView,
			EventScancodePush, EventScancodeWaitMsg, EventPicSysPhoto, EventPicPhotoOrAlbum,
			EventPicWeixin, EventLocationSelect, EventViewMiniprogram, EventTemplateSendDone,
			EventDebugDemo, EventUserEnterSession:
			return true
		}
	}
	return false
}

// Scene returns the scene value of a parametric QR code: the EventKey of a
// SCAN event, or of a subscribe event without its "qrscene_" prefix. It
// returns "" for other messages and for a subscribe not made by scanning.
func (m *Message) Scene() string {
	if m.MsgType != TypeEvent {
		return ""
	}
	switch m.Event {
	case EventScan:
		return m.EventKey
	case EventSubscribe:
		if s, ok := strings.CutPrefix(m.EventKey, "qrscene_"); ok {
			return s
		}
	}
	return ""
}

// DedupeKey identifies a push across WeChat's re-deliveries: the MsgId for
// a user's message, otherwise (events) FromUserName and CreateTime, as
// WeChat's documentation says. The account, the type and the event are
// part of the key too, so two accounts, or two events a user triggers in
// the same second, never share one.
func (m *Message) DedupeKey() string {
	b := make([]byte, 0, 64)
	b = append(b, m.ToUserName...)
	if m.MsgID != 0 {
		b = append(b, "|msg|"...)
		b = strconv.AppendInt(b, m.MsgID, 10)
		return string(b)
	}
	b = append(b, '|')
	b = append(b, m.MsgType...)
	b = append(b, '|')
	b = append(b, m.Event...)
	b = append(b, '|')
	b = append(b, m.FromUserName...)
	b = append(b, '|')
	b = strconv.AppendInt(b, m.CreateTime, 10)
	return string(b)
}

// NewContext returns a copy of ctx that carries m.
func NewContext(ctx context.Context, m *Message) context.Context {
	return context.WithValue(ctx, pushctx.Key{}, m)
}

// FromContext returns the message ctx carries, if any.
func FromContext(ctx context.Context) (*Message, bool) {
	m, ok := ctx.Value(pushctx.Key{}).(*Message)
	return m, ok && m != nil
}
