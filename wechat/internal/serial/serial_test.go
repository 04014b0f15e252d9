package serial

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gofrs/flock"
)

// TestLockExcludes checks that while a test holds Lock, no other holder
// can take the lock file, and that the lock is released when it ends.
func TestLockExcludes(t *testing.T) {
	path := filepath.Join(os.TempDir(), LockFile)
	other := flock.New(path)
	defer other.Close()
	t.Run("holder", func(t *testing.T) {
		Lock(t)
		if ok, err := other.TryLock(); err != nil || ok {
			t.Fatalf("a second holder took the lock: %v, %v", ok, err)
		}
	})
	// Released at the holder's end; another package's heavy test may take
	// it in between, so wait as Lock does rather than try once.
	Lock(t)
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
