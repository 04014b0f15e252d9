package message

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// A Handler answers one push with a passive reply. A nil Reply is
// NoReply. An error answers WeChat 500, so it re-delivers the push (three
// deliveries in all) and the retry dedupe keeps nothing; an error the
// handler would not have WeChat retry should be logged and answered with
// NoReply instead.
type Handler interface {
	ServeMessage(ctx context.Context, m *Message) (Reply, error)
}

// HandlerFunc is a function as a Handler.
type HandlerFunc func(ctx context.Context, m *Message) (Reply, error)

// ServeMessage calls f(ctx, m).
func (f HandlerFunc) ServeMessage(ctx context.Context, m *Message) (Reply, error) { return f(ctx, m) }

// A Router dispatches pushes to handlers by message type and, for events,
// by event, and writes their replies. It is an http.Handler for behind
// middleware.Verify, which puts the verified (and decrypted) message in
// the request's context; mounted without it, it answers 500, since a push
// that is not verified must not be handled.
//
// An event goes to the handler of its event (HandleEvent; the event's
// case must match, as WeChat spells it, or else it is matched ignoring
// case), then to that of TypeEvent (Handle), then to the default handler;
// any other push to the handler of its MsgType, then to the default. With
// no default handler (HandleDefault), an unrouted push is answered with
// NoReply.
//
// The zero value is ready to use. Register the handlers before serving:
// like http.ServeMux, a Router may be read by many goroutines at once but
// registration is not synchronized with serving.
type Router struct {
	// ErrorLog receives the errors of handlers and of writing replies;
	// nil means slog.Default(). The message's fields are not logged, only
	// its type and event.
	ErrorLog *slog.Logger

	types  map[string]Handler
	events map[string]Handler // by the exact event
	folded map[string]Handler // by the lower-cased event
	def    Handler
}

// Handle registers h for pushes of msgType (TypeText, TypeImage, …, or
// TypeEvent for every event without a handler of its own). It panics if
// msgType is empty, h is nil, or msgType has a handler already.
func (rt *Router) Handle(msgType string, h Handler) {
	register(&rt.types, "message type", msgType, h)
}

// HandleFunc registers f for pushes of msgType, as Handle does.
func (rt *Router) HandleFunc(msgType string, f func(ctx context.Context, m *Message) (Reply, error)) {
	rt.Handle(msgType, nilSafe(f))
}

// HandleEvent registers h for the event (EventSubscribe, EventClick, …,
// or any other WeChat sends). It panics if event is empty, h is nil, or
// event has a handler already.
func (rt *Router) HandleEvent(event string, h Handler) {
	register(&rt.events, "event", event, h)
	if rt.folded == nil {
		rt.folded = make(map[string]Handler)
	}
	if _, ok := rt.folded[strings.ToLower(event)]; !ok {
		rt.folded[strings.ToLower(event)] = h
	}
}

// HandleEventFunc registers f for the event, as HandleEvent does.
func (rt *Router) HandleEventFunc(event string, f func(ctx context.Context, m *Message) (Reply, error)) {
	rt.HandleEvent(event, nilSafe(f))
}

// HandleDefault registers h for the pushes no other handler takes. It
// panics if h is nil or a default handler is registered already.
func (rt *Router) HandleDefault(h Handler) {
	if h == nil {
		panic("message: Router.HandleDefault: nil handler")
	}
	if rt.def != nil {
		panic("message: Router.HandleDefault: a default handler is registered already")
	}
	rt.def = h
}

// HandleDefaultFunc registers f for the pushes no other handler takes, as
// HandleDefault does.
func (rt *Router) HandleDefaultFunc(f func(ctx context.Context, m *Message) (Reply, error)) {
	rt.HandleDefault(nilSafe(f))
}

// nilSafe turns a nil func into a nil Handler, so that register's nil
// check sees it.
func nilSafe(f func(ctx context.Context, m *Message) (Reply, error)) Handler {
	if f == nil {
		return nil
	}
	return HandlerFunc(f)
}

func register(m *map[string]Handler, what, key string, h Handler) {
	switch {
	case key == "":
		panic(fmt.Sprintf("message: Router: empty %s", what))
	case h == nil:
		panic(fmt.Sprintf("message: Router: nil handler for %s %q", what, key))
	}
	if *m == nil {
		*m = make(map[string]Handler)
	}
	if _, ok := (*m)[key]; ok {
		panic(fmt.Sprintf("message: Router: %s %q has a handler already", what, key))
	}
	(*m)[key] = h
}

// Handler returns the handler a push goes to, and whether one was
// registered for it (false means the default handler, or NoReply).
func (rt *Router) Handler(m *Message) (h Handler, routed bool) {
	if m.MsgType == TypeEvent && m.Event != "" {
		if h, ok := rt.events[m.Event]; ok {
			return h, true
		}
		if h, ok := rt.folded[strings.ToLower(m.Event)]; ok {
			return h, true
		}
	}
	if h, ok := rt.types[m.MsgType]; ok {
		return h, true
	}
	if rt.def != nil {
		return rt.def, false
	}
	return noReplyHandler{}, false
}

type noReplyHandler struct{}

func (noReplyHandler) ServeMessage(context.Context, *Message) (Reply, error) { return NoReply, nil }

// ServeMessage answers m with the handler it routes to, so that a Router
// can be the handler of another Router's type or event.
func (rt *Router) ServeMessage(ctx context.Context, m *Message) (Reply, error) {
	h, _ := rt.Handler(m)
	return h.ServeMessage(ctx, m)
}

// ServeHTTP answers the push in r's context with its handler's reply
// (WriteReply). A handler's error, a reply WeChat would refuse (a news
// reply of nine articles), or a request without a verified push is
// answered 500 and logged to ErrorLog.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m, ok := FromContext(r.Context())
	if !ok {
		rt.logError(r, nil, "message: Router: the request carries no verified push; mount the router behind middleware.Verify")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	reply, err := rt.ServeMessage(r.Context(), m)
	if err == nil && reply != nil {
		err = reply.check() // before anything is written, so 500 can still be sent
	}
	if err != nil {
		rt.logError(r, m, "wechat message handler failed", slog.String("error", err.Error()))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := WriteReply(w, m, reply); err != nil {
		rt.logError(r, m, "wechat message reply not written", slog.String("error", err.Error()))
	}
}

func (rt *Router) logError(r *http.Request, m *Message, msg string, attrs ...slog.Attr) {
	l := rt.ErrorLog
	if l == nil {
		l = slog.Default()
	}
	if m != nil {
		attrs = append(attrs, slog.String("msg_type", m.MsgType))
		if m.Event != "" {
			attrs = append(attrs, slog.String("event", m.Event))
		}
	}
	attrs = append(attrs, slog.String("path", r.URL.Path))
	l.LogAttrs(r.Context(), slog.LevelError, msg, attrs...)
}
