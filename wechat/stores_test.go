package wechat_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/internal/redistest"
	"github.com/wxcentral/wxcentral/wechat/redisstore"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// storeKind builds two Store values on one backing (two processes or
// hosts sharing it) and can lose everything the backing holds.
type storeKind struct {
	name string
	open func(t *testing.T) (a, b wechat.Store, lose func())
}

var storeKinds = []storeKind{
	{"file", func(t *testing.T) (wechat.Store, wechat.Store, func()) {
		dir := t.TempDir()
		path := filepath.Join(dir, "wechat.txt")
		lose := func() {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if !strings.HasSuffix(e.Name(), ".lock") {
					os.Remove(filepath.Join(dir, e.Name()))
				}
			}
		}
		return wechat.NewFileStore(path, nil), wechat.NewFileStore(path, nil), lose
	}},
	{"redis", func(t *testing.T) (wechat.Store, wechat.Store, func()) {
		srv := redistest.Start(t)
		open := func() wechat.Store {
			s, err := redisstore.Open(srv.URL(), remoteAppID)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		lose := func() {
			if _, err := redistest.Do(srv.Addr, "FLUSHALL"); err != nil {
				t.Fatal(err)
			}
		}
		return open(), open(), lose
	}},
}

func openOn(t *testing.T, srv *wechattest.Server, s wechat.Store) *wechat.Wechat {
	t.Helper()
	w, err := wechat.Open(t.Context(), wechat.Options{
		AppID: remoteAppID, AppSecret: remoteSecret, Store: s,
		APIBase: srv.URL, Clock: srv, RetryBackoff: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// A credential rejection (40164) pauses fetches of every process on the
// store, on both stores, and of a keeper built after it.
func TestCooldownOnEveryStore(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			srv := wechattest.NewServer(wechattest.WithApp(remoteAppID, remoteSecret), wechattest.WithClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)))
			t.Cleanup(srv.Close)
			a, b, _ := sk.open(t)
			srv.Fail(wechattest.PathToken, wechattest.Fault{Errcode: 40164, Errmsg: "invalid ip 203.0.113.9 ipv6 ::ffff:203.0.113.9, not in whitelist rid: 1"})
			if _, err := openOn(t, srv, a).AccessToken(t.Context()); err == nil {
				t.Fatal("got a token despite 40164")
			}
			for _, w := range []*wechat.Wechat{openOn(t, srv, b), openOn(t, srv, a)} {
				var apiErr *wechat.APIError
				if _, err := w.AccessToken(t.Context()); !errors.Is(err, wechat.ErrCooldown) || !errors.As(err, &apiErr) || apiErr.Code != 40164 {
					t.Errorf("err = %v, want ErrCooldown after 40164", err)
				}
			}
			if n := srv.Stats().Attempts[wechattest.PathToken]; n != 1 {
				t.Errorf("token calls = %d, want 1", n)
			}
			srv.Advance(61 * time.Second)
			if _, err := openOn(t, srv, b).AccessToken(t.Context()); err != nil {
				t.Errorf("after the cooldown: %v", err)
			}
		})
	}
}

// Losing the store (a deleted file, a flushed Redis) while a keeper holds a
// valid token costs no fetch: the token is saved back, and another process
// adopts it.
func TestLostStoreOnEveryStore(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			srv := wechattest.NewServer(wechattest.WithApp(remoteAppID, remoteSecret), wechattest.WithClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)))
			t.Cleanup(srv.Close)
			a, b, lose := sk.open(t)
			w := openOn(t, srv, a)
			tok, err := w.AccessToken(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			lose()
			srv.Advance(time.Minute)
			if got, err := w.Refresh(t.Context(), "an-unknown-stale-token"); err != nil || got != tok {
				t.Fatalf("Refresh = %q, %v; want the held token", got, err)
			}
			if got, err := openOn(t, srv, b).AccessToken(t.Context()); err != nil || got != tok {
				t.Errorf("another process: %q, %v; want the token saved back", got, err)
			}
			if n := srv.Stats().Attempts[wechattest.PathToken]; n != 1 {
				t.Errorf("token calls = %d, want 1", n)
			}
		})
	}
}
