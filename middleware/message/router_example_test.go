package message_test

import (
	"context"
	"fmt"
	"time"

	"github.com/wxcentral/wxcentral/middleware/message"
)

// A Router picks the handler of a push by its type, or its event; what
// has no handler goes to the default one. Mounted behind the callback
// middleware (middleware.New(token, &rt)) it writes each reply for
// WeChat; here the reply is built by hand.
func ExampleRouter() {
	var rt message.Router
	rt.HandleFunc(message.TypeText, func(ctx context.Context, m *message.Message) (message.Reply, error) {
		return message.Text{Content: "you said: " + m.Content}, nil
	})
	rt.HandleEventFunc(message.EventClick, func(ctx context.Context, m *message.Message) (message.Reply, error) {
		return message.Image{MediaID: "menu-" + m.EventKey}, nil
	})
	rt.HandleDefaultFunc(func(ctx context.Context, m *message.Message) (message.Reply, error) {
		return message.NoReply, nil
	})

	for _, push := range []string{
		`<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>1714112445</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>1</MsgId></xml>`,
		`<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>1714112445</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[K1]]></EventKey></xml>`,
		`<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>1714112445</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[v]]></MediaId><MsgId>2</MsgId></xml>`,
	} {
		m, err := message.Parse([]byte(push))
		if err != nil {
			fmt.Println(err)
			return
		}
		m.ReceivedAt = time.Unix(1714112446, 0) // the middleware sets it
		reply, err := rt.ServeMessage(context.Background(), m)
		if err != nil {
			fmt.Println(err)
			return
		}
		b, err := message.AppendReply(nil, m, reply)
		fmt.Println(string(b), err)
	}
	// Output:
	// <xml><ToUserName><![CDATA[o1]]></ToUserName><FromUserName><![CDATA[gh_1]]></FromUserName><CreateTime>1714112446</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[you said: hi]]></Content></xml> <nil>
	// <xml><ToUserName><![CDATA[o1]]></ToUserName><FromUserName><![CDATA[gh_1]]></FromUserName><CreateTime>1714112446</CreateTime><MsgType><![CDATA[image]]></MsgType><Image><MediaId><![CDATA[menu-K1]]></MediaId></Image></xml> <nil>
	// success <nil>
}
