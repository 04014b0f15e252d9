package redisstore

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/wxcentral/wxcentral/wechat"
)

// TestGoRedisLogsThroughSlog: go-redis's own line about a failed dial
// arrives as a JSON record of the store's logger, not as a raw line on
// stderr.
func TestGoRedisLogsThroughSlog(t *testing.T) {
	// go-redis's logger is global: start from "not routed yet", and leave
	// it routed to nowhere for the tests that follow.
	libraryLogs.Store(false)
	t.Cleanup(func() {
		libraryLogs.Store(false)
		routeLibraryLogs(slog.New(slog.DiscardHandler))
	})
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var mu sync.Mutex
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	s, err := Open("redis://"+addr+"?max_retries=-1", "wxlogs", WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Load(t.Context(), wechat.KindAccessToken); err == nil {
		t.Fatal("Load from a closed port succeeded")
	}

	mu.Lock()
	defer mu.Unlock()
	var found bool
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		if rec["component"] == "go-redis" && strings.Contains(rec["msg"].(string), "dial") {
			found = true
			if rec["level"] != "WARN" {
				t.Errorf("go-redis record at level %v, want WARN: %s", rec["level"], line)
			}
		}
	}
	if !found {
		t.Errorf("no JSON record of go-redis's failed dial in the store's log:\n%s", buf.String())
	}
}
