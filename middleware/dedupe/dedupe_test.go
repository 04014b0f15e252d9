package dedupe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware/message"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// eventually polls cond until it holds; it only synchronises the test with
// goroutines it started and fails after 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type result struct {
	r      Reply
	shared bool
	err    error
}

func (m *Memory) waiting() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.waiters
}

func TestAbandonRunsAgain(t *testing.T) {
	for _, tt := range []struct {
		name string
		fail func() (Reply, error)
	}{
		{"error", func() (Reply, error) { return Reply{}, errors.New("boom") }},
		{"panic", func() (Reply, error) { panic("boom") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &Memory{}
			ctx := context.Background()
			func() {
				defer func() { recover() }()
				_, _, err := Do(ctx, m, "k", 0, func(context.Context) (Reply, error) { return tt.fail() })
				if err == nil {
					t.Error("Do hid the handler's error")
				}
			}()
			r, shared, err := Do(ctx, m, "k", 0, func(context.Context) (Reply, error) { return Reply{Body: []byte("second")}, nil })
			if err != nil || shared || string(r.Body) != "second" {
				t.Fatalf("after a failure, Do = %q, %v, %v; want the handler to run again", r.Body, shared, err)
			}
		})
	}
}

func TestWaiterTakesOverAbandonedClaim(t *testing.T) {
	m := &Memory{}
	ctx := context.Background()
	if first, _ := m.Begin(ctx, "k", 0); !first {
		t.Fatal("Begin: not first")
	}
	done := make(chan result, 1)
	go func() {
		r, shared, err := Do(ctx, m, "k", 0, func(context.Context) (Reply, error) { return Reply{Body: []byte("mine")}, nil })
		done <- result{r, shared, err}
	}()
	eventually(t, "the waiter", func() bool { return m.waiting() == 1 })
	m.Abandon(ctx, "k")
	res := <-done
	if res.err != nil || res.shared || string(res.r.Body) != "mine" {
		t.Fatalf("Do = %+v; want the waiter to run the handler itself", res)
	}
}

func TestWaitContext(t *testing.T) {
	m := &Memory{}
	ctx, cancel := context.WithCancel(context.Background())
	m.Begin(ctx, "k", 0)
	done := make(chan error, 1)
	go func() { _, err := m.Wait(ctx, "k"); done <- err }()
	eventually(t, "the waiter", func() bool { return m.waiting() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	if n := m.waiting(); n != 0 {
		t.Fatalf("%d waiters left", n)
	}
	if _, err := m.Wait(context.Background(), "none"); !errors.Is(err, ErrAbandoned) {
		t.Fatalf("Wait(unknown) = %v, want ErrAbandoned", err)
	}
}

func TestMemoryExpiry(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1714112445, 0)}
	m := &Memory{Clock: clk}
	ctx := context.Background()
	steps := []struct {
		advance   time.Duration
		op        string
		wantFirst bool
	}{
		{0, "begin", true},
		{10 * time.Second, "begin", false}, // WeChat's retry: held
		{0, "finish", false},               //
		{19 * time.Second, "begin", false}, // 29 s: the reply is still served
		{1 * time.Second, "begin", true},   // 30 s: expired, claimable again
		{29999 * time.Millisecond, "begin", false},
		{time.Millisecond, "begin", true},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		switch s.op {
		case "begin":
			first, err := m.Begin(ctx, "k", 30*time.Second)
			if err != nil || first != s.wantFirst {
				t.Fatalf("step %d: Begin = %v, %v; want %v", i, first, err, s.wantFirst)
			}
		case "finish":
			if err := m.Finish(ctx, "k", Reply{Body: []byte("r")}); err != nil {
				t.Fatal(err)
			}
			if r, err := m.Wait(ctx, "k"); err != nil || string(r.Body) != "r" {
				t.Fatalf("Wait = %q, %v", r.Body, err)
			}
		}
	}
	// An expired claim is not waited on, and sweeping it wakes its waiters.
	m.Begin(ctx, "p", time.Second)
	done := make(chan error, 1)
	go func() { _, err := m.Wait(ctx, "p"); done <- err }()
	eventually(t, "the waiter", func() bool { return m.waiting() == 1 })
	clk.Advance(time.Second)
	if _, err := m.Wait(ctx, "p"); !errors.Is(err, ErrAbandoned) {
		t.Errorf("Wait on an expired claim = %v", err)
	}
	m.Begin(ctx, "other", 0) // sweeps
	if err := <-done; !errors.Is(err, ErrAbandoned) {
		t.Errorf("the waiter of an expired claim got %v, want ErrAbandoned", err)
	}
}

func TestMemoryBounds(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	ctx := context.Background()
	t.Run("entries", func(t *testing.T) {
		m := &Memory{MaxEntries: 3, Clock: clk}
		for i := range 10 {
			clk.Advance(time.Millisecond)
			if first, _ := m.Begin(ctx, fmt.Sprint(i), time.Minute); !first {
				t.Fatalf("Begin(%d) not first", i)
			}
			if n := m.Len(); n > 3 {
				t.Fatalf("%d entries, max 3", n)
			}
		}
		// The newest survive, the oldest were evicted.
		if first, _ := m.Begin(ctx, "9", time.Minute); first {
			t.Error("the newest claim was evicted")
		}
		if first, _ := m.Begin(ctx, "0", time.Minute); !first {
			t.Error("the oldest claim was kept")
		}
	})
	t.Run("bytes", func(t *testing.T) {
		const max = 8 << 10
		m := &Memory{MaxBytes: max, Clock: clk}
		body := make([]byte, 1000)
		for i := range 100 {
			key := fmt.Sprint(i)
			m.Begin(ctx, key, time.Minute)
			m.Finish(ctx, key, Reply{Body: body})
			m.mu.Lock()
			b := m.bytes
			m.mu.Unlock()
			if b > max {
				t.Fatalf("%d bytes held, max %d", b, max)
			}
		}
		if n := m.Len(); n < 5 || n > 8 {
			t.Errorf("%d entries of 1 KB under 8 KiB", n)
		}
		if r, err := m.Wait(ctx, "99"); err != nil || len(r.Body) != 1000 {
			t.Errorf("the newest reply: %d bytes, %v", len(r.Body), err)
		}
	})
}

// withMessage parses the body into a message and puts it in the context,
// as the callback middleware does.
func withMessage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m, err := message.Parse(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r.WithContext(message.NewContext(r.Context(), m)))
	})
}

func TestMiddleware(t *testing.T) {
	var runs atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, _ := message.FromContext(r.Context())
		n := runs.Add(1)
		if m.Content == "slow" && n == 1 {
			close(started)
			<-release
		}
		if m.Content == "fail" && n <= 2 {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", message.ContentType)
		w.Write(m.ReplyText(time.Unix(1714112450, 0), fmt.Sprintf("run %d", n)))
	})
	store := &Memory{}
	srv := httptest.NewServer(withMessage(Middleware(store)(app)))
	defer srv.Close()

	push := func(content string, msgID int) (int, string) {
		body := fmt.Sprintf(`<xml><ToUserName>gh_1</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>%s</Content><MsgId>%d</MsgId></xml>`, content, msgID)
		resp, err := http.Post(srv.URL, "text/xml", strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 && resp.Header.Get("Content-Type") != message.ContentType {
			t.Errorf("Content-Type = %q", resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode, string(b)
	}

	// Three deliveries of a slow message: one run, one reply.
	type res struct {
		code int
		body string
	}
	out := make(chan res, 3)
	go func() { c, b := push("slow", 1); out <- res{c, b} }()
	<-started
	go func() { c, b := push("slow", 1); out <- res{c, b} }()
	eventually(t, "the re-delivery to wait", func() bool { return store.waiting() == 1 })
	close(release)
	go func() { c, b := push("slow", 1); out <- res{c, b} }()
	for range 3 {
		r := <-out
		if r.code != 200 || !strings.Contains(r.body, "<![CDATA[run 1]]>") {
			t.Errorf("delivery = %d %q, want the first run's reply", r.code, r.body)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times for one MsgId", n)
	}

	// Another MsgId runs the handler.
	if _, body := push("hello", 2); !strings.Contains(body, "run 2") {
		t.Errorf("second message = %q", body)
	}
	// A 5xx is not stored: each delivery runs the handler until one succeeds.
	runs.Store(0)
	for i, want := range []int{500, 500, 200, 200} {
		code, body := push("fail", 3)
		if code != want {
			t.Errorf("delivery %d: status %d, want %d (%q)", i, code, want, body)
		}
	}
	if n := runs.Load(); n != 3 {
		t.Errorf("failing handler ran %d times, want 3", n)
	}
}

// TestMiddlewareHeaders checks that the delivery that runs the handler
// sends every header it set, and a re-delivery its Content-Type only.
func TestMiddlewareHeaders(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", message.ContentType)
		w.Header().Set("X-Trace", "t1")
		io.WriteString(w, "<xml/>")
	})
	h := withMessage(Middleware(&Memory{})(app))
	body := `<xml><ToUserName>gh_1</ToUserName><MsgType>text</MsgType><MsgId>7</MsgId></xml>`
	for i, wantTrace := range []string{"t1", ""} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/", strings.NewReader(body)))
		if w.Code != 200 || w.Body.String() != "<xml/>" || w.Header().Get("Content-Type") != message.ContentType {
			t.Errorf("delivery %d: %d %q %v", i+1, w.Code, w.Body, w.Header())
		}
		if got := w.Header().Get("X-Trace"); got != wantTrace {
			t.Errorf("delivery %d: X-Trace %q, want %q", i+1, got, wantTrace)
		}
	}
}

// TestMiddlewareNoReply checks that a handler that wrote nothing leaves
// nothing stored and nothing written: the next delivery runs it again, and
// a framework around the middleware (here one that, like echo's
// WrapMiddleware, answers a handler's error after the handler returns) can
// still send its own answer.
func TestMiddlewareNoReply(t *testing.T) {
	var runs atomic.Int32
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		if n == 1 {
			// Fail the way an echo handler does: return an error and
			// write nothing.
			*r.Context().Value(errKey{}).(*error) = errors.New("database down")
			return
		}
		m, _ := message.FromContext(r.Context())
		w.Header().Set("Content-Type", message.ContentType)
		w.Write(m.ReplyText(time.Unix(1714112450, 0), fmt.Sprintf("run %d", n)))
	})
	inner := withMessage(Middleware(&Memory{})(app))
	framework := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		inner.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), errKey{}, &err)))
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	})
	srv := httptest.NewServer(framework)
	defer srv.Close()

	body := `<xml><ToUserName>gh_1</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>9</MsgId></xml>`
	for i, want := range []struct {
		code int
		body string
		runs int32
	}{
		{500, "internal error\n", 1},  // the framework's answer reaches WeChat
		{200, "<![CDATA[run 2]]>", 2}, // the re-delivery runs the handler
		{200, "<![CDATA[run 2]]>", 2}, // and its reply is kept for the next
	} {
		resp, err := srv.Client().Post(srv.URL, "text/xml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want.code || !strings.Contains(string(b), want.body) {
			t.Errorf("delivery %d: %d %q, want %d %q", i+1, resp.StatusCode, b, want.code, want.body)
		}
		if n := runs.Load(); n != want.runs {
			t.Errorf("after delivery %d the handler ran %d times, want %d", i+1, n, want.runs)
		}
	}
}

type errKey struct{}

func TestMiddlewarePassThrough(t *testing.T) {
	runs := 0
	h := Middleware(&Memory{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { runs++ }))
	for range 2 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/", nil))
	}
	if runs != 2 {
		t.Errorf("a request without a message ran the handler %d times, want 2", runs)
	}
}

func BenchmarkMemoryDo(b *testing.B) {
	m := &Memory{}
	ctx := context.Background()
	fn := func(context.Context) (Reply, error) { return Reply{Body: []byte("success")}, nil }
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, _, err := Do(ctx, m, strconv.Itoa(i), time.Minute, fn); err != nil {
			b.Fatal(err)
		}
	}
}
