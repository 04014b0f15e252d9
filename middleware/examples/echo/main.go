// Command echo serves WeChat callbacks on a labstack/echo (v4) server.
// The callback route takes every method (e.Any): WeChat's URL check is a
// GET and its pushes are POSTs on the same path. It runs Verify, then an
// echo middleware that saves each push, then the message router.
//
// An echo handler or middleware reports a failure by returning an error,
// and echo's error handler answers it (500) once the chain has returned,
// into the writer the handler had: Verify passes that answer on to WeChat
// and keeps no reply for it, so WeChat's next delivery of the push runs
// the chain again. The message router mounted alone,
// e.Any(path, echo.WrapHandler(middleware.New(token, router))), answers its
// handlers' errors with 500 itself.
//
//	go run ./echo -addr 127.0.0.1:3100 -token dev
//	wxcentral simulate -url http://127.0.0.1:3100/wechat -token dev
package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/examples/internal/demo"
	"github.com/wxcentral/wxcentral/middleware/message"
)

func main() {
	demo.Main("echo", func(token string, opts ...middleware.Option) http.Handler {
		return newServer(token, demo.Messages(), logInbox{slog.Default()}, opts...)
	})
}

// An Inbox keeps each push before it is answered, as a business server
// records a message before replying to it. An error fails the delivery,
// and WeChat re-sends the push.
type Inbox interface {
	Save(ctx context.Context, m *message.Message) error
}

// newServer returns the echo server: on demo.Path, Verify, then a
// middleware saving each push to inbox, then messages; and an unguarded
// GET /healthz.
func newServer(token string, messages http.Handler, inbox Inbox, opts ...middleware.Option) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Any(demo.Path, echo.WrapHandler(messages), echo.WrapMiddleware(middleware.Verify(token, opts...)), save(inbox))
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	return e
}

// save saves every push that reaches it to inbox before the next handler
// answers it; if that fails, the error is the answer.
func save(inbox Inbox) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			m, ok := message.FromContext(c.Request().Context())
			if !ok {
				return echo.NewHTTPError(http.StatusInternalServerError, "no WeChat message: is Verify in front?")
			}
			if err := inbox.Save(c.Request().Context(), m); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// logInbox stands in for the database a business server would save pushes
// to: it logs each push's type, event and MsgId (never the sender's
// OpenID).
type logInbox struct{ logger *slog.Logger }

func (l logInbox) Save(ctx context.Context, m *message.Message) error {
	l.logger.InfoContext(ctx, "push saved", "msg_type", m.MsgType, "event", m.Event, "msg_id", m.MsgID)
	return nil
}
