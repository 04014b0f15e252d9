package server

import (
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/wxcentral/wxcentral/middleware/message"
)

// ReferenceHandler is the handler behind the callback middleware in the
// reference server, an echo bot: a text message gets its own text back as a
// passive reply; every other message or event gets "success", which tells
// WeChat it was received and needs no reply. In safe mode the middleware
// encrypts the reply. Serve uses it unless Options.Handler is set.
func ReferenceHandler(log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, ok := message.FromContext(r.Context())
		if !ok {
			// Without a parsed message (a custom middleware chain), say
			// received and move on.
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, "success")
			return
		}
		log.Debug("server: message received", "type", m.MsgType, "event", m.Event)
		if m.MsgType != message.TypeText {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, "success")
			return
		}
		w.Header().Set("Content-Type", message.ContentType)
		w.Write(m.ReplyText(time.Now(), m.Content))
	})
}
