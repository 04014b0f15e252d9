package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// FakeWechat serves the fake platform, shows its loopback URL, and
// returns nil once its context ends.
func TestFakeWechat(t *testing.T) {
	l := listenLoopback(t)
	var out strings.Builder
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	ready := make(chan struct{})
	pr, pw := io.Pipe()
	go func() {
		done <- FakeWechat(ctx, FakeOptions{Listener: l, Apps: testAppID,
			Platform: []wechattest.Option{wechattest.WithApp(testAppID, testSecret)}, Out: pw})
		pw.Close()
	}()
	go func() {
		buf := make([]byte, 4096)
		n, _ := pr.Read(buf)
		out.Write(buf[:n])
		close(ready)
		io.Copy(io.Discard, pr)
	}()
	<-ready
	base := "http://" + l.Addr().String()
	if !strings.Contains(out.String(), "WECHAT_API_BASE="+base) {
		t.Errorf("banner %q does not name %s", out.String(), base)
	}
	resp, err := http.Get(base + wechattest.PathToken + "?grant_type=client_credential&appid=" + testAppID + "&secret=" + testSecret)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "access_token") {
		t.Errorf("token from the fake: %d %s", resp.StatusCode, b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("FakeWechat: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("FakeWechat did not return after its context ended")
	}
}
