package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/dedupe"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/util"
)

// waitSignal wraps a dedupe.Store and signals each delivery that found the
// key taken and is about to wait for the first one's reply.
type waitSignal struct {
	dedupe.Store
	waiting chan string // the key, once per Wait
}

func (s *waitSignal) Wait(ctx context.Context, key string) (dedupe.Reply, error) {
	s.waiting <- key
	return s.Store.Wait(ctx, key)
}

type delivery struct {
	status int
	body   string
	nonce  string
}

// threeDeliveries sends one push three times, 5 s apart on the harness
// clock, while the handler of the first is blocked: the handler runs once,
// and every delivery gets the first reply, encrypted afresh for each.
// It returns the handler's run counter for further deliveries.
func threeDeliveries(t *testing.T, h *harness, store dedupe.Store, wx wechat) (send func(nonce string) delivery, runs func() int) {
	t.Helper()
	sig := &waitSignal{Store: store, waiting: make(chan string, 3)}
	var mu sync.Mutex
	n := 0
	started, release := make(chan struct{}), make(chan struct{})
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			close(started)
			<-release
		}
		m, _ := message.FromContext(r.Context())
		w.Header().Set("Content-Type", message.ContentType)
		w.Write(m.ReplyText(h.clock(), fmt.Sprintf("run %d: %s", n, m.Content)))
	})
	srv := httptest.NewServer(middleware.Verify(testToken, h.options(middleware.WithAES(testAppID, testKey), middleware.WithDedupe(sig))...)(next))
	t.Cleanup(srv.Close)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before srv.Close, should the test fail early

	msg := textMsg(4242)
	send = func(nonce string) delivery {
		resp, got := post(t, srv.Client(), srv.URL, wx.seal(t, h.clock().Unix(), nonce, msg, false))
		return delivery{resp.StatusCode, got, nonce}
	}
	runs = func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}

	results := make(chan delivery, 3)
	go func() { results <- send("first") }()
	recv(t, "the first delivery to reach the handler", started)
	for _, nonce := range []string{"second", "third"} {
		h.setNow(h.clock().Add(5 * time.Second))
		go func() { results <- send(nonce) }()
		// The re-delivery found the push claimed and waits.
		recv(t, "the "+nonce+" delivery to wait for the first", sig.waiting)
	}
	unblock()

	var want string
	seen := map[string]bool{}
	for range 3 {
		d := recv(t, "a reply", results)
		if d.status != 200 {
			t.Fatalf("delivery %s: status %d: %q", d.nonce, d.status, d.body)
		}
		plain, env := wx.open(t, []byte(d.body), false)
		if env.Nonce != d.nonce {
			t.Errorf("delivery %s answered with Nonce %q", d.nonce, env.Nonce)
		}
		if seen[env.Encrypt] {
			t.Errorf("two deliveries got the same ciphertext: each must be encrypted afresh")
		}
		seen[env.Encrypt] = true
		if want == "" {
			want = plain
		} else if plain != want {
			t.Errorf("delivery %s got %q, another got %q", d.nonce, plain, want)
		}
	}
	if !strings.Contains(want, "run 1: hello") {
		t.Errorf("the deliveries got %q, want the first run's reply", want)
	}
	if got := runs(); got != 1 {
		t.Fatalf("the handler ran %d times for three deliveries, want once", got)
	}
	return send, runs
}

// recv receives from ch, or fails the test after 10 s: a safety net
// against hanging when the middleware is broken, not a timing assumption.
func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestRetriesMemory(t *testing.T) {
	wx := wechat{testToken, testAppID, mustKey(t, testKey)}
	h := newHarness()
	mem := &dedupe.Memory{Clock: clockOf(h)}
	send, runs := threeDeliveries(t, h, mem, wx)

	// Once no triple of it can be in the timestamp window any more (the
	// dedupe keeps a reply that long: twice the window and a second), the
	// same MsgId is a new push (it never comes in practice), and runs the
	// handler.
	h.setNow(h.clock().Add(2*middleware.DefaultTimestampWindow + time.Second))
	if d := send("late"); d.status != 200 || runs() != 2 {
		t.Errorf("a delivery after the window: status %d, handler runs %d; want 200, 2", d.status, runs())
	}
}

// TestRetriesDefault checks that dedupe is on without WithDedupe, follows
// the injected clock, and that WithDedupe(nil) turns it off.
func TestRetriesDefault(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []middleware.Option
		runs []int // after each delivery
	}{
		{"default", nil, []int{1, 1, 1, 2}},
		{"off", []middleware.Option{middleware.WithDedupe(nil)}, []int{1, 2, 3, 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness()
			srv := httptest.NewServer(middleware.Verify(testToken, h.options(tt.opts...)...)(h.next()))
			defer srv.Close()
			runs := 0
			for i, want := range tt.runs {
				if i == 3 {
					h.setNow(h.clock().Add(2*middleware.DefaultTimestampWindow + time.Second)) // past the dedupe's TTL
				} else if i > 0 {
					h.setNow(h.clock().Add(5 * time.Second))
				}
				q := signedQuery(testToken, strconv.FormatInt(h.clock().Unix(), 10), "n"+strconv.Itoa(i))
				resp, got := do(t, srv.Client(), "POST", srv.URL+"/?"+q.Encode(), strings.NewReader(textMsg(99)))
				_, _, calls := h.take()
				runs += calls
				if resp.StatusCode != 200 || got != "handled" || runs != want {
					t.Fatalf("delivery %d: %d %q, handler runs %d; want 200 handled, %d", i+1, resp.StatusCode, got, runs, want)
				}
			}
		})
	}
}

type harnessClock struct{ h *harness }

func (c harnessClock) Now() time.Time { return c.h.clock() }

func clockOf(h *harness) util.Clock { return harnessClock{h} }

// TestRetriesNoReply checks, in plain and in safe mode, that a first
// delivery whose handler wrote nothing at all is not remembered as a
// reply: the re-delivery reaches the handler, gets its reply, and the
// third delivery gets that reply from the store.
func TestRetriesNoReply(t *testing.T) {
	wx := wechat{testToken, testAppID, mustKey(t, testKey)}
	for _, safe := range []bool{false, true} {
		name := "plain"
		var opts []middleware.Option
		if safe {
			name = "safe"
			opts = append(opts, middleware.WithAES(testAppID, testKey))
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness()
			var mu sync.Mutex
			runs := 0
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				runs++
				n := runs
				mu.Unlock()
				if n == 1 {
					return // an error a framework swallowed: nothing written
				}
				m, _ := message.FromContext(r.Context())
				w.Header().Set("Content-Type", message.ContentType)
				w.Write(m.ReplyText(h.clock(), fmt.Sprintf("run %d", n)))
			})
			srv := httptest.NewServer(middleware.Verify(testToken, h.options(opts...)...)(next))
			defer srv.Close()
			ts := h.clock().Unix()
			msg := textMsg(777)
			for i, want := range []struct {
				reply string // "" for an empty answer
				runs  int
			}{{"", 1}, {"run 2", 2}, {"run 2", 2}} {
				status, got := redeliver(t, srv, wx, safe, ts, i, msg)
				mu.Lock()
				n := runs
				mu.Unlock()
				if status != 200 || n != want.runs || (want.reply == "") != (got == "") || !strings.Contains(got, want.reply) {
					t.Errorf("delivery %d: %d %q, handler runs %d; want 200 %q, %d", i+1, status, got, n, want.reply, want.runs)
				}
			}
		})
	}
}

// wrapLikeEcho mounts mw the way echo's WrapMiddleware does: the handler
// inside keeps the writer mw gave it, and an error it returns is written
// into that writer after mw has returned, by the framework's error
// handler.
func wrapLikeEcho(mw func(http.Handler) http.Handler, handler func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var inner http.ResponseWriter
		var err error
		mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inner = w
			err = handler(w, r)
		})).ServeHTTP(w, r)
		if err != nil && inner != nil {
			http.Error(inner, "internal error", http.StatusInternalServerError)
		}
	})
}

// TestRetriesFrameworkError: behind a framework that writes a handler's
// error after the middleware returned, into the writer the handler had
// (echo's WrapMiddleware), the 500 reaches WeChat, so that it re-delivers;
// the re-delivery runs the handler, and the third gets its reply from the
// store. The 500 was written into the dedupe's buffer, and WeChat got
// 200 "" and never re-delivered.
func TestRetriesFrameworkError(t *testing.T) {
	wx := wechat{testToken, testAppID, mustKey(t, testKey)}
	for _, tc := range []struct {
		name string
		opts []middleware.Option
	}{
		{"plain", nil},
		{"plain without dedupe", []middleware.Option{middleware.WithDedupe(nil)}},
		{"safe", []middleware.Option{middleware.WithAES(testAppID, testKey)}},
		{"safe without dedupe", []middleware.Option{middleware.WithAES(testAppID, testKey), middleware.WithDedupe(nil)}},
	} {
		safe := strings.HasPrefix(tc.name, "safe")
		dedupe := !strings.HasSuffix(tc.name, "without dedupe")
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness()
			var mu sync.Mutex
			runs := 0
			handler := func(w http.ResponseWriter, r *http.Request) error {
				mu.Lock()
				runs++
				n := runs
				mu.Unlock()
				if n == 1 {
					return errors.New("database down")
				}
				m, _ := message.FromContext(r.Context())
				w.Header().Set("Content-Type", message.ContentType)
				w.Write(m.ReplyText(h.clock(), fmt.Sprintf("run %d", n)))
				return nil
			}
			srv := httptest.NewServer(wrapLikeEcho(middleware.Verify(testToken, h.options(tc.opts...)...), handler))
			defer srv.Close()
			ts := h.clock().Unix()
			msg := textMsg(778)
			third := 2 // with the dedupe, the third delivery is answered from the store
			if !dedupe {
				third = 3
			}
			for i, want := range []struct {
				status int
				reply  string
				runs   int
			}{{500, "internal error", 1}, {200, "run 2", 2}, {200, fmt.Sprintf("run %d", third), third}} {
				status, got := redeliver(t, srv, wx, safe, ts, i, msg)
				mu.Lock()
				n := runs
				mu.Unlock()
				if status != want.status || n != want.runs || !strings.Contains(got, want.reply) {
					t.Errorf("delivery %d: %d %q, handler runs %d; want %d %q, %d", i+1, status, got, n, want.status, want.reply, want.runs)
				}
			}
		})
	}
}

// redeliver sends delivery i of the text push msg, signed at ts, as WeChat
// re-delivers it: the same request in plain mode, sealed afresh (with a
// nonce of its own) in safe mode, where a 200 reply with a body is checked
// and opened. It returns the status and the (plaintext) reply.
func redeliver(t *testing.T, srv *httptest.Server, wx wechat, safe bool, ts int64, i int, msg string) (int, string) {
	t.Helper()
	if !safe {
		q := signedQuery(testToken, strconv.FormatInt(ts, 10), "n")
		resp, body := do(t, srv.Client(), "POST", srv.URL+"/?"+q.Encode(), strings.NewReader(msg))
		return resp.StatusCode, body
	}
	resp, body := post(t, srv.Client(), srv.URL, wx.seal(t, ts, "n"+strconv.Itoa(i), msg, false))
	if resp.StatusCode == 200 && body != "" {
		body, _ = wx.open(t, []byte(body), false)
	}
	return resp.StatusCode, body
}
