// Command chi serves WeChat callbacks on a go-chi/chi router. The callback
// route alone is guarded by middleware.Verify, with r.With; r.Use would
// guard every route, and GET /healthz could not answer without a signature.
// Handle, not Post, because WeChat's URL check is a GET on the same path.
//
//	go run ./chi -addr 127.0.0.1:3100 -token dev
//	wxcentral simulate -url http://127.0.0.1:3100/wechat -token dev
package main

import (
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/examples/internal/demo"
)

func main() {
	demo.Main("chi", func(token string, opts ...middleware.Option) http.Handler {
		return newRouter(token, demo.Messages(), opts...)
	})
}

// newRouter returns the chi router: messages behind Verify on demo.Path,
// for every method (Verify answers the GET check and refuses what WeChat
// does not send), and an unguarded GET /healthz.
func newRouter(token string, messages http.Handler, opts ...middleware.Option) chi.Router {
	r := chi.NewRouter()
	r.With(middleware.Verify(token, opts...)).Handle(demo.Path, messages)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	return r
}
