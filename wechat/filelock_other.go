//go:build !unix

package wechat

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/gofrs/flock"
)

// lockFile takes the exclusive lock of a FileStore on path, polling every
// poll until it is free or ctx is done; every wait begins with one
// attempt, so with a ctx already done lockFile is a try-lock. Off unix it
// refuses a symbolic link and checks, after locking, that the path still
// names the locked file. The guard file (the second argument) that keeps a
// deleted lock file from being re-created while held is used on unix only:
// there a held file cannot be deleted.
func lockFile(ctx context.Context, path, _ string, poll time.Duration) (release func() error, err error) {
	for {
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("lock file %s is a symbolic link, which wxcentral does not follow: remove it", path)
		}
		fl := flock.New(path, flock.SetPermissions(0o600))
		if err := tryLockWait(ctx, fl, poll); err != nil {
			fl.Close()
			return nil, err
		}
		held, err := fl.Stat()
		if err != nil {
			fl.Close()
			return nil, err
		}
		if now, err := os.Lstat(path); err == nil && os.SameFile(held, now) {
			return func() error { return errors.Join(fl.Unlock(), fl.Close()) }, nil
		}
		fl.Close()
	}
}

// tryLockWait tries fl every poll until it is locked or ctx is done.
func tryLockWait(ctx context.Context, fl *flock.Flock, poll time.Duration) error {
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for {
		ok, err := fl.TryLock()
		if err != nil || ok {
			return err
		}
		timer.Reset(poll)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}
