//go:build unix

package wechat

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
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
	if err := os.Remove(path + lockSuffix); err != nil {
		t.Fatal(err)
	}
	if !lockedElsewhere(t, b) {
		t.Fatal("B took the lock while A held it, after the lock file was deleted")
	}
	unlockA()
	unlockB := mustLock(t, b)
	if _, err := os.Stat(path + lockSuffix); err != nil {
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
// older version would, without the guard). When A unlocks, B
// gets the flock of a file the path no longer names: it must notice and
// lock the file the path names now, where every later process will look.
func TestFileStoreWaiterChecksLockFile(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc/self/fd to see when the waiter has opened the lock file")
	}
	path := filepath.Join(t.TempDir(), "wechat.txt")
	lock := path + lockSuffix
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
				os.Remove(path + lockSuffix)
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

// TestFileStoreLockIgnoresDirectoryFlock: an exclusive flock on the store's
// directory, which any user who can list it may take, blocks neither the
// creation of the lock file nor a Lock on an existing one.
func TestFileStoreLockIgnoresDirectoryFlock(t *testing.T) {
	dir := t.TempDir()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	s := NewFileStore(filepath.Join(dir, "wechat.txt"), nil)
	for _, state := range []string{"missing", "present"} {
		if lockedElsewhere(t, s) {
			t.Fatalf("lock file %s: the lock reads as held while only the directory is flocked", state)
		}
		if _, err := os.Lstat(s.lockPath); err != nil {
			t.Fatalf("no lock file after a Lock: %v", err)
		}
	}
	mustLock(t, s)()
	fi, err := os.Lstat(filepath.Join(dir, "wechat.txt"+guardSuffix))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("guard file: %v, %v; want a regular file of mode 0600", fi, err)
	}
}

// TestFileStoreStoresShareNoLock: two stores in one directory never wait
// for each other, not even to create a lock file.
func TestFileStoreStoresShareNoLock(t *testing.T) {
	dir := t.TempDir()
	a := NewFileStore(filepath.Join(dir, "a.txt"), nil)
	b := NewFileStore(filepath.Join(dir, "b.txt"), nil)
	unlockA := mustLock(t, a)
	defer unlockA()
	if lockedElsewhere(t, b) {
		t.Fatal("creating b's lock file waits for a's lock")
	}
	unlockB := mustLock(t, b)
	defer unlockB()
	// b's lock file deleted while b holds it: b's next holder waits, a's
	// lock is untouched.
	if err := os.Remove(b.lockPath); err != nil {
		t.Fatal(err)
	}
	if !lockedElsewhere(t, b) || !lockedElsewhere(t, a) {
		t.Error("a lock was free while its holder held it")
	}
	unlockA()
	if lockedElsewhere(t, a) {
		t.Error("a's lock waits for b's guard")
	}
}

// TestFileStoreRefusesSymlinkedGuard: a guard file that is a symbolic
// link is refused, never followed, and its target is not created.
func TestFileStoreRefusesSymlinkedGuard(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wechat.txt")
	victim := filepath.Join(dir, "victim")
	if err := os.Symlink(victim, path+guardSuffix); err != nil {
		t.Fatal(err)
	}
	unlock, err := NewFileStore(path, nil).Lock(t.Context())
	if err == nil {
		unlock()
		t.Fatal("Lock through a symbolically linked guard succeeded")
	}
	if want := path + guardSuffix; !containsAll(err.Error(), "symbolic link", want) {
		t.Errorf("Lock = %v, want an error naming the linked guard %s", err, want)
	}
	if _, err := os.Lstat(victim); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the link's target was created (%v): the guard followed the link", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
