package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/examples/internal/demo"
	"github.com/wxcentral/wxcentral/middleware/examples/internal/demotest"
	"github.com/wxcentral/wxcentral/middleware/message"
)

// flakyInbox fails its first fail saves, as a database that is briefly
// down does, and counts every save.
type flakyInbox struct {
	fail  int64
	saves atomic.Int64
}

func (f *flakyInbox) Save(context.Context, *message.Message) error {
	if f.saves.Add(1) <= f.fail {
		return errors.New("inbox: database unavailable")
	}
	return nil
}

// counted counts the requests h serves.
func counted(h http.Handler, n *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	})
}

func newTestServer(t *testing.T, messages http.Handler, inbox Inbox, opts ...middleware.Option) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(newServer(demotest.Token, messages, inbox, append(opts, demotest.Quiet())...))
	t.Cleanup(srv.Close)
	return srv
}

// TestSimulate runs `wxcentral simulate`'s client against the echo server,
// in plain and in safe mode: the URL check (a GET) reaches Verify through
// e.Any, a text push is saved and gets "you said: …" back, encrypted in
// safe mode.
func TestSimulate(t *testing.T) {
	demotest.Conversation(t, demo.Path, func(t *testing.T, mode demotest.Mode) string {
		inbox := new(flakyInbox)
		t.Cleanup(func() {
			if n := inbox.saves.Load(); n != 2 {
				t.Errorf("inbox saved %d pushes, want 2 (simulate's and Converse's)", n)
			}
		})
		return newTestServer(t, demo.Messages(), inbox, mode.Options...).URL
	})
}

// TestErrorIsRetried: a push whose save fails is answered 500, not kept as
// its reply, so WeChat's re-delivery of the byte-identical request runs the
// chain again and gets the real reply; a third delivery is answered from
// the dedupe without running anything. The server mounts Verify with
// echo.WrapMiddleware, which answers the error after Verify returned (once
// that gave WeChat 200 "" and the push was lost).
func TestErrorIsRetried(t *testing.T) {
	inbox := &flakyInbox{fail: 1}
	var runs atomic.Int64
	srv := newTestServer(t, counted(demo.Messages(), &runs), inbox)
	push := demotest.NewPush(srv.URL+demo.Path, time.Now(), 7001, "hello")

	code, body := push.Deliver(t)
	if code != http.StatusInternalServerError {
		t.Fatalf("first delivery, save failing: %d %q, want 500", code, body)
	}
	if runs.Load() != 0 {
		t.Errorf("the router ran %d times after a failed save, want 0", runs.Load())
	}
	for i, want := range []int64{1, 1} { // the re-delivery runs it; the next is deduplicated
		code, body = push.Deliver(t)
		if code != http.StatusOK || !strings.Contains(body, "<![CDATA[you said: hello]]>") {
			t.Fatalf("delivery %d: %d %q, want 200 with the reply", i+2, code, body)
		}
		if runs.Load() != want {
			t.Errorf("after delivery %d the router ran %d times, want %d", i+2, runs.Load(), want)
		}
	}
	if n := inbox.saves.Load(); n != 2 {
		t.Errorf("inbox save ran %d times, want 2 (failed, then succeeded)", n)
	}
}

// TestRouterErrorIsRetried: mounted alone with echo.WrapHandler, the
// router answers its handler's error with 500 itself, inside Verify, so
// the re-delivery runs the handler again there too.
func TestRouterErrorIsRetried(t *testing.T) {
	var runs atomic.Int64
	router := &message.Router{ErrorLog: slog.New(slog.DiscardHandler)}
	router.HandleFunc(message.TypeText, func(_ context.Context, m *message.Message) (message.Reply, error) {
		if runs.Add(1) == 1 {
			return nil, errors.New("backend unavailable")
		}
		return message.Text{Content: "you said: " + m.Content}, nil
	})
	e := echo.New()
	e.Any(demo.Path, echo.WrapHandler(middleware.New(demotest.Token, router, demotest.Quiet())))
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	push := demotest.NewPush(srv.URL+demo.Path, time.Now(), 7003, "hello")
	if code, body := push.Deliver(t); code != http.StatusInternalServerError {
		t.Fatalf("first delivery, handler failing: %d %q, want 500", code, body)
	}
	if code, body := push.Deliver(t); code != http.StatusOK || !strings.Contains(body, "<![CDATA[you said: hello]]>") {
		t.Fatalf("re-delivery: %d %q, want 200 with the reply", code, body)
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("the handler ran %d times, want 2", n)
	}
}

// TestOnlyTheCallbackIsGuarded: /healthz answers without a signature, the
// callback does not.
func TestOnlyTheCallbackIsGuarded(t *testing.T) {
	demotest.OnlyCallbackGuarded(t, newTestServer(t, demo.Messages(), new(flakyInbox)).URL, demo.Path)
}
