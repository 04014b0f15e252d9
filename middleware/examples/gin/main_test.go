package main

import (
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
// r.Any.
func TestSimulate(t *testing.T) {
	demotest.Conversation(t, demo.Path, func(t *testing.T, mode demotest.Mode) string {
		return newTestServer(t, mode).URL
	})
}

// TestOnlyTheCallbackIsGuarded: /healthz answers without a signature, the
// callback does not.
func TestOnlyTheCallbackIsGuarded(t *testing.T) {
	demotest.OnlyCallbackGuarded(t, newTestServer(t, demotest.Modes[0]).URL, demo.Path)
}
