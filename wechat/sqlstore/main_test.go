package sqlstore_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/wxcentral/wxcentral/wechat/internal/sqltest"
)

// The test binary doubles as the keeper processes of the end-to-end tests:
// with WXS_HELPER=worker, TestMain runs one keeper instead of the tests.
// Otherwise it runs the tests and then stops the database servers they
// started.
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
