package message_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/wxcentral/wxcentral/middleware/message"
)

// A handler behind the callback middleware answers text messages.
func ExampleFromContext() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, ok := message.FromContext(r.Context())
		if !ok || m.MsgType != message.TypeText {
			w.Write([]byte("success")) // received, no reply
			return
		}
		w.Header().Set("Content-Type", message.ContentType)
		w.Write(m.ReplyText(time.Now(), "you said: "+m.Content))
	})
	_ = h
}

func ExampleParse() {
	m, err := message.Parse([]byte(`<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1714112445</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_42]]></EventKey><Ticket><![CDATA[T]]></Ticket></xml>`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.MsgType, m.Event, m.Scene(), m.DedupeKey())
	fmt.Printf("%s\n", m.ReplyText(time.Unix(1714112446, 0), "welcome"))
	// Output:
	// event subscribe 42 gh_1|event|subscribe|oUser|1714112445
	// <xml><ToUserName><![CDATA[oUser]]></ToUserName><FromUserName><![CDATA[gh_1]]></FromUserName><CreateTime>1714112446</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[welcome]]></Content></xml>
}
