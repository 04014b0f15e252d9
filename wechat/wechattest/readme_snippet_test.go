package wechattest_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// TestReadmeSnippet is the snippet of README.md's "A fake WeChat for your
// tests", kept here so that it compiles and does what it says: a keeper on
// the fake fetches once at start and once when the fake's clock has passed
// the token's expiry.
func TestReadmeSnippet(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wechat.txt")
	srv := wechattest.NewServer(wechattest.WithApp("wx0123456789abcdef", "secret"),
		wechattest.WithClock(time.Now()))
	defer srv.Close()
	w, err := wechat.New(ctx, wechat.Options{AppID: "wx0123456789abcdef", AppSecret: "secret",
		APIBase: srv.URL, Clock: srv, Store: wechat.NewFileStore(path, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	srv.Advance(2 * time.Hour)     // the token has expired
	tok, err := w.AccessToken(ctx) // a fresh one, fetched from the fake
	if err != nil || tok == "" {
		t.Fatal(err)
	}
	if n := srv.Stats().Fetches[wechattest.PathToken]; n != 2 {
		t.Errorf("fetches = %d, want 2 (at start, and after the expiry)", n)
	}
}
