package sqlstore_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/wxcentral/wxcentral/wechat/internal/sqltest"
)

func TestMain(m *testing.M) {
	switch os.Getenv(envHelper) {
	case "":
		os.Exit(sqltest.Main(m))
	case "worker":
		os.Exit(worker())
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(envHelper))
		os.Exit(2)
	}
}

const envHelper = "WXS_HELPER"

func worker() int { return 2 }
