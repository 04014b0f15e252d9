package wechat

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

const (
	testAppID  = "wx0123456789abcdef"
	testSecret = "S3CRET-must-never-leak-0123456789"
)

// epoch is the frozen start of the fake clock in most tests.
var epoch = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// newFake starts a fake WeChat with the test app and a frozen clock.
func newFake(t testing.TB, opts ...wechattest.Option) *wechattest.Server {
	t.Helper()
	srv := wechattest.NewServer(append([]wechattest.Option{
		wechattest.WithApp(testAppID, testSecret), wechattest.WithClock(epoch),
	}, opts...)...)
	t.Cleanup(srv.Close)
	return srv
}

// countingTransport counts the requests per path that reach the network.
type countingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[r.URL.Path]++
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

func (c *countingTransport) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is one keeper's test setup.
type env struct {
	srv   *wechattest.Server
	opts  Options
	store *FileStore
	path  string
	rt    *countingTransport
	logs  *syncBuffer
}

// newEnv returns options for a keeper on srv with its own wechat.txt, a
// request counter and captured debug logs.
func newEnv(t testing.TB, srv *wechattest.Server) *env {
	t.Helper()
	e := &env{srv: srv, path: filepath.Join(t.TempDir(), "wechat.txt"), logs: &syncBuffer{}}
	e.rt = &countingTransport{base: srv.Client().Transport}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.store = NewFileStore(e.path, logger)
	e.opts = Options{
		AppID: testAppID, AppSecret: testSecret, Store: e.store,
		APIBase: srv.URL, HTTPClient: &http.Client{Transport: e.rt, Timeout: 2 * time.Second},
		Clock: srv, Logger: logger, RetryBackoff: time.Millisecond,
	}
	return e
}

// eventually polls cond until it holds or 5 s pass; for work that happens
// in a background goroutine.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// newKeeper is New for tests: the keeper is closed when the test ends,
// before the test's temporary directory is removed, so that no background
// refresh writes into a directory being deleted.
func newKeeper(t testing.TB, o Options) (*Wechat, error) {
	t.Helper()
	w, err := New(t.Context(), o)
	if w != nil {
		t.Cleanup(w.Close)
	}
	return w, err
}

// openKeeper is Open for tests, with waits (retry back-off, Run's pauses)
// that advance the fake clock instead of sleeping: a test that calls the
// keeper from one goroutine at a time, and lets background refreshes end
// before it moves on (see settle), is deterministic in fake time.
func openKeeper(t testing.TB, e *env) *Wechat {
	t.Helper()
	w, err := Open(t.Context(), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	w.sleep = func(ctx context.Context, d time.Duration) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		e.srv.Advance(d)
		return nil
	}
	return w
}

// settle waits until no background refresh of w runs.
func settle(t testing.TB, w *Wechat) {
	t.Helper()
	eventually(t, "background refreshes to end", func() bool {
		return !w.token.busy.Load() && !w.tickets[0].busy.Load() && !w.tickets[1].busy.Load()
	})
}

// countLines counts the lines of logs that contain every one of parts.
func countLines(logs string, parts ...string) int {
	n := 0
	for line := range strings.Lines(logs) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}
