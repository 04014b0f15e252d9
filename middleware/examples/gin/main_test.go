package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/wxcentral/wxcentral/middleware/examples/internal/demo"
	"github.com/wxcentral/wxcentral/middleware/examples/internal/demotest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode) // no debug banner per route
	os.Exit(m.Run())
}

func newTestServer(t *testing.T, mode demotest.Mode) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(newEngine(demotest.Token, demo.Messages(), append(mode.Options, demotest.Quiet())...))
	t.Cleanup(srv.Close)
	return srv
}

// TestSimulate runs `wxcentral simulate`'s client against the gin engine,
// in plain and in safe mode: the URL check (a GET) reaches Verify through
// r.Any, a text push gets "you said: …" back, encrypted in safe mode.
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

// TestOnlyTheCallbackIsGuarded: /healthz answers without a signature, the
// callback does not.
func TestOnlyTheCallbackIsGuarded(t *testing.T) {
	srv := newTestServer(t, demotest.Modes[0])
	if code, body := demotest.Get(t, srv.URL+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz: %d %q, want 200 \"ok\\n\"", code, body)
	}
	if code, _ := demotest.Get(t, srv.URL+demo.Path+"?echostr=x"); code != http.StatusBadRequest {
		t.Errorf("GET %s without a signature: %d, want 400 from Verify", demo.Path, code)
	}
}
