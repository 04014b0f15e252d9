//go:build unix

package wechat

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestFileStoreLockFileDeletedWhileHeld: deleting the lock file while A
// holds the lock must not let B in: B waits until A unlocks, then
// re-creates the lock file, and from then on the stores serialise on it.
func TestFileStoreLockFileDeletedWhileHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wechat.txt")
	a, b, c := NewFileStore(path, nil), NewFileStore(path, nil), NewFileStore(path, nil)
	unlockA := mustLock(t, a)
	if err := os.Remove(path + LockSuffix); err != nil {
		t.Fatal(err)
	}
	if !lockedElsewhere(t, b) {
		t.Fatal("B took the lock while A held it, after the lock file was deleted")
	}
	unlockA()
	unlockB := mustLock(t, b)
	if _, err := os.Stat(path + LockSuffix); err != nil {
		t.Errorf("B did not re-create the lock file: %v", err)
	}
	if !lockedElsewhere(t, c) || !lockedElsewhere(t, a) {
		t.Error("another store took the lock while B held the re-created one")
	}
	unlockB()
	mustLock(t, c)()
}

// TestFileStoreWaiterChecksLockFile: B waits on the lock file A holds;
// the file is then replaced by another one (as an outside program or an
// older version would, without the directory lock). When A unlocks, B
// gets the flock of a file the path no longer names: it must notice and
// lock the file the path names now, where every later process will look.
func TestFileStoreWaiterChecksLockFile(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc/self/fd to see when the waiter has opened the lock file")
	}
	path := filepath.Join(t.TempDir(), "wechat.txt")
	lock := path + LockSuffix
	a, b := NewFileStore(path, nil), NewFileStore(path, nil)
	unlockA := mustLock(t, a)
	old, err := os.Stat(lock)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		u, err := b.Lock(ctx)
		if err != nil {
			t.Errorf("B: %v", err)
			u = func() {}
		}
		got <- u
	}()
	// Wait until B holds a descriptor of the old lock file (A holds one).
	for openCount(t, old) < 2 {
		time.Sleep(time.Millisecond)
	}
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	unlockA()
	unlockB := <-got
	defer unlockB()
	f, err := os.Open(lock)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Errorf("flock of the file the path names = %v, want EWOULDBLOCK: B holds the lock of a deleted file", err)
	}
}

// openCount counts the descriptors of this process open on the file fi.
func openCount(t *testing.T, fi os.FileInfo) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if fdi, err := os.Stat(filepath.Join("/proc/self/fd", e.Name())); err == nil && os.SameFile(fi, fdi) {
			n++
		}
	}
	return n
}

// TestFileStoreLockNeverSplits runs holders on separate stores (as
// separate processes) while another goroutine keeps deleting the lock
// file: two holders must never be inside at once.
func TestFileStoreLockNeverSplits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wechat.txt")
	const workers, each = 4, 50
	var inside, overlaps atomic.Int64
	stop := make(chan struct{})
	var deleter sync.WaitGroup
	deleter.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				os.Remove(path + LockSuffix)
				time.Sleep(100 * time.Microsecond)
			}
		}
	})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			s := NewFileStore(path, nil)
			for range each {
				unlock, err := s.Lock(t.Context())
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				time.Sleep(200 * time.Microsecond) // hold it while the deleter runs
				inside.Add(-1)
				unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	deleter.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d of %d lock holds overlapped another while the lock file was being deleted", n, workers*each)
	}
}
