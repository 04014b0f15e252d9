// Package serial keeps wxcentral's heavy real-time tests from running at
// the same time: `go test ./...` runs the test binaries of several packages
// at once, and two multi-process tests side by side on a small machine
// starve each other's processes past their token grace. It is test
// plumbing, internal to package wechat and the packages under it.
package serial

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// LockFile is the name, in os.TempDir(), of the file whose lock every such
// test holds while it runs. The root package's tests (app_test.go), which
// cannot import this package, lock the same file: keep the two in step.
const LockFile = "wxcentral-serial-tests.lock"

// wait bounds how long Lock waits for the machine-wide lock.
const wait = 10 * time.Minute

// Lock makes tb wait for, and hold until it ends, a lock shared by every
// test process on the machine. Tests that measure behaviour in real time
// across OS processes (token lifetimes of a few seconds, a grace of one)
// call it first. Other tests need not call it.
func Lock(tb testing.TB) {
	tb.Helper()
	lock(tb, filepath.Join(os.TempDir(), LockFile))
}

// lock is Lock on the file at path.
func lock(tb testing.TB, path string) {
	tb.Helper()
	fl := flock.New(path, flock.SetPermissions(0o666))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ok, err := fl.TryLockContext(ctx, 50*time.Millisecond)
	if err != nil || !ok {
		tb.Fatalf("serial.Lock: waiting for %s: %v", path, err)
	}
	tb.Cleanup(func() { fl.Unlock(); fl.Close() })
}
