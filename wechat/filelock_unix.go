//go:build unix

package wechat

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockFile takes the exclusive lock of a FileStore: a flock(2) on the
// regular file at path, polling every poll until it is free or ctx is done.
// It returns the function that releases the lock.
//
// A lock file that is a symbolic link is refused, never followed. A lock
// file deleted (or replaced) while it is held must not split the lock, so
// two more rules hold:
//
//   - After taking the flock, the path must still name the locked file
//     (os.SameFile on the open file and a fresh Lstat); if not, the lock
//     was taken on a file nobody else will ever open again, and lockFile
//     starts over on whatever the path names now.
//   - Every holder also holds a shared flock on the directory, and the lock
//     file is created only under an exclusive flock on the directory. So a
//     deleted lock file cannot be re-created while anyone holds the old
//     one: a second holder on a new file never overlaps the first.
//
// The directory lock is held only around creating the lock file, which
// happens once per store unless someone deletes the lock file.
func lockFile(ctx context.Context, path string, poll time.Duration) (release func() error, err error) {
	dirPath := filepath.Dir(path)
	for {
		f, err := openLockFile(ctx, path, dirPath, poll)
		if err != nil {
			return nil, err
		}
		if err := flockWait(ctx, f, syscall.LOCK_EX, poll); err != nil {
			f.Close()
			return nil, err
		}
		dir, err := os.Open(dirPath)
		if err != nil {
			f.Close()
			return nil, err
		}
		if err := flockWait(ctx, dir, syscall.LOCK_SH, poll); err != nil {
			dir.Close()
			f.Close()
			return nil, err
		}
		same, err := namesFile(path, f)
		if err != nil {
			dir.Close()
			f.Close()
			return nil, err
		}
		if same {
			return func() error {
				// Closing the descriptors releases the flocks too; unlocking
				// first reports a failure instead of hiding it.
				err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				return errors.Join(err, f.Close(), dir.Close())
			}, nil
		}
		// The lock file was deleted or replaced after we opened it: the
		// flock we hold is on a file the next process will not open.
		dir.Close()
		f.Close()
	}
}

// openLockFile opens the lock file at path without following a symbolic
// link, creating it (under the directory's exclusive lock) if it is
// missing.
func openLockFile(ctx context.Context, path, dirPath string, poll time.Duration) (*os.File, error) {
	const flags = os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_CLOEXEC
	f, err := os.OpenFile(path, flags, 0)
	if err == nil {
		return checkRegular(f, path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, symlinkLockError(path)
		}
		return nil, err
	}
	dir, err := os.Open(dirPath)
	if err != nil {
		return nil, err
	}
	defer dir.Close() // releases the exclusive lock
	if err := flockWait(ctx, dir, syscall.LOCK_EX, poll); err != nil {
		return nil, err
	}
	f, err = os.OpenFile(path, flags|os.O_CREATE, 0o600)
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, symlinkLockError(path)
		}
		return nil, err
	}
	return checkRegular(f, path)
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
