package wechat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/central"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

const (
	remoteAppID  = "wx0123456789abcdef"
	remoteSecret = "S3CRET-must-never-leak-0123456789"
	remoteKey    = "admin-key-0123456789abcdef"
)

// manualClock is a clock a test moves by hand.
type manualClock struct{ ns atomic.Int64 }

func newManualClock(t time.Time) *manualClock {
	c := &manualClock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *manualClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *manualClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// adminStub speaks the token routes of the admin API (package central is
// the real one; the black-box tests of the binary run the two together)
// on top of a real keeper, and counts the requests per route.
type adminStub struct {
	keeper *wechat.Wechat
	clock  wechat.Clock
	key    string
	gate   chan struct{} // if set, GET /v1/token waits for it to close

	mu    sync.Mutex
	calls map[string]int
	// fail, if set, answers every request with this status and body.
	failStatus int
	failBody   string
}

func (s *adminStub) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

func (s *adminStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[r.URL.Path]++
	failStatus, failBody := s.failStatus, s.failBody
	s.mu.Unlock()
	if failStatus != 0 {
		w.WriteHeader(failStatus)
		w.Write([]byte(failBody))
		return
	}
	if s.key != "" && r.Header.Get("Authorization") != "Bearer "+s.key {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"the admin key is wrong"}`))
		return
	}
	ctx := r.Context()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/token":
		if s.gate != nil {
			<-s.gate
		}
	case r.Method == http.MethodPost && r.URL.Path == "/v1/token/refresh":
		var body struct{ Stale string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Stale == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if _, err := s.keeper.Refresh(ctx, body.Stale); err != nil {
			w.WriteHeader(http.StatusBadGateway)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
	default:
		w.WriteHeader(http.StatusNotFound)
		return
	}
	c, err := s.keeper.Token(ctx)
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": c.Value,
		"expires_at":   c.ExpiresAt.UTC().Format(time.RFC3339),
		"expires_in":   int64(c.ExpiresAt.Sub(s.clock.Now()) / time.Second),
	})
}

// remoteEnv is a fake WeChat on a frozen clock, a keeper, the admin stub
// in front of it and a Remote on the stub sharing the clock.
type remoteEnv struct {
	fake   *wechattest.Server
	keeper *wechat.Wechat
	stub   *adminStub
	admin  *httptest.Server
	remote *wechat.Remote
}

func newRemoteEnv(t *testing.T) *remoteEnv {
	t.Helper()
	fake := wechattest.NewServer(wechattest.WithApp(remoteAppID, remoteSecret),
		wechattest.WithClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)))
	t.Cleanup(fake.Close)
	k, err := wechat.New(context.Background(), wechat.Options{
		AppID: remoteAppID, AppSecret: remoteSecret, APIBase: fake.URL, Clock: fake,
		Store: wechat.NewFileStore(filepath.Join(t.TempDir(), "wechat.txt"), nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	stub := &adminStub{keeper: k, clock: fake, key: remoteKey}
	admin := httptest.NewServer(stub)
	t.Cleanup(admin.Close)
	r, err := wechat.NewRemote(admin.URL, remoteKey, wechat.RemoteOptions{Clock: fake})
	if err != nil {
		t.Fatal(err)
	}
	return &remoteEnv{fake: fake, keeper: k, stub: stub, admin: admin, remote: r}
}

func TestRemoteCachesUntilShortlyBeforeExpiry(t *testing.T) {
	e := newRemoteEnv(t)
	ctx := context.Background()
	tests := []struct {
		advance  time.Duration
		wantGets int
	}{
		{0, 1},                                 // first call asks
		{0, 1},                                 // cached
		{7200*time.Second - 61*time.Second, 1}, // still before expiry - 1 min
		{2 * time.Second, 2},                   // within the last minute: asks again
	}
	for i, tt := range tests {
		e.fake.Advance(tt.advance)
		tok, err := e.remote.AccessToken(ctx)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		want, _ := e.keeper.AccessToken(ctx)
		if tok != want {
			t.Errorf("step %d: got a token other than the keeper's", i)
		}
		if got := e.stub.count("/v1/token"); got != tt.wantGets {
			t.Errorf("step %d: GET /v1/token made %d times, want %d", i, got, tt.wantGets)
		}
	}
}

// Remote.Token over real HTTP against the real admin API (package
// central): the credential has the keeper's token and expiry (by the
// local clock: arrival + expires_in) and the arrival as FetchedAt; it is
// served from memory, without a request, until it turns stale by the
// keeper's rule, ExpiresAt − min(early, life/2) with life what was left
// when the answer arrived; then the Remote asks again.
func TestRemoteTokenOverAdminAPI(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	fake := wechattest.NewServer(wechattest.WithApp(remoteAppID, remoteSecret), wechattest.WithClock(t0))
	t.Cleanup(fake.Close)
	store := wechat.NewFileStore(filepath.Join(t.TempDir(), "wechat.txt"), nil)
	k, err := wechat.New(t.Context(), wechat.Options{
		AppID: remoteAppID, AppSecret: remoteSecret, APIBase: fake.URL, Clock: fake, Store: store,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	admin := central.NewAdmin(k, central.AdminOptions{Key: remoteKey, Clock: fake, Store: store})
	var gets atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/token" {
			gets.Add(1)
		}
		admin.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	// 30 min early: 6200 s left at the first answer gives min(1800 s,
	// 3100 s) = 1800 s (the Remote's old rule, min(early, left/4), gave
	// 1550 s).
	remote, err := wechat.NewRemote(srv.URL, remoteKey, wechat.RemoteOptions{Clock: fake, EarlyExpiry: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	want, err := k.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !want.ExpiresAt.Equal(t0.Add(7200 * time.Second)) {
		t.Fatalf("the keeper's token expires at %v, want t0+7200 s", want.ExpiresAt)
	}
	steps := []struct {
		at          time.Duration // since t0
		wantGets    int64
		wantFetched time.Duration // FetchedAt, since t0: when the answer that is served arrived
	}{
		{1000 * time.Second, 1, 1000 * time.Second}, // asks: 6200 s left, stale at t0+5400 s
		{1000 * time.Second, 1, 1000 * time.Second}, // from memory
		{5400*time.Second - time.Millisecond, 1, 1000 * time.Second},
		{5400 * time.Second, 2, 5400 * time.Second}, // stale: asks; 1800 s left, stale at t0+6300 s
		{6300*time.Second - time.Millisecond, 2, 5400 * time.Second},
		{6300 * time.Second, 3, 6300 * time.Second},
	}
	for i, st := range steps {
		fake.Advance(t0.Add(st.at).Sub(fake.Now()))
		c, err := remote.Token(t.Context())
		if err != nil {
			t.Fatalf("step %d (t0+%v): %v", i, st.at, err)
		}
		if c.Value != want.Value || !c.ExpiresAt.Equal(want.ExpiresAt) || !c.FetchedAt.Equal(t0.Add(st.wantFetched)) {
			t.Errorf("step %d (t0+%v): Token = {expires t0+%v, fetched t0+%v, same value %v}, want {t0+7200s, t0+%v, true}",
				i, st.at, c.ExpiresAt.Sub(t0), c.FetchedAt.Sub(t0), c.Value == want.Value, st.wantFetched)
		}
		if tok, err := remote.AccessToken(t.Context()); err != nil || tok != c.Value {
			t.Errorf("step %d: AccessToken = %v, want the token Token gave", i, err)
		}
		if n := gets.Load(); n != st.wantGets {
			t.Errorf("step %d (t0+%v): %d GET /v1/token, want %d", i, st.at, n, st.wantGets)
		}
	}
}

func TestRemoteSingleFlight(t *testing.T) {
	e := newRemoteEnv(t)
	e.stub.gate = make(chan struct{})
	const n = 32
	var started, done sync.WaitGroup
	errs := make(chan error, n)
	toks := make(chan string, n)
	started.Add(n)
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			started.Done()
			tok, err := e.remote.AccessToken(context.Background())
			errs <- err
			toks <- tok
		}()
	}
	started.Wait()
	// Every goroutine is about to call, or waits on the one request the
	// gate holds; give the stragglers time to join it.
	time.Sleep(100 * time.Millisecond)
	close(e.stub.gate)
	done.Wait()
	close(errs)
	close(toks)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	first := <-toks
	for tok := range toks {
		if tok != first {
			t.Fatal("callers got different tokens")
		}
	}
	if got := e.stub.count("/v1/token"); got != 1 {
		t.Errorf("%d concurrent misses made %d requests, want 1", n, got)
	}
}

func TestRemoteRefresh(t *testing.T) {
	e := newRemoteEnv(t)
	ctx := context.Background()
	old, err := e.remote.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Past the keeper's minimum interval between fetches.
	e.fake.Advance(time.Minute)

	// WeChat rejected old: the store still holds it, so the server fetches.
	fetches := e.fake.Stats().Fetches[wechattest.PathToken]
	fresh, err := e.remote.Refresh(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == old {
		t.Fatal("Refresh returned the stale token")
	}
	if got := e.fake.Stats().Fetches[wechattest.PathToken]; got != fetches+1 {
		t.Errorf("the passive refresh made %d fetches, want 1", got-fetches)
	}
	// The new token is cached: no more requests for it.
	posts, gets := e.stub.count("/v1/token/refresh"), e.stub.count("/v1/token")
	if tok, _ := e.remote.AccessToken(ctx); tok != fresh {
		t.Error("AccessToken after Refresh is not the refreshed token")
	}
	// Another goroutine that also saw old rejected gets fresh without a request.
	if tok, err := e.remote.Refresh(ctx, old); err != nil || tok != fresh {
		t.Errorf("second Refresh(old) = %v, want the fresh token", err)
	}
	if e.stub.count("/v1/token/refresh") != posts || e.stub.count("/v1/token") != gets {
		t.Error("a cached token was asked for again")
	}
	// An empty stale token is AccessToken.
	if tok, err := e.remote.Refresh(ctx, ""); err != nil || tok != fresh {
		t.Errorf(`Refresh("") = %v, want the cached token`, err)
	}
	// Refresh of the cached token itself asks the server, which fetches.
	e.fake.Advance(time.Minute)
	if _, err := e.remote.Refresh(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if e.stub.count("/v1/token/refresh") != posts+1 {
		t.Error("Refresh(current token) did not ask the server")
	}
}

func TestRemoteWithClientRetriesOnRejectedToken(t *testing.T) {
	e := newRemoteEnv(t)
	ctx := context.Background()
	c := &wechat.Client{Source: e.remote, APIBase: e.fake.URL}
	if _, err := c.Get(ctx, wechattest.PathAPIDomainIP, nil); err != nil {
		t.Fatal(err)
	}
	// Someone fetches out of turn; once the grace is over, the token the
	// Remote caches is rejected (40001) and the Client refreshes through it.
	e.fake.IssueToken(remoteAppID)
	e.fake.Advance(301 * time.Second)
	rejected := e.fake.Stats().Rejected[40001]
	if _, err := c.Get(ctx, wechattest.PathAPIDomainIP, url.Values{}); err != nil {
		t.Fatalf("business call after an out-of-turn fetch: %v", err)
	}
	st := e.fake.Stats()
	if st.Rejected[40001] != rejected+1 {
		t.Errorf("rejections: %d, want exactly the one that triggered the refresh", st.Rejected[40001]-rejected)
	}
	if e.stub.count("/v1/token/refresh") != 1 {
		t.Errorf("POST /v1/token/refresh made %d times, want 1", e.stub.count("/v1/token/refresh"))
	}
}

func TestRemoteErrors(t *testing.T) {
	tests := []struct {
		name      string
		key       string
		status    int
		body      string
		wantIn    []string
		wantIs    error
		wantCode  int
		wantNotIn string
	}{
		{name: "wrong key", key: "not-the-key-0123456789", wantIn: []string{"HTTP 401", "admin key"}, wantNotIn: "not-the-key"},
		{name: "no key", key: "", wantIn: []string{"HTTP 401", "WECHAT_ADMIN_KEY"}},
		{name: "quota", key: remoteKey, status: 503, body: `{"error":"wechat: daily fetch quota exhausted: 2000 of 2000"}`,
			wantIn: []string{"HTTP 503", "quota"}, wantIs: wechat.ErrQuotaExhausted},
		{name: "no token", key: remoteKey, status: 503, body: `{"error":"the token keeper is starting"}`,
			wantIn: []string{"starting"}, wantIs: wechat.ErrNoToken},
		{name: "upstream errcode", key: remoteKey, status: 502, body: `{"error":"wechat: /cgi-bin/token: errcode 40164: invalid ip","errcode":40164}`,
			wantIn: []string{"HTTP 502", "40164"}, wantCode: 40164},
		{name: "not an admin API", key: remoteKey, status: 404, body: `<html>nope</html>`,
			wantIn: []string{"HTTP 404", "admin URL"}},
		{name: "200 without a token", key: remoteKey, status: 200, body: `{"hello":"world"}`,
			wantIn: []string{"lacks access_token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRemoteEnv(t)
			e.stub.failStatus, e.stub.failBody = tt.status, tt.body
			r, err := wechat.NewRemote(e.admin.URL, tt.key, wechat.RemoteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.AccessToken(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if tt.wantNotIn != "" && strings.Contains(err.Error(), tt.wantNotIn) {
				t.Errorf("error %q shows the key", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
			var apiErr *wechat.APIError
			if tt.wantCode != 0 && (!errors.As(err, &apiErr) || apiErr.Code != tt.wantCode) {
				t.Errorf("error %q carries no APIError %d", err, tt.wantCode)
			}
			var re *wechat.RemoteError
			if tt.status != 200 && !errors.As(err, &re) {
				t.Errorf("error %q is not a *RemoteError", err)
			}
		})
	}
}

func TestRemoteUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	r, err := wechat.NewRemote(base, remoteKey, wechat.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.AccessToken(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is the server running") || strings.Contains(err.Error(), remoteKey) {
		t.Errorf("unreachable server: error %v", err)
	}
}

func TestNewRemoteRejects(t *testing.T) {
	tests := []struct{ base, key string }{
		{"", ""},
		{"127.0.0.1:3101", ""},
		{"ftp://host", ""},
		{"http://host?x=1", ""},
		{"http://user:pw@host", ""},
		{"http://host", "key\n"},
	}
	for _, tt := range tests {
		if _, err := wechat.NewRemote(tt.base, tt.key, wechat.RemoteOptions{}); err == nil {
			t.Errorf("NewRemote(%q, %q) accepted", tt.base, tt.key)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("error %q shows a password", err)
		}
	}
}

func TestRemoteCachedPathAllocatesNothing(t *testing.T) {
	e := newRemoteEnv(t)
	ctx := context.Background()
	if _, err := e.remote.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = e.remote.AccessToken(ctx) }); n != 0 {
		t.Errorf("cached AccessToken allocates %v times, want 0", n)
	}
}

func BenchmarkRemoteAccessTokenCached(b *testing.B) {
	fake := wechattest.NewServer(wechattest.WithApp(remoteAppID, remoteSecret))
	defer fake.Close()
	k, err := wechat.New(context.Background(), wechat.Options{
		AppID: remoteAppID, AppSecret: remoteSecret, APIBase: fake.URL,
		Store: wechat.NewFileStore(filepath.Join(b.TempDir(), "wechat.txt"), nil),
	})
	if err != nil {
		b.Fatal(err)
	}
	admin := httptest.NewServer(&adminStub{keeper: k, clock: fake})
	defer admin.Close()
	r, _ := wechat.NewRemote(admin.URL, "", wechat.RemoteOptions{})
	ctx := context.Background()
	if _, err := r.AccessToken(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.AccessToken(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A business server gets its tokens from the central server (wxcentral
// serve) and calls WeChat with a Client; a token WeChat rejects is
// refreshed through the central server and the call retried once.
func ExampleNewRemote() {
	remote, err := wechat.NewRemote("http://127.0.0.1:3101", os.Getenv("WECHAT_ADMIN_KEY"), wechat.RemoteOptions{})
	if err != nil {
		log.Fatal(err)
	}
	client := &wechat.Client{Source: remote}
	res, err := client.Get(context.Background(), "/cgi-bin/getcallbackip", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Get("ip_list"))
}
