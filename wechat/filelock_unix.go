//go:build unix

package wechat

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// openFlags opens a lock file or a guard for flock(2) only, never
// following a symbolic link.
const openFlags = os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_CLOEXEC

// lockFile takes the exclusive lock of a FileStore: a flock(2) on the
// regular file at path, polling every poll until it is free or ctx is done.
// It returns the function that releases the lock. Every wait begins with
// one non-blocking attempt, so with a ctx already done lockFile is a
// try-lock. guardPath names the lock's guard file (below).
//
// A lock file that is a symbolic link is refused, never followed. A lock
// file deleted (or replaced) while it is held must not split the lock, so
// two more rules hold:
//
//   - After taking the flock, the path must still name the locked file
//     (os.SameFile on the open file and a fresh Lstat); if not, the lock
//     was taken on a file nobody else will ever open again, and lockFile
//     starts over on whatever the path names now.
//   - Every holder also holds a shared flock on the guard file at
//     guardPath (mode 0600, never followed if a link), and a missing
//     lock file is created only under an exclusive flock on the guard. So
//     a deleted lock file cannot be re-created while anyone holds the old
//     one: a second holder on a new file never overlaps the first.
//
// The guard belongs to this one store: other stores in the directory do
// not wait for it, and, being mode 0600, it cannot be flocked by another
// user to block this one (a directory, which any user who can list it can
// open and flock, would be both shared and open to others). Deleting the
// guard alone is harmless, the next holder creates a new one; deleting
// both the lock file and the guard while the lock is held can split it.
func lockFile(ctx context.Context, path, guardPath string, poll time.Duration) (release func() error, err error) {
	for {
		f, err := openLockFile(ctx, path, guardPath, poll)
		if err != nil {
			return nil, err
		}
		if err := flockWait(ctx, f, syscall.LOCK_EX, poll); err != nil {
			f.Close()
			return nil, err
		}
		guard, err := openGuard(ctx, guardPath)
		if err != nil {
			f.Close()
			return nil, err
		}
		if err := flockWait(ctx, guard, syscall.LOCK_SH, poll); err != nil {
			guard.Close()
			f.Close()
			return nil, err
		}
		// Checked under the guard: from now on the path cannot be given a
		// new lock file until we unlock.
		same, err := namesFile(path, f)
		if err != nil {
			guard.Close()
			f.Close()
			return nil, err
		}
		if same {
			return func() error {
				// Closing the descriptors releases the flocks too; unlocking
				// first reports a failure instead of hiding it.
				err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				return errors.Join(err, f.Close(), guard.Close())
			}, nil
		}
		// The lock file was deleted or replaced after we opened it: the
		// flock we hold is on a file the next process will not open.
		guard.Close()
		f.Close()
	}
}

// openLockFile opens the lock file at path without following a symbolic
// link, creating it (under the guard's exclusive flock) if it is missing.
func openLockFile(ctx context.Context, path, guardPath string, poll time.Duration) (*os.File, error) {
	f, err := os.OpenFile(path, openFlags, 0)
	if err == nil {
		return checkRegular(f, path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, linkOr(path, err)
	}
	guard, err := openGuard(ctx, guardPath)
	if err != nil {
		return nil, err
	}
	defer guard.Close() // releases the exclusive flock
	if err := flockWait(ctx, guard, syscall.LOCK_EX, poll); err != nil {
		return nil, err
	}
	f, err = os.OpenFile(path, openFlags|os.O_CREATE, 0o600)
	if err != nil {
		return nil, linkOr(path, err)
	}
	return checkRegular(f, path)
}

// openGuard opens the guard file at path, never following a symbolic
// link, and creates it (mode 0600) if it is missing.
func openGuard(ctx context.Context, path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, openFlags, 0)
		if err == nil {
			return checkRegular(f, path)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, linkOr(path, err)
		}
		// O_EXCL fails on any existing name, a dangling link included.
		f, err = os.OpenFile(path, openFlags|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return checkRegular(f, path)
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		// Someone created it between the two opens: open theirs.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// linkOr returns the error of a lock file or guard that is a symbolic
// link, or err.
func linkOr(path string, err error) error {
	if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return symlinkLockError(path)
	}
	return err
}

// checkRegular refuses a lock "file" that is a directory, a FIFO or a
// device.
func checkRegular(f *os.File, path string) (*os.File, error) {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("lock file %s is not a regular file (%v): remove it", path, fi.Mode().Type())
	}
	return f, nil
}

func symlinkLockError(path string) error {
	return fmt.Errorf("lock file %s is a symbolic link, which wxcentral does not follow: remove it (a regular file is created in its place)", path)
}

// flockWait takes a flock of kind how on f, polling until ctx is done.
func flockWait(ctx context.Context, f *os.File, how int, poll time.Duration) error {
	var timer *time.Timer
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case !errors.Is(err, syscall.EWOULDBLOCK):
			return fmt.Errorf("flock %s: %w", f.Name(), err)
		}
		if timer == nil {
			timer = time.NewTimer(poll)
			defer timer.Stop()
		} else {
			timer.Reset(poll)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// namesFile reports whether path still names the open file f.
func namesFile(path string, f *os.File) (bool, error) {
	held, err := f.Stat()
	if err != nil {
		return false, err
	}
	now, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(held, now), nil
}
