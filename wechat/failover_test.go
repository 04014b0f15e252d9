package wechat

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// refusedBase returns the base URL of a loopback port nothing listens on:
// a connection to it is refused before any request is written.
func refusedBase(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// frontProxy is an API host in front of the fake that forwards each call
// (so that WeChat acts on it) and then answers with status instead of
// WeChat's answer when fail says so: a front proxy that failed after the
// request reached WeChat.
type frontProxy struct {
	*httptest.Server
	calls atomic.Int32
}

func newFrontProxy(t *testing.T, fake *wechattest.Server, status int, fail func(r *http.Request) bool) *frontProxy {
	t.Helper()
	p := &frontProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequest(r.Method, fake.URL+r.URL.RequestURI(), strings.NewReader(string(body)))
		req.Header = r.Header.Clone()
		resp, err := fake.Client().Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if fail(r) {
			http.Error(w, "upstream went away", status)
			return
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		w.Write(data)
	}))
	t.Cleanup(p.Close)
	return p
}

func always(*http.Request) bool { return true }

func TestNewUpstreamRefusesBadBases(t *testing.T) {
	_, err := NewUpstream([]string{"https://api.weixin.qq.com", "ftp://x", "https://api.weixin.qq.com/", "https://u:p@h"}, UpstreamOptions{})
	if err == nil {
		t.Fatal("NewUpstream accepted bad bases")
	}
	for _, want := range []string{`"ftp://x"`, "listed twice", "not an http(s) URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "u:p") {
		t.Errorf("error %q quotes a user and password", err)
	}
	u, err := NewUpstream(nil, UpstreamOptions{})
	if err != nil || u.Base() != DefaultAPIBase || len(u.Bases()) != 1 {
		t.Fatalf("NewUpstream(nil) = %v, %v; want DefaultAPIBase alone", u, err)
	}
}

// TestUpstreamFailoverOnRefusedConnection: a keeper whose primary refuses
// connections fetches from the fallback at once, stays there for the
// sticky time, then probes the primary again.
func TestUpstreamFailoverOnRefusedConnection(t *testing.T) {
	fake := newFake(t)
	e := newEnv(t, fake)
	primary := refusedBase(t)
	up, err := NewUpstream([]string{primary, fake.URL}, UpstreamOptions{HTTPClient: e.opts.HTTPClient, Clock: fake, StickyFor: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.opts.Upstream, e.opts.APIBase, e.opts.HTTPClient = up, "", nil
	w := openKeeper(t, e)
	if _, err := w.AccessToken(t.Context()); err != nil {
		t.Fatalf("AccessToken with the primary down: %v", err)
	}
	if got := fake.Stats().Fetches[wechattest.PathToken]; got != 1 {
		t.Errorf("the fallback issued %d tokens, want 1", got)
	}
	if up.Base() != fake.URL || w.APIBase() != fake.URL {
		t.Errorf("Base() = %q, APIBase() = %q after the failover; want the fallback %q", up.Base(), w.APIBase(), fake.URL)
	}
	fake.Advance(59 * time.Second)
	if up.Base() != fake.URL {
		t.Errorf("Base() = %q within the sticky minute; want the fallback", up.Base())
	}
	fake.Advance(time.Second)
	if up.Base() != primary {
		t.Errorf("Base() = %q after the sticky minute; want the primary probed again", up.Base())
	}
	// The probe fails (still refused): the call goes on to the fallback,
	// and the fallback is sticky for another minute.
	client := &Client{Source: w}
	if _, err := client.Get(t.Context(), "/cgi-bin/getcallbackip", nil); err != nil {
		t.Fatalf("a business call during the probe: %v", err)
	}
	if up.Base() != fake.URL {
		t.Errorf("Base() = %q after a failed probe; want the fallback", up.Base())
	}
}

// TestUpstreamSentCallsFailOverOnlyIfIdempotent: after an HTTP 5xx or a
// timeout (the request was written), an idempotent call moves on to the
// next base, another does not, and both move later calls there.
func TestUpstreamSentCallsFailOverOnlyIfIdempotent(t *testing.T) {
	for _, tc := range []struct {
		name       string
		idempotent bool
		wantStatus int
		wantErr    bool
		secondary  int32
	}{
		{"idempotent", true, http.StatusOK, false, 1},
		{"not idempotent", false, http.StatusBadGateway, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				http.Error(w, "bad gateway", http.StatusBadGateway)
			}))
			defer bad.Close()
			var second atomic.Int32
			good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				second.Add(1)
				if b, _ := io.ReadAll(r.Body); string(b) != `{"x":1}` {
					t.Errorf("the fallback got body %q, want the whole body again", b)
				}
				io.WriteString(w, `{"errcode":0}`)
			}))
			defer good.Close()
			up, err := NewUpstream([]string{bad.URL, good.URL}, UpstreamOptions{})
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodPost, "/cgi-bin/message/custom/send?access_token=T", strings.NewReader(`{"x":1}`))
			resp, err := up.Do(req, tc.idempotent)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || second.Load() != tc.secondary {
				t.Errorf("status %d with %d calls at the fallback; want %d with %d", resp.StatusCode, second.Load(), tc.wantStatus, tc.secondary)
			}
			if up.Base() != good.URL {
				t.Errorf("Base() = %q after the 5xx; want later calls at the fallback", up.Base())
			}
		})
	}

	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
		}))
		defer slow.Close()
		defer close(release)
		good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"errcode":0}`)
		}))
		defer good.Close()
		up, err := NewUpstream([]string{slow.URL, good.URL}, UpstreamOptions{HTTPClient: &http.Client{Timeout: 200 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "/cgi-bin/token?appid=a&secret=SECRET-VALUE", nil)
		_, err = up.Do(req, false)
		if err == nil || !maySent(err) {
			t.Fatalf("a timed-out token call: err %v; want a failure that may have reached WeChat", err)
		}
		if strings.Contains(err.Error(), "SECRET-VALUE") {
			t.Errorf("the error %q quotes the secret", err)
		}
		req, _ = http.NewRequest(http.MethodGet, "/cgi-bin/getcallbackip?access_token=T", nil)
		resp, err := up.Do(req, true)
		if err != nil {
			t.Fatalf("an idempotent call after the switch: %v", err)
		}
		resp.Body.Close()
	})
}

// TestTokenFetchNotRepeatedBlindly: a token fetch that reached WeChat but
// whose answer was lost (the front answered 504) is not simply repeated at
// the fallback. The store is read first, and a token saved there meanwhile
// is adopted with no second fetch; without one, the next fetch goes to the
// fallback.
func TestTokenFetchNotRepeatedBlindly(t *testing.T) {
	t.Run("adopts the token saved meanwhile", func(t *testing.T) {
		fake := newFake(t)
		e := newEnv(t, fake)
		var front *frontProxy
		front = newFrontProxy(t, fake, http.StatusGatewayTimeout, func(r *http.Request) bool {
			// Another process (whose lock lease outlived ours) saved a
			// token meanwhile.
			if r.URL.Path == wechattest.PathToken {
				other := Credential{Value: "saved-by-another-process", FetchedAt: fake.Now(), ExpiresAt: fake.Now().Add(2 * time.Hour)}
				if err := e.store.Save(context.Background(), KindAccessToken, other); err != nil {
					t.Errorf("saving the other process's token: %v", err)
				}
			}
			return true
		})
		up, err := NewUpstream([]string{front.URL, fake.URL}, UpstreamOptions{HTTPClient: e.opts.HTTPClient, Clock: fake})
		if err != nil {
			t.Fatal(err)
		}
		e.opts.Upstream, e.opts.APIBase, e.opts.HTTPClient = up, "", nil
		w := openKeeper(t, e)
		tok, err := w.AccessToken(t.Context())
		if err != nil {
			t.Fatalf("AccessToken: %v", err)
		}
		if tok != "saved-by-another-process" {
			t.Errorf("AccessToken = %q; want the token saved meanwhile", tok)
		}
		if got := fake.Stats().Fetches[wechattest.PathToken]; got != 1 {
			t.Errorf("WeChat issued %d tokens; want 1 (the lost answer), no repeat", got)
		}
	})

	t.Run("fetches at the fallback after re-reading", func(t *testing.T) {
		fake := newFake(t)
		e := newEnv(t, fake)
		front := newFrontProxy(t, fake, http.StatusGatewayTimeout, always)
		up, err := NewUpstream([]string{front.URL, fake.URL}, UpstreamOptions{HTTPClient: e.opts.HTTPClient, Clock: fake})
		if err != nil {
			t.Fatal(err)
		}
		e.opts.Upstream, e.opts.APIBase, e.opts.HTTPClient = up, "", nil
		w := openKeeper(t, e)
		if _, err := w.AccessToken(t.Context()); err != nil {
			t.Fatalf("AccessToken: %v", err)
		}
		if front.calls.Load() != 1 {
			t.Errorf("the failing front got %d token calls; want 1 (never repeated there at once)", front.calls.Load())
		}
		if got := fake.Stats().Fetches[wechattest.PathToken]; got != 2 {
			t.Errorf("WeChat issued %d tokens; want 2 (the lost one, then the fallback's)", got)
		}
		if !strings.Contains(e.logs.String(), "switched to a fallback") && up.Base() != fake.URL {
			t.Errorf("the upstream did not move to the fallback")
		}
	})
}

// TestUpstreamDoKeepsContextErrors: a cancelled call is not failed over
// and says it was cancelled.
func TestUpstreamDoKeepsContextErrors(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	up, err := NewUpstream([]string{refusedBase(t), srv.URL}, UpstreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/cgi-bin/getcallbackip", nil)
	if _, err := up.Do(req, true); !errors.Is(err, context.Canceled) {
		t.Errorf("Do with a cancelled context: %v; want context.Canceled", err)
	}
	if hits.Load() != 0 {
		t.Errorf("a cancelled call reached the fallback")
	}
}
