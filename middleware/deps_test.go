package middleware_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDeps keeps what a business app links small: mounting the middleware
// (and its sub-packages) pulls in neither Redis nor Prometheus, nor the
// server's wiring, and the token keeper does not pull in the wiring
// either. The Redis dedupe store lives in wechat/redisstore for this.
func TestDeps(t *testing.T) {
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	for pkg, banned := range map[string][]string{
		"github.com/wxcentral/wxcentral/middleware/...": {"github.com/redis/", "github.com/prometheus/", "github.com/go-sql-driver/", "github.com/jackc/", "wxcentral/wechat/server", "wxcentral/wechat/central", "wxcentral/wechat/wechattest"},
		"github.com/wxcentral/wxcentral/wechat":         {"wxcentral/wechat/server", "wxcentral/wechat/central", "wxcentral/wechat/wechattest", "github.com/prometheus/", "github.com/redis/", "github.com/go-sql-driver/", "github.com/jackc/", "github.com/pelletier/"},
	} {
		out, err := exec.Command(goTool, "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range banned {
				if strings.Contains(dep, b) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
