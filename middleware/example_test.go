package middleware_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/wxcentral/wxcentral/middleware"
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
		fmt.Printf("message from %s: %s\n", r.URL.Query().Get("openid"), body)
		io.WriteString(w, "success")
	})
	mux := http.NewServeMux()
	mux.Handle("/wechat", middleware.Verify(token)(messages))

	srv := httptest.NewServer(mux)
	defer srv.Close()

	show("GET", srv.URL+"/wechat?"+signed(token)+"&echostr=hello", "")
	show("POST", srv.URL+"/wechat?"+signed(token)+"&openid=o1", "<xml>…</xml>")
	show("POST", srv.URL+"/wechat?"+signed("a guess")+"&openid=o1", "<xml>…</xml>")
	// Output:
	// 200 hello
	// message from o1: <xml>…</xml>
	// 200 success
	// 403 signature mismatch
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
	show("POST", srv.URL+"/wechat?"+signed("the-token-before"), "<xml>…</xml>")
	show("POST", srv.URL+"/wechat", "<xml>…</xml>")
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
