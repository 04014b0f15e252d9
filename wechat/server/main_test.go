package server

import (
	"os"
	"testing"

	"github.com/wxcentral/wxcentral/wechat/internal/sqltest"
)

// TestMain stops the database servers the tests started.
func TestMain(m *testing.M) { os.Exit(sqltest.Main(m)) }
