package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

const (
	appID    = "wx0123456789abcdef"
	secret   = "S3CRET-must-never-leak-0123456789"
	cbToken  = "callback-token-for-tests"
	adminKey = "admin-key-0123456789abcdef"
)

// bin is the wxcentral binary TestMain builds.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wxcentral-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "wxcentral")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// serialLockFile is wechat/internal/serial.LockFile, which this package
// cannot import (Go's internal rule): the real-time multi-process tests
// here hold the same machine-wide lock as those of packages wechat and
// wechat/redisstore, so that `go test ./...`, which runs the packages'
// test binaries at once, never runs two of them side by side.
const serialLockFile = "wxcentral-serial-tests.lock"

// serial makes t wait for, and hold until it ends, that lock.
func serial(t *testing.T) {
	t.Helper()
	path := filepath.Join(os.TempDir(), serialLockFile)
	fl := flock.New(path, flock.SetPermissions(0o666))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if ok, err := fl.TryLockContext(ctx, 50*time.Millisecond); err != nil || !ok {
		t.Fatalf("waiting for %s: %v", path, err)
	}
	t.Cleanup(func() { fl.Unlock(); fl.Close() })
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer collects a process's output.
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

// proc is a running wxcentral.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
	public, admin  string // base URLs
}

// environ is the test's environment without any WECHAT_ variable, plus env.
func environ(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WECHAT_") {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// start runs wxcentral with args and env; it is killed at the end of the
// test if still running.
func start(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = environ(env)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("wxcentral %v stderr:\n%s", args, p.stderr.String())
		}
	})
	return p
}

// wait waits for the process to exit and returns its status.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("wxcentral did not exit within %v", d)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// startServer starts `wxcentral serve` on free ports against the fake and waits
// until both listeners answer.
func startServer(t *testing.T, apiBase string, store string, extra map[string]string) *proc {
	t.Helper()
	pub, adm := freeAddr(t), freeAddr(t)
	env := map[string]string{
		"WECHAT_APP_ID": appID, "WECHAT_APP_SECRET": secret, "WECHAT_TOKEN": cbToken,
		"WECHAT_API_BASE": apiBase, "WECHAT_STORE": store,
		"WECHAT_LISTEN": pub, "WECHAT_ADMIN_LISTEN": adm, "WECHAT_ADMIN_KEY": adminKey,
	}
	for k, v := range extra {
		env[k] = v
	}
	p := start(t, env, "serve")
	p.public, p.admin = "http://"+pub, "http://"+adm
	waitFor(t, "the server to listen", func() bool {
		resp, err := http.Get(p.admin + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return p
}

// waitFor polls cond every 20 ms for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// call makes an admin request and decodes the JSON answer.
func call(t *testing.T, method, u, key, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, u, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(adminKey)) {
		t.Errorf("%s %s shows a secret", method, u)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil && !strings.HasSuffix(u, "/metrics") {
		t.Errorf("%s %s: not JSON: %s", method, u, raw)
	}
	return resp.StatusCode, m
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// seed writes a wechat.txt holding a token the fake issued, fetched a
// minute ago (so a passive refresh of it may fetch at once).
func seed(t *testing.T, fake *wechattest.Platform) (path, token string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "wechat.txt")
	token = fake.IssueToken(appID)
	now := fake.Now()
	doc := fmt.Sprintf(`{"access_token":%q,"expires_in":%d,"fetched_at":%d}`,
		token, now.Add(7140*time.Second).UnixMilli(), now.Add(-time.Minute).UnixMilli())
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, token
}

func metric(t *testing.T, text, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("metrics lack %s", name)
	}
	return m[1]
}

func TestServeAdminAPI(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(appID, secret))
	defer fake.Close()
	store, seeded := seed(t, fake.Platform)
	p := startServer(t, fake.URL, store, nil)
	fetches := func() int { return fake.Stats().Fetches[wechattest.PathToken] }
	base := fetches() // the seeding IssueToken

	// GET /v1/token: the stored token is adopted, not fetched.
	code, m := call(t, "GET", p.admin+"/v1/token", adminKey, "")
	if code != 200 || m["access_token"] != seeded {
		t.Fatalf("GET /v1/token: %d %v", code, m)
	}
	if in, _ := m["expires_in"].(float64); in < 7000 || in > 7140 {
		t.Errorf("expires_in %v", m["expires_in"])
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(m["expires_at"])); err != nil {
		t.Errorf("expires_at: %v", err)
	}
	for _, tt := range []struct{ path, key string }{{"/v1/token", ""}, {"/v1/token", "wrong-key-0123456789abc"}, {"/v1/ticket/jsapi", ""}} {
		if code, m := call(t, "GET", p.admin+tt.path, tt.key, ""); code != 401 || m["error"] == nil {
			t.Errorf("GET %s with key %q: %d %v, want 401", tt.path, tt.key, code, m)
		}
	}
	if code, _ := call(t, "POST", p.admin+"/v1/token/refresh", "", `{"stale":"x"}`); code != 401 {
		t.Errorf("POST refresh without a key: %d", code)
	}

	// Ticket and JS-SDK shapes.
	code, m = call(t, "GET", p.admin+"/v1/ticket/jsapi", adminKey, "")
	if code != 200 || m["ticket"] == nil || m["expires_in"] == nil || m["expires_at"] == nil {
		t.Errorf("GET /v1/ticket/jsapi: %d %v", code, m)
	}
	code, m = call(t, "GET", p.admin+"/v1/jssdk/config?url="+url.QueryEscape("https://example.com/a?b=1"), adminKey, "")
	if code != 200 || m["appId"] != appID || m["nonceStr"] == nil || m["timestamp"] == nil || len(fmt.Sprint(m["signature"])) != 40 {
		t.Errorf("GET /v1/jssdk/config: %d %v", code, m)
	}
	if code, _ := call(t, "GET", p.admin+"/v1/jssdk/config", adminKey, ""); code != 400 {
		t.Errorf("jssdk without url: %d, want 400", code)
	}
	_, text := get(t, p.admin+"/metrics")
	okBefore := metric(t, text, `wxcentral_token_fetches_total{app_id="`+appID+`",result="ok"}`)

	// Passive refresh of the current token: one fetch, a new token.
	code, m = call(t, "POST", p.admin+"/v1/token/refresh", adminKey, fmt.Sprintf(`{"stale":%q}`, seeded))
	if code != 200 || m["access_token"] == seeded || m["access_token"] == nil {
		t.Fatalf("refresh of the current token: %d %v", code, m)
	}
	if fetches() != base+1 {
		t.Errorf("refresh of the current token made %d fetches, want 1", fetches()-base)
	}
	fresh := m["access_token"]
	// Of an outdated token: the current one back, no fetch.
	code, m = call(t, "POST", p.admin+"/v1/token/refresh", adminKey, fmt.Sprintf(`{"stale":%q}`, seeded))
	if code != 200 || m["access_token"] != fresh {
		t.Errorf("refresh of an outdated token: %d %v", code, m)
	}
	if fetches() != base+1 {
		t.Errorf("refresh of an outdated token fetched")
	}
	if code, m = call(t, "GET", p.admin+"/v1/token", adminKey, ""); m["access_token"] != fresh {
		t.Errorf("GET /v1/token after the refresh: %d %v", code, m)
	}

	// /healthz and metrics that moved.
	if code, m := call(t, "GET", p.admin+"/healthz", "", ""); code != 200 || m["status"] != "ok" {
		t.Errorf("healthz: %d %v", code, m)
	}
	// Callbacks: a genuine check gets echostr, a forged one 403.
	ts := fmt.Sprint(time.Now().Unix())
	if code, body := get(t, p.public+"/?signature="+util.Signature(cbToken, ts, "7")+"&timestamp="+ts+"&nonce=7&echostr=hi-there"); code != 200 || body != "hi-there" {
		t.Errorf("genuine callback check: %d %q", code, body)
	}
	if code, _ := get(t, p.public+"/?signature="+util.Signature("guess", ts, "7")+"&timestamp="+ts+"&nonce=7&echostr=x"); code != 403 {
		t.Errorf("forged callback check: %d, want 403", code)
	}
	_, text = get(t, p.admin+"/metrics")
	if okAfter := metric(t, text, `wxcentral_token_fetches_total{app_id="`+appID+`",result="ok"}`); okAfter == okBefore {
		t.Errorf("wxcentral_token_fetches_total{result=\"ok\"} did not move: %s", okAfter)
	}
	for _, name := range []string{
		`wxcentral_token_refreshes_total{app_id="` + appID + `",kind="passive",outcome="fetched"}`,
		`wxcentral_token_refreshes_total{app_id="` + appID + `",kind="passive",outcome="adopted"}`,
		`wxcentral_callback_checks_total{app_id="` + appID + `",outcome="echo"}`,
		`wxcentral_callback_checks_total{app_id="` + appID + `",outcome="bad_signature"}`,
	} {
		if v := metric(t, text, name); v != "1" {
			t.Errorf("%s = %s, want 1", name, v)
		}
	}
	for _, name := range []string{`wxcentral_token_quota_used{app_id="` + appID + `"}`, `wxcentral_token_quota_left{app_id="` + appID + `"}`, `wxcentral_token_expiry_seconds{app_id="` + appID + `"}`,
		`wxcentral_admin_request_duration_seconds_count{code="401",route="/v1/token"}`} {
		metric(t, text, name)
	}

	// simulate against the running server: passes with the token, fails
	// with another.
	for _, tt := range []struct {
		token string
		want  int
	}{{cbToken, 0}, {"not-the-token", 1}} {
		s := start(t, nil, "simulate", "-url", p.public+"/", "-token", tt.token)
		if got := s.wait(t, 20*time.Second); got != tt.want {
			t.Errorf("simulate with token %q: exit %d, want %d\n%s", tt.token, got, tt.want, s.stdout.String())
		}
	}

	// A clean stop.
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if logs := p.stderr.String(); strings.Contains(logs, secret) || strings.Contains(logs, adminKey) || strings.Contains(logs, seeded) {
		t.Error("the log shows a secret or a token")
	}
}

func TestServeHealthzRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("TestServeHealthzRecovers: slow (waits out the keeper's real start-up back-off (about 6 s)); run without -short")
	}
	t.Parallel() // it waits on real time, not the CPU: alongside the other such test
	fake := wechattest.NewServer(wechattest.WithApp(appID, secret))
	defer fake.Close()
	// WeChat is busy for the first six calls: the first start-up attempt
	// (four tries) fails, the server keeps serving and tries again.
	fake.Fail(wechattest.PathToken, wechattest.Fault{Errcode: -1, Times: 6})
	p := startServer(t, fake.URL, filepath.Join(t.TempDir(), "wechat.txt"), nil)
	code, m := call(t, "GET", p.admin+"/healthz", "", "")
	if code != 503 || m["error"] == nil {
		t.Fatalf("healthz while WeChat fails: %d %v, want 503", code, m)
	}
	if code, _ := call(t, "GET", p.admin+"/v1/token", adminKey, ""); code != 503 {
		t.Errorf("GET /v1/token while WeChat fails: %d, want 503", code)
	}
	waitFor(t, "healthz 200", func() bool {
		code, _ := get(t, p.admin+"/healthz")
		return code == 200
	})
	if code, m := call(t, "GET", p.admin+"/v1/token", adminKey, ""); code != 200 || m["access_token"] == nil {
		t.Errorf("GET /v1/token after recovery: %d %v", code, m)
	}
}

func TestServeConfigErrors(t *testing.T) {
	link := filepath.Join(t.TempDir(), "wechat.txt") // a link into a directory that does not exist
	if err := os.Symlink(filepath.Join(os.TempDir(), "wxcentral-no-such-dir", "wechat.txt"), link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"no token", map[string]string{}, nil, []string{"WECHAT_TOKEN"}},
		{"no token, keeper half set", map[string]string{"WECHAT_APP_ID": appID}, nil, []string{"WECHAT_TOKEN", "WECHAT_APP_SECRET"}},
		{"open admin without key", map[string]string{"WECHAT_TOKEN": cbToken, "WECHAT_APP_ID": appID, "WECHAT_APP_SECRET": secret,
			"WECHAT_ADMIN_LISTEN": "0.0.0.0:0"}, nil, []string{"WECHAT_ADMIN_KEY"}},
		{"bad values", map[string]string{"WECHAT_TOKEN": cbToken, "WECHAT_REFRESH_BEFORE": "5", "WECHAT_LOG_FORMAT": "xml"}, nil,
			[]string{"WECHAT_REFRESH_BEFORE", "WECHAT_LOG_FORMAT"}},
		{"bad flag", map[string]string{"WECHAT_TOKEN": cbToken}, []string{"-listen", "nowhere"}, []string{"WECHAT_LISTEN"}},
		{"store directory missing", keeperEnv(map[string]string{"WECHAT_STORE": filepath.Join(os.TempDir(), "wxcentral-no-such-dir", "wechat.txt")}),
			nil, []string{"WECHAT_STORE", "does not exist"}},
		{"store is a directory", keeperEnv(map[string]string{"WECHAT_STORE": os.TempDir()}), nil, []string{"WECHAT_STORE", "is a directory"}},
		{"bad trusted proxy", map[string]string{"WECHAT_TOKEN": cbToken, "WECHAT_TRUSTED_PROXIES": "10.0.0.0/40"}, nil,
			[]string{"WECHAT_TRUSTED_PROXIES"}},
		{"store is a link into a missing directory", keeperEnv(map[string]string{"WECHAT_STORE": link}), nil,
			[]string{"WECHAT_STORE", "is a link to", "does not exist"}},
		{"trusted proxy mapped 0.0.0.0/0", map[string]string{"WECHAT_TOKEN": cbToken, "WECHAT_TRUSTED_PROXIES": "::ffff:0.0.0.0/96"}, nil,
			[]string{"WECHAT_TRUSTED_PROXIES", "trusts every address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, tt.env, append([]string{"serve"}, tt.args...)...)
			if code := p.wait(t, 10*time.Second); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(p.stderr.String(), w) {
					t.Errorf("stderr does not name %s:\n%s", w, p.stderr.String())
				}
			}
			if strings.Contains(p.stderr.String(), secret) {
				t.Error("stderr shows the secret")
			}
		})
	}
}

// keeperEnv is the environment of a keeping server on free loopback
// ports, plus extra.
func keeperEnv(extra map[string]string) map[string]string {
	env := map[string]string{"WECHAT_APP_ID": appID, "WECHAT_APP_SECRET": secret, "WECHAT_TOKEN": cbToken,
		"WECHAT_LISTEN": "127.0.0.1:0", "WECHAT_ADMIN_LISTEN": "127.0.0.1:0", "WECHAT_API_BASE": "http://127.0.0.1:1"}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func TestServeCallbackOnly(t *testing.T) {
	pub := freeAddr(t)
	p := start(t, map[string]string{"WECHAT_TOKEN": cbToken, "WECHAT_LISTEN": pub}, "serve")
	waitFor(t, "the callback listener", func() bool { return strings.Contains(p.stderr.String(), "callbacks only") })
	s := start(t, nil, "simulate", "-url", "http://"+pub+"/", "-token", cbToken)
	if code := s.wait(t, 20*time.Second); code != 0 {
		t.Errorf("simulate: exit %d\n%s", code, s.stdout.String())
	}
	p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGINT", code)
	}
}

// The reference app is an echo bot in plain and in safe mode: simulate,
// acting as WeChat, gets the user's text back (decrypted and checked in
// safe mode), and a client in the wrong mode fails with exit status 1.
// Safe mode needs the AppID but no AppSecret: callbacks only.
func TestServeEchoBot(t *testing.T) {
	const aesKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		want     string
	}{
		{"plain", nil, nil, 0, `"echo me"`},
		{"safe", map[string]string{"WECHAT_ENCODING_AES_KEY": aesKey, "WECHAT_APP_ID": appID},
			[]string{"-aes-key", aesKey, "-appid", appID}, 0, `decrypts to text reply "echo me"`},
		{"safe server, plain client", map[string]string{"WECHAT_ENCODING_AES_KEY": aesKey, "WECHAT_APP_ID": appID},
			nil, 1, "plaintext message refused"},
		{"plain server, safe client", nil,
			[]string{"-aes-key", aesKey, "-appid", appID}, 1, "FAIL message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := freeAddr(t)
			env := map[string]string{"WECHAT_TOKEN": cbToken, "WECHAT_LISTEN": pub}
			for k, v := range tt.env {
				env[k] = v
			}
			p := start(t, env, "serve")
			waitFor(t, "the callback listener", func() bool { return strings.Contains(p.stderr.String(), "callbacks only") })
			args := append([]string{"simulate", "-url", "http://" + pub + "/", "-token", cbToken, "-message", "echo me"}, tt.args...)
			s := start(t, nil, args...)
			code := s.wait(t, 20*time.Second)
			out := s.stdout.String()
			if code != tt.wantCode || !strings.Contains(out, tt.want) {
				t.Errorf("simulate: exit %d, want %d, output containing %q:\n%s", code, tt.wantCode, tt.want, out)
			}
			if strings.Contains(out+s.stderr.String()+p.stderr.String(), aesKey) {
				t.Error("the EncodingAESKey appears in the output")
			}
			p.cmd.Process.Signal(os.Interrupt)
			if code := p.wait(t, 10*time.Second); code != 0 {
				t.Errorf("server: exit %d after SIGINT", code)
			}
		})
	}
}

// Two servers share one wechat.txt; business servers use both through
// remote token sources. Every refresh cycle fetches once, and WeChat
// rejects no business call.
func TestTwoServersOneStore(t *testing.T) {
	if testing.Short() {
		t.Skip("TestTwoServersOneStore: slow (two server processes run for 10 s of real token lifetimes); run without -short")
	}
	serial(t)
	const lifetime = 6 * time.Second
	fake := wechattest.NewServer(wechattest.WithApp(appID, secret), wechattest.WithTokenLifetime(lifetime))
	defer fake.Close()
	store := filepath.Join(t.TempDir(), "wechat.txt")
	extra := map[string]string{"WECHAT_REFRESH_BEFORE": "3s"}
	servers := []*proc{startServer(t, fake.URL, store, extra), startServer(t, fake.URL, store, extra)}

	// Watch the fake's current token: each change is one fetch.
	var (
		mu      sync.Mutex
		changes []time.Time
	)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := ""
		for ctx.Err() == nil {
			if tok, _ := fake.Token(appID); tok != last {
				mu.Lock()
				changes = append(changes, time.Now())
				mu.Unlock()
				last = tok
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	var calls, failed atomic.Int64
	for i := range 4 {
		remote, err := wechat.NewRemote(servers[i%2].admin, adminKey, wechat.RemoteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		client := &wechat.Client{Source: remote, APIBase: fake.URL}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := client.Get(context.Background(), wechattest.PathAPIDomainIP, nil); err != nil {
					failed.Add(1)
					t.Logf("business call: %v", err)
				}
				calls.Add(1)
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	wg.Wait()

	st := fake.Stats()
	t.Logf("%d business calls, %d failed, %d token fetches, %d rejected (40001) and %d (42001) by WeChat",
		calls.Load(), failed.Load(), st.Fetches[wechattest.PathToken], st.Rejected[40001], st.Rejected[42001])
	if failed.Load() != 0 || calls.Load() < 100 {
		t.Errorf("%d of %d business calls failed", failed.Load(), calls.Load())
	}
	if st.Rejected[40001]+st.Rejected[42001] != 0 {
		t.Errorf("WeChat rejected %v business calls' tokens", st.Rejected)
	}
	// One fetch per cycle: a cycle is lifetime - refresh-before = 3 s, so
	// two fetches less than a second apart are a duplicate.
	for i := 1; i < len(changes); i++ {
		if gap := changes[i].Sub(changes[i-1]); gap < time.Second {
			t.Errorf("fetches %d and %d are %v apart: two fetches in one cycle", i-1, i, gap)
		}
	}
	if n := st.Fetches[wechattest.PathToken]; n < 2 || n > 5 {
		t.Errorf("%d fetches in 10 s with a 3 s cycle, want 2 to 5", n)
	}
}

func TestSIGTERMDuringLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("TestSIGTERMDuringLoad: slow (server processes under load, in real time); run without -short")
	}
	serial(t)
	// WeChat takes 1.5 s to answer once the gate is set, and says when a
	// token request arrived: the refresh below is then in flight.
	fake := wechattest.NewPlatform(wechattest.WithApp(appID, secret))
	var slowdown atomic.Bool
	arrived := make(chan struct{}, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wechattest.PathToken && slowdown.CompareAndSwap(true, false) {
			arrived <- struct{}{}
			time.Sleep(1500 * time.Millisecond)
		}
		fake.ServeHTTP(w, r)
	}))
	defer api.Close()
	store, seeded := seed(t, fake)
	p := startServer(t, api.URL, store, nil)
	if code, _ := call(t, "GET", p.admin+"/v1/token", adminKey, ""); code != 200 {
		t.Fatal("not serving")
	}
	slowdown.Store(true)
	type result struct {
		code int
		tok  any
	}
	slow := make(chan result, 1)
	go func() {
		code, m := call(t, "POST", p.admin+"/v1/token/refresh", adminKey, fmt.Sprintf(`{"stale":%q}`, seeded))
		slow <- result{code, m["access_token"]}
	}()
	// Load: keep-alive GETs until the server goes away.
	var ok, bad atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", p.admin+"/v1/token", nil)
			req.Header.Set("Authorization", "Bearer "+adminKey)
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the server closed: requests after it are refused
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
		}()
	}
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the refresh did not reach WeChat")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	r := <-slow
	if r.code != 200 || r.tok == nil || r.tok == seeded {
		t.Errorf("the refresh in flight at SIGTERM: %d %v, want 200 and a new token", r.code, r.tok)
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	close(stop)
	wg.Wait()
	if bad.Load() != 0 || ok.Load() == 0 {
		t.Errorf("load during shutdown: %d ok, %d not 200", ok.Load(), bad.Load())
	}
}

// SIGTERM while a request waits on a WeChat that hangs: the request gets
// its 503 with the reason, and the process exits 0 within the shutdown
// timeout (20 s; in-flight requests get the first half).
func TestSIGTERMAnswersWaitingRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("TestSIGTERMAnswersWaitingRequest: slow (waits out the real 10 s in-flight shutdown timeout); run without -short")
	}
	t.Parallel() // it waits on real time, not the CPU: alongside the other such test
	fake := wechattest.NewServer(wechattest.WithApp(appID, secret))
	defer fake.Close()
	// The next token fetch hangs until the server gives up on it.
	fake.Fail(wechattest.PathToken, wechattest.Fault{Delay: time.Hour})
	store, seeded := seed(t, fake.Platform)
	p := startServer(t, fake.URL, store, nil)
	type result struct {
		code int
		body string
		err  error
	}
	waiting := make(chan result, 1)
	go func() {
		// A passive refresh of the stored token fetches: the request is
		// in flight once WeChat sees the fetch.
		req, _ := http.NewRequest("POST", p.admin+"/v1/token/refresh", strings.NewReader(fmt.Sprintf(`{"stale":%q}`, seeded)))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			waiting <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		waiting <- result{code: resp.StatusCode, body: string(b)}
	}()
	waitFor(t, "the passive refresh to reach WeChat", func() bool { return fake.Stats().Attempts[wechattest.PathToken] > 0 })
	p.cmd.Process.Signal(syscall.SIGTERM)
	r := <-waiting
	if r.err != nil || r.code != 503 || !strings.Contains(r.body, "shutting down") || strings.Contains(r.body, seeded) {
		t.Errorf("the request waiting at SIGTERM: %d %s %v, want 503 saying the server is shutting down", r.code, r.body, r.err)
	}
	if code := p.wait(t, 25*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

func TestDemo(t *testing.T) {
	p := start(t, nil, "demo", "-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0")
	var admin, storePath string
	waitFor(t, "the walkthrough", func() bool {
		sc := bufio.NewScanner(strings.NewReader(p.stdout.String()))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) >= 3 && f[0] == "admin" && f[1] == "API:":
				admin = f[2]
			case len(f) >= 3 && f[0] == "token" && f[1] == "store:":
				storePath = f[2]
			}
		}
		return admin != "" && storePath != ""
	})
	if !strings.Contains(p.stdout.String(), "curl") || !strings.Contains(p.stdout.String(), "simulate -url") {
		t.Errorf("the walkthrough lacks curl or simulate lines:\n%s", p.stdout.String())
	}
	waitFor(t, "a token", func() bool {
		code, _ := get(t, admin+"/v1/apps/wx00000000demo0001/token")
		return code == 200
	})
	if _, err := os.Stat(storePath); err != nil {
		t.Errorf("the store: %v", err)
	}
	// Every line of the walkthrough works as pasted into a shell.
	var lines []string
	for _, l := range strings.Split(p.stdout.String(), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "curl ") || strings.Contains(l, " simulate -url ") {
			lines = append(lines, l)
		}
	}
	// For the three apps: the list, five lines of the first, the token of
	// each other, health, metrics, reload, two through the gateway; a
	// simulate line each.
	if len(lines) != 15 {
		t.Errorf("%d lines to paste, want 15:\n%s", len(lines), p.stdout.String())
	}
	for _, l := range lines {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, "sh", "-c", l).CombinedOutput()
		cancel()
		text := string(out)
		switch {
		case err != nil:
			t.Errorf("%s: %v\n%s", l, err, out)
		case strings.Contains(l, " simulate "):
			if !strings.Contains(text, `PASS message: "hello"`) {
				t.Errorf("%s:\n%s", l, out)
			}
		case strings.Contains(l, "/metrics"):
			if n := strings.Count(text, "\n"); n == 0 || n > 15 || !strings.Contains(text, `wxcentral_token_fetches_total{app_id=`) {
				t.Errorf("%s: %d lines, want a few useful series:\n%s", l, n, out)
			}
		case strings.Contains(l, "/cgi-bin/"):
			var m map[string]any
			if json.Unmarshal(out, &m) != nil || m["errcode"] != nil || (m["access_token"] == nil && m["ip_list"] == nil) {
				t.Errorf("%s: %s, want a token or the callback IPs through the gateway", l, out)
			}
		case strings.Contains(l, "/v1/token/refresh"):
			var m map[string]any
			if json.Unmarshal(out, &m) != nil || m["access_token"] == nil || !strings.Contains(l, `"stale":"`) ||
				strings.Contains(l, "<") {
				t.Errorf("%s: %s, want a new token", l, out)
			}
		default:
			var m map[string]any
			if json.Unmarshal(out, &m) != nil || m["error"] != nil {
				t.Errorf("%s: %s", l, out)
			}
		}
	}
	p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("demo exit %d after Ctrl-C, want 0", code)
	}
	if _, err := os.Stat(filepath.Dir(storePath)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary directory was not removed: %v", err)
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		output string
	}{
		{[]string{"help"}, 0, "fake-wechat"},
		{[]string{"bogus"}, 2, "unknown command"},
		{[]string{"simulate"}, 2, "-url and -token"},
		{[]string{"fake-wechat", "-app", "nocolon"}, 2, "ID:SECRET"},
		{[]string{"-h"}, 0, "fake-wechat  run the fake"},
		{[]string{"-help"}, 0, "fake-wechat  run the fake"},
		{[]string{"--help"}, 0, "fake-wechat  run the fake"},
		{[]string{"serve", "-h"}, 0, "WECHAT_ADMIN_LISTEN"},
		{[]string{"-listen", "nowhere"}, 2, "WECHAT_LISTEN"}, // flags before a command are still serve's
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		if code := run(tt.args, &out, &errb); code != tt.code {
			t.Errorf("%v: exit %d, want %d", tt.args, code, tt.code)
		}
		if !strings.Contains(out.String()+errb.String(), tt.output) {
			t.Errorf("%v: output lacks %q:\n%s%s", tt.args, tt.output, out.String(), errb.String())
		}
	}
}

// The dash forms of help list the commands and not serve's flags; serve
// -h lists serve's flags.
func TestHelpForms(t *testing.T) {
	for _, arg := range []string{"help", "-h", "-help", "--help", "--h", "-?"} {
		var out, errb bytes.Buffer
		if code := run([]string{arg}, &out, &errb); code != 0 || !strings.Contains(out.String(), "commands:") ||
			strings.Contains(out.String()+errb.String(), "-admin-listen") {
			t.Errorf("wxcentral %s: exit %d, want 0 and the command list only:\n%s%s", arg, code, out.String(), errb.String())
		}
	}
}

// simulate -help never shows the callback token from the environment as a
// flag default.
func TestSimulateHelpHidesToken(t *testing.T) {
	t.Setenv("WECHAT_TOKEN", "env-callback-token-secret")
	var out, errb bytes.Buffer
	if code := run([]string{"simulate", "-help"}, &out, &errb); code != 0 {
		t.Errorf("simulate -help: exit %d", code)
	}
	help := out.String() + errb.String()
	if !strings.Contains(help, "-token") || !strings.Contains(help, "WECHAT_TOKEN") {
		t.Errorf("simulate -help does not describe -token:\n%s", help)
	}
	if strings.Contains(help, "env-callback-token-secret") {
		t.Errorf("simulate -help shows the token:\n%s", help)
	}
}

func TestFakeWechatCommand(t *testing.T) {
	addr := freeAddr(t)
	p := start(t, nil, "fake-wechat", "-listen", addr, "-app", "wxabc:s3cret")
	waitFor(t, "the fake", func() bool { return strings.Contains(p.stdout.String(), "wxabc") })
	if strings.Contains(p.stdout.String(), "s3cret") {
		t.Error("fake-wechat prints the secret")
	}
	code, body := get(t, "http://"+addr+"/cgi-bin/token?grant_type=client_credential&appid=wxabc&secret=s3cret")
	if code != 200 || !strings.Contains(body, "access_token") {
		t.Errorf("token from the fake: %d %s", code, body)
	}
	p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}
