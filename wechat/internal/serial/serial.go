package wechattest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// serialWait bounds how long Serial waits for the machine-wide lock.
const serialWait = 10 * time.Minute

// Serial makes tb wait for, and hold until it ends, a lock shared by every
// test process on the machine. Tests that measure behaviour in real time
// across OS processes (token lifetimes of a few seconds, a grace of one)
// call it first: `go test ./...` runs the test binaries of several packages
// at once, and two such tests side by side on a small machine starve each
// other's processes past the grace. Other tests need not call it.
func Serial(tb testing.TB) {
	tb.Helper()
	path := filepath.Join(os.TempDir(), "wxcentral-serial-tests.lock")
	fl := flock.New(path, flock.SetPermissions(0o666))
	ctx, cancel := context.WithTimeout(context.Background(), serialWait)
	defer cancel()
	ok, err := fl.TryLockContext(ctx, 50*time.Millisecond)
	if err != nil || !ok {
		tb.Fatalf("wechattest.Serial: waiting for %s: %v", path, err)
	}
	tb.Cleanup(func() { fl.Unlock(); fl.Close() })
}
