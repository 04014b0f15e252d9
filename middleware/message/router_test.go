package message

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var allTypes = []string{TypeText, TypeImage, TypeVoice, TypeVideo, TypeShortVideo, TypeLocation, TypeLink}

var allEvents = []string{
	EventSubscribe, EventUnsubscribe, EventScan, EventLocation, EventClick, EventView,
	EventScancodePush, EventScancodeWaitMsg, EventPicSysPhoto, EventPicPhotoOrAlbum, EventPicWeixin,
	EventLocationSelect, EventViewMiniprogram, EventTemplateSendDone, EventMassSendDone, EventDebugDemo,
	EventUserEnterSession, EventSubscribeMsgPopup, EventSubscribeMsgSent, EventSubscribeMsgEdit,
}

// serve runs the push m through rt as the callback middleware hands it
// on, and returns the response.
func serve(rt http.Handler, m *Message) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/wechat", nil)
	r = r.WithContext(NewContext(r.Context(), m))
	rec := httptest.NewRecorder()
	rt.ServeHTTP(rec, r)
	return rec
}

// echoName answers with a text reply naming the handler.
func echoName(name string) func(context.Context, *Message) (Reply, error) {
	return func(_ context.Context, m *Message) (Reply, error) { return Text{Content: name}, nil }
}

// replied returns the Content of a text reply, or the body as it is.
func replied(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if rec.Body.String() == "success" {
		return "success"
	}
	at := time.Unix(1714112446, 0)
	return checkReply(t, rec.Body.Bytes(), false, at).Content
}

func TestRouterRoutesEveryTypeAndEvent(t *testing.T) {
	var rt Router
	for _, ty := range allTypes {
		rt.HandleFunc(ty, echoName("type "+ty))
	}
	for _, ev := range allEvents {
		rt.HandleEventFunc(ev, echoName("event "+ev))
	}
	rt.HandleDefaultFunc(echoName("default"))
	push := func(msgType, event string) *Message {
		return &Message{ToUserName: "gh_acct", FromUserName: "oUser", MsgType: msgType, Event: event, ReceivedAt: time.Unix(1714112446, 0)}
	}
	for _, ty := range allTypes {
		if got := replied(t, serve(&rt, push(ty, ""))); got != "type "+ty {
			t.Errorf("%s went to %q", ty, got)
		}
	}
	for _, ev := range allEvents {
		if got := replied(t, serve(&rt, push(TypeEvent, ev))); got != "event "+ev {
			t.Errorf("event %s went to %q", ev, got)
		}
	}
	for _, tc := range []struct{ msgType, event, want string }{
		{"miniprogrampage", "", "default"}, // a type without a handler
		{TypeEvent, "card_pass_check", "default"},
		{TypeEvent, "", "default"},
		{TypeEvent, "Subscribe", "event subscribe"}, // no exact match: case folded
		{TypeEvent, "click", "event CLICK"},
	} {
		if got := replied(t, serve(&rt, push(tc.msgType, tc.event))); got != tc.want {
			t.Errorf("%s/%s went to %q, want %q", tc.msgType, tc.event, got, tc.want)
		}
	}
}

func TestRouterFallbacks(t *testing.T) {
	var rt Router // the zero value
	push := &Message{ToUserName: "gh_acct", FromUserName: "oUser", MsgType: TypeEvent, Event: EventClick, ReceivedAt: time.Unix(1714112446, 0)}
	if got := replied(t, serve(&rt, push)); got != "success" {
		t.Errorf("no handlers: %q, want success", got)
	}
	rt.HandleFunc(TypeEvent, echoName("every event"))
	if got := replied(t, serve(&rt, push)); got != "every event" {
		t.Errorf("an event without its handler went to %q, want the TypeEvent handler", got)
	}
	rt.HandleEventFunc(EventClick, echoName("click"))
	if got := replied(t, serve(&rt, push)); got != "click" {
		t.Errorf("CLICK went to %q", got)
	}
	if h, routed := rt.Handler(&Message{MsgType: TypeText}); routed || h == nil {
		t.Errorf("Handler of an unrouted text = %v, %v; want the no-reply handler, false", h, routed)
	}
	// A handler's nil reply is no reply.
	rt.HandleFunc(TypeText, func(context.Context, *Message) (Reply, error) { return nil, nil })
	if got := replied(t, serve(&rt, &Message{MsgType: TypeText})); got != "success" {
		t.Errorf("nil reply: %q, want success", got)
	}
	// A Router is a Handler: one nested under a type.
	var inner Router
	inner.HandleFunc(TypeLink, echoName("inner link"))
	rt.Handle(TypeLink, &inner)
	if got := replied(t, serve(&rt, &Message{ToUserName: "gh_acct", FromUserName: "oUser", MsgType: TypeLink, ReceivedAt: time.Unix(1714112446, 0)})); got != "inner link" {
		t.Errorf("nested router: %q", got)
	}
}

func TestRouterJSON(t *testing.T) {
	var rt Router
	rt.HandleEventFunc(EventUserEnterSession, func(context.Context, *Message) (Reply, error) {
		return TransferCustomerService{}, nil
	})
	m := &Message{ToUserName: "gh_acct", FromUserName: "oUser", MsgType: TypeEvent, Event: EventUserEnterSession, JSON: true, ReceivedAt: time.Unix(1714112446, 0)}
	rec := serve(&rt, m)
	if mt := checkReply(t, rec.Body.Bytes(), true, m.ReceivedAt).MsgType; mt != "transfer_customer_service" || rec.Header().Get("Content-Type") != JSONContentType {
		t.Errorf("JSON push: %s %q", rec.Header().Get("Content-Type"), rec.Body)
	}
}

func TestRouterErrors(t *testing.T) {
	var logs bytes.Buffer
	rt := Router{ErrorLog: slog.New(slog.NewTextHandler(&logs, nil))}
	rt.HandleFunc(TypeText, func(_ context.Context, m *Message) (Reply, error) {
		return nil, errors.New("database down")
	})
	rt.HandleFunc(TypeImage, func(context.Context, *Message) (Reply, error) {
		return News{Articles: make([]Article, MaxArticles+1)}, nil
	})
	secret := "my card number 4111"
	for _, tc := range []struct {
		name string
		m    *Message
		want string
	}{
		{"handler error", &Message{MsgType: TypeText, Content: secret}, "database down"},
		{"refused reply", &Message{MsgType: TypeImage}, "1 to 8 articles"},
	} {
		logs.Reset()
		rec := serve(&rt, tc.m)
		if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s: %d %q, want 500 without the error's text", tc.name, rec.Code, rec.Body)
		}
		if !strings.Contains(logs.String(), tc.want) || !strings.Contains(logs.String(), "msg_type="+tc.m.MsgType) || strings.Contains(logs.String(), secret) {
			t.Errorf("%s: logged %q", tc.name, logs.String())
		}
	}
	// No verified push in the context: the router is mounted wrong.
	logs.Reset()
	rec := httptest.NewRecorder()
	rt.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/wechat", strings.NewReader("<xml/>")))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(logs.String(), "middleware.Verify") {
		t.Errorf("without Verify: %d, logged %q", rec.Code, logs.String())
	}
}

func TestRouterRegistrationPanics(t *testing.T) {
	ok := func(context.Context, *Message) (Reply, error) { return nil, nil }
	for name, f := range map[string]func(rt *Router){
		"empty type":     func(rt *Router) { rt.HandleFunc("", ok) },
		"nil func":       func(rt *Router) { rt.HandleFunc(TypeText, nil) },
		"nil handler":    func(rt *Router) { rt.HandleEvent(EventClick, nil) },
		"empty event":    func(rt *Router) { rt.HandleEventFunc("", ok) },
		"twice a type":   func(rt *Router) { rt.HandleFunc(TypeText, ok); rt.HandleFunc(TypeText, ok) },
		"twice an event": func(rt *Router) { rt.HandleEventFunc(EventScan, ok); rt.HandleEventFunc(EventScan, ok) },
		"twice default":  func(rt *Router) { rt.HandleDefaultFunc(ok); rt.HandleDefaultFunc(ok) },
		"nil default":    func(rt *Router) { rt.HandleDefault(nil) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.HasPrefix(r.(string), "message: Router") {
					t.Errorf("%s: panic %v, want a message: Router panic", name, r)
				}
			}()
			f(new(Router))
		}()
	}
}
