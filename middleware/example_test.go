package middleware_test

import (
	"context"
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/middleware/msgcrypt"
	"github.com/wxcentral/wxcentral/util"
)

// show sends a request and prints the status and the body.
func show(method, target, body string) {
	req, _ := http.NewRequest(method, target, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s\n", resp.StatusCode, strings.TrimSpace(string(b)))
}

// textPush is a text message as WeChat pushes it; id is its MsgId.
func textPush(id int, content string) string {
	return fmt.Sprintf("<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>"+
		"<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[%s]]></Content><MsgId>%d</MsgId></xml>",
		time.Now().Unix(), content, id)
}

// signed returns the callback query WeChat would send now for token.
func signed(token string) string {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	return "signature=" + util.Signature(token, ts, "42") + "&timestamp=" + ts + "&nonce=42"
}

// Mounting with net/http: the handler behind Verify sees only genuine
// WeChat messages; the middleware answers the handshake itself.
func ExampleVerify() {
	const token = "my-callback-token" // from WECHAT_TOKEN in a real server

	messages := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body) // already read and bounded by Verify
		fmt.Printf("message from %s: %d bytes\n", r.URL.Query().Get("openid"), len(body))
		io.WriteString(w, "success")
	})
	mux := http.NewServeMux()
	mux.Handle("/wechat", middleware.Verify(token)(messages))

	srv := httptest.NewServer(mux)
	defer srv.Close()

	show("GET", srv.URL+"/wechat?"+signed(token)+"&echostr=hello", "")
	show("POST", srv.URL+"/wechat?"+signed(token)+"&openid=o1", textPush(1, "hi"))
	show("POST", srv.URL+"/wechat?"+signed("a guess")+"&openid=o1", textPush(2, "hi"))
	show("POST", srv.URL+"/wechat?"+signed(token)+"&openid=o1", "<xml>…</xml>")
	// Output:
	// 200 hello
	// message from o1: 225 bytes
	// 200 success
	// 403 signature mismatch
	// 400 the body is not a WeChat push (message: malformed push: no MsgType)
}

// Mounting with gorilla/mux: Router.Use takes the middleware as it is. A
// subrouter keeps it off the other routes.
func ExampleVerify_gorillaMux() {
	const token = "my-callback-token"

	r := mux.NewRouter()
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	wx := r.PathPrefix("/wechat").Subrouter()
	wx.Use(middleware.Verify(token,
		middleware.WithPreviousToken("the-token-before"), // during a rotation
		middleware.WithResultFunc(func(_ *http.Request, res middleware.Result) {
			fmt.Println("outcome:", res.Outcome) // count these in a metrics layer
		}),
	))
	wx.HandleFunc("", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "success") })

	srv := httptest.NewServer(r)
	defer srv.Close()

	show("GET", srv.URL+"/wechat?"+signed(token)+"&echostr=hello", "")
	show("POST", srv.URL+"/wechat?"+signed("the-token-before"), textPush(1, "hi"))
	show("POST", srv.URL+"/wechat", textPush(2, "hi"))
	show("GET", srv.URL+"/healthz", "")
	// Output:
	// outcome: echo
	// 200 hello
	// outcome: pass
	// 200 success
	// outcome: missing_param
	// 400 missing signature
	// 200 ok
}

// The handler behind Verify reads the push, parsed once by the middleware,
// from the request's context, and answers with a passive reply. A second
// delivery of the same MsgId, as WeChat sends when a reply is slow, gets
// the same reply without running the handler again.
func ExampleVerify_reply() {
	const token = "my-callback-token"

	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, ok := message.FromContext(r.Context())
		if !ok || m.MsgType != message.TypeText {
			io.WriteString(w, "success") // received, no reply
			return
		}
		fmt.Printf("handling %s from %s\n", m.Content, m.FromUserName)
		w.Header().Set("Content-Type", message.ContentType)
		w.Write(m.ReplyText(time.Now(), "you said: "+m.Content))
	})
	srv := httptest.NewServer(middleware.Verify(token)(echo))
	defer srv.Close()

	msg := textPush(42, "hello")
	for range 2 {
		resp, err := http.Post(srv.URL+"/?"+signed(token)+"&openid=o1", "text/xml", strings.NewReader(msg))
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		reply, _ := message.Parse(body)
		fmt.Printf("%d to %s: %s\n", resp.StatusCode, reply.ToUserName, reply.Content)
	}
	// Output:
	// handling hello from o1
	// 200 to o1: you said: hello
	// 200 to o1: you said: hello
}

// Safe mode: WeChat encrypts every push with the account's EncodingAESKey
// and the middleware decrypts it for the handler and encrypts the reply.
// Here the client plays WeChat with package msgcrypt.
func ExampleWithAES() {
	const (
		token  = "my-callback-token"
		appID  = "wxba5fad812f8e6fb9"
		aesKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG" // 43 characters, from the platform
	)
	// A key from configuration: check it with an error, not a panic.
	key, err := msgcrypt.ParseKey(aesKey)
	if err != nil {
		fmt.Println("WECHAT_ENCODING_AES_KEY:", err)
		return
	}
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, _ := message.FromContext(r.Context()) // the decrypted push
		w.Header().Set("Content-Type", message.ContentType)
		w.Write(m.ReplyText(time.Now(), "you said: "+m.Content))
	})
	srv := httptest.NewServer(middleware.Verify(token, middleware.WithAESKeys(appID, key, nil))(echo))
	defer srv.Close()

	// WeChat's side: encrypt the push, sign it with msg_signature.
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "42"
	enc, _ := key.Encrypt(rand.Reader, []byte(textPush(7, "hello")), appID)
	query := url.Values{
		"signature":     {util.Signature(token, ts, nonce)},
		"timestamp":     {ts},
		"nonce":         {nonce},
		"openid":        {"o1"},
		"encrypt_type":  {"aes"},
		"msg_signature": {msgcrypt.Sign(token, ts, nonce, enc)},
	}.Encode()
	body := "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>"
	resp, err := http.Post(srv.URL+"/?"+query, "text/xml", strings.NewReader(body))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)

	// And open the encrypted reply.
	var env struct {
		Encrypt, MsgSignature, Nonce string
		TimeStamp                    string
	}
	xml.Unmarshal(raw, &env)
	fmt.Println("signature ok:", msgcrypt.VerifySignature(env.MsgSignature, token, env.TimeStamp, env.Nonce, env.Encrypt))
	plain, id, _ := key.Decrypt(env.Encrypt)
	reply, _ := message.Parse(plain)
	fmt.Println(id, reply.MsgType, reply.Content)
	// Output:
	// signature ok: true
	// wxba5fad812f8e6fb9 text you said: hello
}

// The usual callback endpoint: a message.Router behind New. Each handler
// takes the parsed push and returns its reply; the router writes it with
// To and From swapped, and a push without a handler gets "success".
func ExampleNew() {
	const token = "my-callback-token"

	var rt message.Router
	rt.HandleFunc(message.TypeText, func(ctx context.Context, m *message.Message) (message.Reply, error) {
		return message.Text{Content: "you said: " + m.Content}, nil
	})
	rt.HandleEventFunc(message.EventSubscribe, func(ctx context.Context, m *message.Message) (message.Reply, error) {
		return message.News{Articles: []message.Article{{Title: "Welcome", URL: "https://example.com/start"}}}, nil
	})
	srv := httptest.NewServer(middleware.New(token, &rt))
	defer srv.Close()

	ts := time.Now().Unix()
	for i, push := range []string{
		textPush(42, "hello"),
		fmt.Sprintf("<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>"+
			"<CreateTime>%d</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>", ts),
		fmt.Sprintf("<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>"+
			"<CreateTime>%d</CreateTime><MsgType><![CDATA[image]]></MsgType><MediaId><![CDATA[m1]]></MediaId><MsgId>43</MsgId></xml>", ts),
	} {
		// Each push has a nonce of its own, as WeChat's have.
		t, nonce := strconv.FormatInt(ts, 10), strconv.Itoa(i)
		q := url.Values{"signature": {util.Signature(token, t, nonce)}, "timestamp": {t}, "nonce": {nonce}, "openid": {"o1"}}
		resp, err := http.Post(srv.URL+"/?"+q.Encode(), "text/xml", strings.NewReader(push))
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var reply struct {
			ToUserName, MsgType, Content string
			Title                        string `xml:"Articles>item>Title"`
		}
		if xml.Unmarshal(body, &reply) != nil {
			fmt.Printf("%d %s\n", resp.StatusCode, body)
			continue
		}
		fmt.Printf("%d %s to %s: %s%s\n", resp.StatusCode, reply.MsgType, reply.ToUserName, reply.Content, reply.Title)
	}
	// Output:
	// 200 text to o1: you said: hello
	// 200 news to o1: Welcome
	// 200 success
}
