package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/central"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

const (
	testAppID  = "wx0123456789abcdef"
	testSecret = "S3CRET-must-never-leak-0123456789"
	testKey    = "admin-key-0123456789abcdef"
)

// serveTest runs Serve in the background on free loopback ports and
// returns the addresses once it serves, a stop function, and Serve's
// result.
type serveTest struct {
	public, admin string
	cancel        context.CancelFunc
	done          chan error
}

// listenLoopback listens on a free loopback port; Serve closes it.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func startServe(t *testing.T, cfg config.Config, o Options) *serveTest {
	t.Helper()
	pub, adm := listenLoopback(t), listenLoopback(t)
	o.PublicListener, o.AdminListener = pub, adm
	ready := make(chan struct{})
	o.Ready = func(net.Addr, net.Addr) { close(ready) }
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := &serveTest{public: pub.Addr().String(), admin: adm.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { st.done <- Serve(ctx, cfg, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-st.done:
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return")
		}
	})
	select {
	case <-ready:
	case err := <-st.done:
		t.Fatalf("Serve: %v", err)
	}
	return st
}

func serveConfig(t *testing.T, apiBase string) config.Config {
	cfg := config.Default()
	cfg.AppID, cfg.AppSecret, cfg.Token = testAppID, testSecret, "cb-token"
	cfg.APIBase = apiBase
	cfg.Store = filepath.Join(t.TempDir(), "wechat.txt")
	return cfg
}

// firstLine sends req on a new connection to addr and returns the status
// line of the answer.
func firstLine(addr string, req []byte) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second)) // a failure, not a result
	go c.Write(req)
	return bufio.NewReader(c).ReadString('\n')
}

// Many connections sending oversized, unterminated header lines are
// answered 431 once past a small limit instead of each holding up to
// net/http's 1 MiB buffer until the header timeout.
func TestServeHeaderLimit(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret))
	defer fake.Close()
	st := startServe(t, serveConfig(t, fake.URL), Options{})
	for _, tt := range []struct {
		name, addr string
		pad        int
	}{{"public", st.public, 64 << 10}, {"admin", st.admin, 256 << 10}} {
		var wg sync.WaitGroup
		errs := make(chan string, 20)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + strings.Repeat("a", tt.pad) // never ends
				line, err := firstLine(tt.addr, []byte(req))
				if !strings.HasPrefix(line, "HTTP/1.1 431") {
					errs <- fmt.Sprintf("%q, %v", line, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("%s listener, a %d KiB unterminated header: %s, want 431", tt.name, tt.pad>>10, e)
		}
	}
	// A callback-sized header is still served.
	line, err := firstLine(st.public, []byte("GET /?echostr=x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "+strings.Repeat("a", 4<<10)+"\r\n\r\n"))
	if err != nil || strings.HasPrefix(line, "HTTP/1.1 431") {
		t.Errorf("a 4 KiB header: %q %v", line, err)
	}
}

// At shutdown a request waiting on a WeChat that hangs gets its 503 with
// the reason within the shutdown timeout, and Serve returns nil.
func TestServeShutdownAnswersWaitingRequests(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret))
	defer fake.Close()
	// The next token fetch hangs until the server gives up on it.
	fake.Fail(wechattest.PathToken, wechattest.Fault{Delay: time.Hour})
	// A valid stored token, so that the keeper fetches nothing at start:
	// the one fetch WeChat sees is the passive refresh below, which is in
	// flight once WeChat has seen it (a fetch at start-up would be seen
	// before the request was even connected, and shutdown raced its dial).
	cfg := serveConfig(t, fake.URL)
	const stored = "stored-token-valid-for-two-hours"
	now := time.Now()
	doc := fmt.Sprintf(`{"access_token":%q,"expires_in":%d,"fetched_at":%d}`,
		stored, now.Add(7140*time.Second).UnixMilli(), now.Add(-time.Minute).UnixMilli())
	if err := os.WriteFile(cfg.Store, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	st := startServe(t, cfg, Options{ShutdownTimeout: 2 * time.Second})

	type answer struct {
		code int
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+st.admin+"/v1/token/refresh", strings.NewReader(fmt.Sprintf(`{"stale":%q}`, stored)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- answer{code: resp.StatusCode, body: string(b)}
	}()
	for deadline := time.Now().Add(10 * time.Second); fake.Stats().Attempts[wechattest.PathToken] == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the passive refresh never reached WeChat") // a failure, not a timing result
		}
		time.Sleep(5 * time.Millisecond)
	}
	st.cancel()
	a := <-got
	if a.err != nil || a.code != 503 || !strings.Contains(a.body, "shutting down") {
		t.Errorf("the request waiting at shutdown: %d %q %v, want 503 saying the server is shutting down", a.code, a.body, a.err)
	}
	if err := <-st.done; err != nil {
		t.Errorf("Serve: %v, want nil", err)
	}
	st.done <- nil // for the cleanup
}

// Start-up retries keep one keeper: with WeChat refusing the credentials
// (40164), the credential cooldown holds, so the first minute sees one or
// two attempts, not one per rebuilt keeper; /healthz says why there is no
// token.
func TestServeKeepsOneKeeperThroughStartup(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret),
		wechattest.WithClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)))
	defer fake.Close()
	fake.Fail(wechattest.PathToken, wechattest.Fault{Errcode: 40164, Times: 1000})
	built := make(chan *central.Admin, 1)
	st := startServe(t, serveConfig(t, fake.URL), Options{Clock: fake, adminBuilt: func(a *central.Admin) { built <- a }})
	admin := <-built
	first, ok := admin.Keeper().(*wechat.Wechat)
	if !ok || first == nil {
		t.Fatalf("the admin serves %T %v, want the keeper", admin.Keeper(), admin.Keeper())
	}
	attempts := func() int { return fake.Stats().Errors[wechattest.PathToken][40164] }
	// One fake minute in 2 s steps, with a caller asking each step; each
	// GET waits for the attempt it may cause. The old start-up loop
	// rebuilt the keeper on every failure, each with a fresh cooldown.
	for i := range 30 {
		fake.Advance(2 * time.Second)
		resp, err := http.Get("http://" + st.admin + "/v1/token")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 502 && resp.StatusCode != 503 {
			t.Fatalf("GET /v1/token without a token: %d, want 502 or 503", resp.StatusCode)
		}
		if k := admin.Keeper(); k != central.Keeper(first) {
			t.Fatalf("step %d: the admin serves keeper %p, want the first one, %p: one keeper for the life of the server", i, k, first)
		}
	}
	if attempts() == 0 {
		t.Fatal("no token attempt: the callers' GETs did not reach the keeper")
	}
	if n := attempts(); n > 2 {
		t.Errorf("%d token attempts in the first minute with 40164, want at most 2", n)
	}
	resp, err := http.Get("http://" + st.admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "40164") {
		t.Errorf("healthz: %d %s, want 503 naming 40164", resp.StatusCode, b)
	}
}

// A file store that cannot work ends Serve before it serves, with a
// *config.VarError naming WECHAT_STORE; a Redis URL is not checked here.
func TestCheckStore(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "wechat.txt")
	if err := os.WriteFile(file, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(dir, "ro")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	// A link whose target's directory is missing: the store writes next
	// to the target, so it would retry forever.
	dangling := filepath.Join(dir, "link.txt")
	if err := os.Symlink(filepath.Join(dir, "gone", "wechat.txt"), dangling); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, store, want string
	}{
		{"missing directory", filepath.Join(dir, "nope", "wechat.txt"), "does not exist"},
		{"link into a missing directory", dangling, "gone\" does not exist"},
		{"a directory", dir, "is a directory"},
		{"under a file", filepath.Join(file, "wechat.txt"), "not a directory"},
		{"read-only directory", filepath.Join(readOnly, "wechat.txt"), "cannot create files"},
	}
	if runtime.GOOS == "linux" {
		// A directory where no one, root included, can create a file: the
		// case above is skipped for root, who writes anywhere else.
		tests = append(tests, struct{ name, store, want string }{"unwritable even for root", "/proc/wechat.txt", "cannot create files"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "read-only directory" && os.Geteuid() == 0 {
				t.Skip("root writes anywhere")
			}
			err := checkStore(tt.store)
			var ve *config.VarError
			if !errors.As(err, &ve) || ve.Var != "WECHAT_STORE" || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("checkStore(%q) = %v, want a WECHAT_STORE error saying %q", tt.store, err, tt.want)
			}
			cfg := serveConfig(t, "http://127.0.0.1:1")
			cfg.Store = tt.store
			cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
			err = Serve(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler)})
			if !errors.As(err, &ve) || ve.Var != "WECHAT_STORE" {
				t.Errorf("Serve with store %q = %v, want a WECHAT_STORE *config.VarError", tt.store, err)
			}
		})
	}
	for _, ok := range []string{file, filepath.Join(dir, "new.txt"), "redis://127.0.0.1:1/0"} {
		if err := checkStore(ok); err != nil {
			t.Errorf("checkStore(%q) = %v, want nil", ok, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("the check left files behind: %v", entries)
	}
}

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// With WECHAT_TRUSTED_PROXIES naming the proxy, the callback middleware
// and the admin API log the client's address from X-Forwarded-For; from
// anyone else the header is not believed.
func TestServeTrustedProxies(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret))
	defer fake.Close()
	for _, tt := range []struct {
		trusted, remote string
	}{{"127.0.0.1", "remote=203.0.113.9 "}, {"", "remote=127.0.0.1:"}, {"10.0.0.0/8", "remote=127.0.0.1:"}} {
		var logs lockedBuffer
		cfg := serveConfig(t, fake.URL)
		cfg.AdminKey = testKey
		cfg.TrustedProxies = tt.trusted
		st := startServe(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		for _, u := range []string{"http://" + st.public + "/?signature=forged&timestamp=1&nonce=2&echostr=x",
			"http://" + st.admin + "/v1/token"} {
			req, _ := http.NewRequest("GET", u, nil)
			req.Header.Set("X-Forwarded-For", "198.51.100.1, 203.0.113.9")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 403 && resp.StatusCode != 401 {
				t.Errorf("%s: %d, want a refusal", u, resp.StatusCode)
			}
		}
		st.cancel()
		<-st.done
		st.done <- nil
		for _, msg := range []string{"wechat callback rejected", "central: admin request refused"} {
			var line string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, msg) {
					line = l
				}
			}
			if !strings.Contains(line, tt.remote) || strings.Contains(line, "198.51.100.1") {
				t.Errorf("trusted %q: %q logged as %q, want %s…", tt.trusted, msg, line, tt.remote)
			}
		}
	}
}

// Serve without WECHAT_ADMIN_KEY answers loopback Hosts and those of
// WECHAT_ADMIN_HOSTS, and refuses a DNS rebinding name.
func TestServeAdminHosts(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret))
	defer fake.Close()
	cfg := serveConfig(t, fake.URL)
	cfg.AdminHosts = "wxcentral.internal"
	st := startServe(t, cfg, Options{})
	for _, tt := range []struct {
		host string
		want int
	}{{"", 200}, {"localhost:3101", 200}, {"wxcentral.internal:3101", 200}, {"rebind.attacker.example:3101", 403}} {
		req, _ := http.NewRequest("GET", "http://"+st.admin+"/metrics", nil)
		if tt.host != "" {
			req.Host = tt.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("Host %q: %d, want %d", tt.host, resp.StatusCode, tt.want)
		}
	}
}

// Many connections that each send a large, unterminated header (under
// net/http's 1 MiB default, as a slowloris would) leave the server's heap
// small: each is answered 431 once past the public listener's 16 KiB
// instead of being buffered until the header timeout. The heap is sampled
// while they are open; sampling can only miss a peak, so a pass is never
// a false one.
func TestServeHeaderMemoryBounded(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret))
	defer fake.Close()
	st := startServe(t, serveConfig(t, fake.URL), Options{})
	const (
		conns = 200
		pad   = 900 << 10
		bound = 48 << 20 // with 1 MiB headers allowed: about conns × pad = 176 MiB
	)
	req := []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + strings.Repeat("a", pad)) // never ends
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	runtime.GC()
	base := heap()
	var peak atomic.Uint64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if h := heap(); h > base && h-base > peak.Load() {
				peak.Store(h - base)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	var not431 atomic.Int64
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if line, _ := firstLine(st.public, req); !strings.HasPrefix(line, "HTTP/1.1 431") {
				not431.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	if n := not431.Load(); n > 0 {
		t.Errorf("%d of %d connections with a %d KiB unterminated header were not answered 431", n, conns, pad>>10)
	}
	if p := peak.Load(); p > bound {
		t.Errorf("the heap grew by %d MiB under %d connections with %d KiB headers, want at most %d MiB",
			p>>20, conns, pad>>10, bound>>20)
	}
}

// Options.Handler replaces the reference handler behind the middleware,
// and gets the parsed message.
func TestServeHandler(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret))
	defer fake.Close()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, ok := message.FromContext(r.Context())
		if !ok {
			t.Error("the handler got no parsed message")
		}
		io.WriteString(w, "mine: "+m.Content)
	})
	st := startServe(t, serveConfig(t, fake.URL), Options{Handler: h})
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "4242"
	q := url.Values{"signature": {util.Signature("cb-token", ts, nonce)}, "timestamp": {ts}, "nonce": {nonce}, "openid": {"o-user"}}
	body := `<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[o-user]]></FromUserName>` +
		`<CreateTime>1714112445</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>1</MsgId></xml>`
	resp, err := http.Post("http://"+st.public+"/?"+q.Encode(), "text/xml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "mine: hi" {
		t.Errorf("callback: %d %q, want 200 \"mine: hi\" from Options.Handler", resp.StatusCode, b)
	}
}

// failingListener is a listener whose Accept fails once the test says so.
type failingListener struct {
	net.Listener
	fail chan struct{}
}

var errAcceptBroke = errors.New("accept broke")

func (l *failingListener) Accept() (net.Conn, error) {
	<-l.fail
	return nil, errAcceptBroke
}

// A listener that fails shuts the whole server down (the admin listener
// too, and the keeper), and Serve returns that listener's error.
func TestServeListenerFailure(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret))
	defer fake.Close()
	pub, adm := listenLoopback(t), listenLoopback(t)
	fl := &failingListener{Listener: pub, fail: make(chan struct{})}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Serve(t.Context(), serveConfig(t, fake.URL), Options{PublicListener: fl, AdminListener: adm,
			Logger: slog.New(slog.DiscardHandler), Ready: func(net.Addr, net.Addr) { close(ready) }})
	}()
	<-ready
	resp, err := http.Get("http://" + adm.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("the admin listener before the failure: %v", err)
	}
	resp.Body.Close()
	close(fl.fail)
	select {
	case err := <-done:
		if !errors.Is(err, errAcceptBroke) || !strings.Contains(err.Error(), "public listener") {
			t.Errorf("Serve: %v, want the public listener's error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after a listener failed") // a failure, not a timing result
	}
	if c, err := net.Dial("tcp", adm.Addr().String()); err == nil {
		c.Close()
		t.Error("the admin listener still accepts after Serve returned")
	}
}
