package middleware

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware/dedupe"
	"github.com/wxcentral/wxcentral/util"
)

// TestReplayMemoryBounded checks that the replay memory of a Verify
// without a shared store is capped and forgets a triple once its timestamp
// has left the window.
func TestReplayMemoryBounded(t *testing.T) {
	const token = "tok"
	var mu sync.Mutex
	now := time.Unix(1714036504, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := Verify(token, WithClock(util.ClockFunc(clock)), WithLogger(slog.New(slog.DiscardHandler)))(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })).(*handler)
	mem := h.s.replayMem
	if mem == nil || mem.maxEntries != ReplayMaxEntries || h.s.replay != nil {
		t.Fatalf("replay memory %+v, store %v: want a memory of its own of at most ReplayMaxEntries triples", mem, h.s.replay)
	}
	if _, ok := h.s.dedupe.(*dedupe.Memory); !ok {
		t.Fatalf("dedupe store %T, want the default Memory", h.s.dedupe)
	}
	send := func(nonce string) {
		t.Helper()
		ts := strconv.FormatInt(clock().Unix(), 10)
		q := "signature=" + util.Signature(token, ts, nonce) + "&timestamp=" + ts + "&nonce=" + nonce
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/?"+q, strings.NewReader("<xml><MsgType>text</MsgType><MsgId>"+nonce+"</MsgId></xml>")))
		if w.Code != 200 {
			t.Fatalf("push %s: %d %q", nonce, w.Code, w.Body)
		}
	}
	for _, n := range []string{"1", "2", "3"} {
		send(n)
	}
	if got := mem.len(); got != 3 {
		t.Fatalf("%d triples remembered, want 3", got)
	}
	mu.Lock()
	now = now.Add(DefaultTimestampWindow + time.Second)
	mu.Unlock()
	send("4")
	if got := mem.len(); got != 1 {
		t.Errorf("%d triples remembered after the window, want 1", got)
	}
}

// TestAppendLower checks the replay key's signatures in lower case: as
// they are when they are, folded from the first upper-case letter on, and
// through strings.ToLower beyond ASCII.
func TestAppendLower(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"0a9f", "0a9f"},
		{"0A9F", "0a9f"},
		{"ab0CdE", "ab0cde"},
		{"aBÀ", "abà"},
		{"ÀB", "àb"},
	} {
		if got := string(appendLower([]byte("k|"), tt.in)); got != "k|"+tt.want {
			t.Errorf("appendLower(%q) = %q, want %q", tt.in, got, "k|"+tt.want)
		}
	}
}

// TestReplayWaitGivenUp sends a push twice at once: the second delivery
// waits for the first one's run, and when WeChat hangs up on it, it
// returns without running the handler, reporting or writing anything.
// Once the first has answered, a third delivery gets its reply.
func TestReplayWaitGivenUp(t *testing.T) {
	const token = "tok"
	now := time.Unix(1714036504, 0)
	var mu sync.Mutex
	var results []Result
	entered, release := make(chan struct{}), make(chan struct{})
	runs := 0
	h := Verify(token,
		WithClock(util.ClockFunc(func() time.Time { return now })),
		WithLogger(slog.New(slog.DiscardHandler)),
		WithResultFunc(func(_ *http.Request, res Result) { mu.Lock(); results = append(results, res); mu.Unlock() }),
	)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		runs++ // one run at a time: the others are the test's checks
		entered <- struct{}{}
		<-release
		io.WriteString(w, "handled")
	})).(*handler)
	ts := strconv.FormatInt(now.Unix(), 10)
	target := "/?signature=" + util.Signature(token, ts, "n") + "&timestamp=" + ts + "&nonce=n"
	const body = "<xml><MsgType>text</MsgType><MsgId>7</MsgId></xml>"
	deliver := func(ctx context.Context) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequestWithContext(ctx, "POST", target, strings.NewReader(body)))
		return w
	}
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- deliver(context.Background()) }()
	<-entered

	waiting := make(chan struct{}, 1)
	h.s.replayMem.mu.Lock()
	h.s.replayMem.waiting = func() { waiting <- struct{}{} }
	h.s.replayMem.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan *httptest.ResponseRecorder)
	go func() { second <- deliver(ctx) }()
	<-waiting
	cancel()
	if w := <-second; w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Errorf("the delivery WeChat gave up on wrote %d %q %v", w.Code, w.Body, w.Header())
	}
	mu.Lock()
	if len(results) != 1 {
		t.Errorf("%d results reported, want the first delivery's only", len(results))
	}
	mu.Unlock()

	release <- struct{}{}
	if w := <-first; w.Body.String() != "handled" {
		t.Fatalf("first delivery: %d %q", w.Code, w.Body)
	}
	if w := deliver(context.Background()); w.Body.String() != "handled" || runs != 1 {
		t.Errorf("third delivery: %d %q, handler ran %d times; want the stored reply, 1", w.Code, w.Body, runs)
	}
}
