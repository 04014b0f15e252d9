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
// poll until it is free or ctx is done. Off unix it refuses a symbolic link
// and checks, after locking, that the path still names the locked file;
// the directory lock that keeps a deleted lock file from being re-created
// while held exists on unix only.
func lockFile(ctx context.Context, path string, poll time.Duration) (release func() error, err error) {
	for {
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("lock file %s is a symbolic link, which wxcentral does not follow: remove it", path)
		}
		fl := flock.New(path, flock.SetPermissions(0o600))
		ok, err := fl.TryLockContext(ctx, poll)
		if err != nil || !ok {
			fl.Close()
			if err == nil {
				err = ctx.Err()
			}
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
