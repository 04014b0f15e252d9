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
// in plain and in safe mode.
func TestSimulate(t *testing.T) {
	demotest.Conversation(t, demo.Path, func(t *testing.T, mode demotest.Mode) string {
		return newTestServer(t, mode).URL
	})
}

// TestOnlyTheCallbackIsGuarded: r.With guards the callback route alone;
// other routes are chi's as usual.
func TestOnlyTheCallbackIsGuarded(t *testing.T) {
	srv := newTestServer(t, demotest.Modes[0])
	demotest.OnlyCallbackGuarded(t, srv.URL, demo.Path)
	if code, _ := demotest.Get(t, srv.URL+"/other"); code != http.StatusNotFound {
		t.Errorf("GET /other: %d, want 404", code)
	}
}
