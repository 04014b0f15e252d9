package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wxcentral/wxcentral/middleware/examples/internal/demo"
	"github.com/wxcentral/wxcentral/middleware/examples/internal/demotest"
)

func newTestServer(t *testing.T, mode demotest.Mode) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(newRouter(demotest.Token, demo.Messages(), append(mode.Options, demotest.Quiet())...))
	t.Cleanup(srv.Close)
	return srv
}

// TestSimulate runs `wxcentral simulate`'s client against the chi router,
// in plain and in safe mode: the URL check gets its echostr, a text push
// gets "you said: …" back, encrypted in safe mode.
func TestSimulate(t *testing.T) {
	for _, mode := range demotest.Modes {
		t.Run(mode.Name, func(t *testing.T) {
			srv := newTestServer(t, mode)
			demotest.Simulate(t, srv.URL+demo.Path, mode)
			if r := demotest.Converse(t, srv.URL+demo.Path, mode, "hello"); r.Content != "you said: hello" {
				t.Errorf("reply %q, want %q", r.Content, "you said: hello")
			}
		})
	}
}

// TestOnlyTheCallbackIsGuarded: r.With guards the callback route alone;
// /healthz answers without a signature, the callback does not.
func TestOnlyTheCallbackIsGuarded(t *testing.T) {
	srv := newTestServer(t, demotest.Modes[0])
	if code, body := demotest.Get(t, srv.URL+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz: %d %q, want 200 \"ok\\n\"", code, body)
	}
	if code, _ := demotest.Get(t, srv.URL+demo.Path+"?echostr=x"); code != http.StatusBadRequest {
		t.Errorf("GET %s without a signature: %d, want 400 from Verify", demo.Path, code)
	}
	if code, _ := demotest.Get(t, srv.URL+"/other"); code != http.StatusNotFound {
		t.Errorf("GET /other: %d, want 404", code)
	}
}
