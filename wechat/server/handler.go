package server

import (
	"context"
	"log/slog"

	"github.com/wxcentral/wxcentral/middleware/message"
)

// ReferenceHandler is the handler behind the callback middleware in the
// reference server, an echo bot built on message.Router: a text message
// gets its own text back as a passive reply, stamped with the time the
// middleware accepted it; every other message or event gets "success",
// which tells WeChat it was received and needs no reply. In safe mode the
// middleware encrypts the reply. Serve uses it unless Options.Handler is
// set. A nil log discards its debug lines.
func ReferenceHandler(log *slog.Logger) *message.Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rt := &message.Router{ErrorLog: log}
	rt.HandleFunc(message.TypeText, func(_ context.Context, m *message.Message) (message.Reply, error) {
		return message.Text{Content: m.Content}, nil
	})
	rt.HandleDefaultFunc(func(_ context.Context, m *message.Message) (message.Reply, error) {
		log.Debug("server: message received", "type", m.MsgType, "event", m.Event)
		return message.NoReply, nil
	})
	return rt
}
