package serial

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gofrs/flock"
)

// TestLockExcludes checks that while a test holds the lock, no other
// holder can take the lock file, and that the lock is released when the
// test ends. It locks a file of its own, not LockFile, so as not to wait
// for the heavy tests of other packages.
func TestLockExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), LockFile)
	other := flock.New(path)
	defer other.Close()
	t.Run("holder", func(t *testing.T) {
		lock(t, path)
		if ok, err := other.TryLock(); err != nil || ok {
			t.Fatalf("a second holder took the lock: %v, %v", ok, err)
		}
	})
	if ok, err := other.TryLock(); err != nil || !ok {
		t.Fatalf("the lock was not released when its test ended: %v, %v", ok, err)
	}
	other.Unlock()
}

// TestRootUsesLockFile checks that the root package's tests, which cannot
// import this package, lock the same file.
func TestRootUsesLockFile(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "..", "app_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "serialLockFile = "+strconv.Quote(LockFile)) {
		t.Errorf("app_test.go does not lock %q: keep its serialLockFile in step with LockFile", LockFile)
	}
}
