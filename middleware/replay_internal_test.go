package middleware

import (
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
