// Command gin serves WeChat callbacks on a gin-gonic/gin engine. The
// callback is an http.Handler (middleware.New around the message router)
// mounted with gin.WrapH on r.Any: WeChat's URL check is a GET and its
// pushes are POSTs on the same path, so a POST-only route fails the check.
//
//	go run ./gin -addr 127.0.0.1:3100 -token dev
//	wxcentral simulate -url http://127.0.0.1:3100/wechat -token dev
package main

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/examples/internal/demo"
)

func main() {
	gin.SetMode(gin.ReleaseMode)
	demo.Main("gin", func(token string, opts ...middleware.Option) http.Handler {
		return newEngine(token, demo.Messages(), opts...)
	})
}

// newEngine returns the gin engine: messages behind Verify on demo.Path,
// and an unguarded GET /healthz.
func newEngine(token string, messages http.Handler, opts ...middleware.Option) *gin.Engine {
	r := gin.New()
	r.Use(gin.Recovery())
	r.Any(demo.Path, gin.WrapH(middleware.New(token, messages, opts...)))
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	return r
}
