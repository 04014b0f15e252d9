package util

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// MaxFileSize bounds what ReadFile reads. A token store is a few hundred
// bytes; anything near this size is not one.
const MaxFileSize = 1 << 20

// ErrTooLarge is the error ReadFile wraps when a file is larger than
// MaxFileSize.
var ErrTooLarge = errors.New("file larger than the limit")

// WriteFileAtomic writes data to path so that a reader sees either the old
// content or the new, never a mix or a truncated file, even if the process
// dies mid-write or the machine loses power.
//
// It writes a temporary file in the same directory, syncs it, gives it perm,
// renames it over path and syncs the directory. On error the temporary file
// is removed and path is left as it was.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// The rename is durable only once the directory entry is on disk.
	if d, derr := os.Open(dir); derr == nil {
		serr := d.Sync()
		d.Close()
		// Some file systems do not support syncing a directory; the data
		// itself is already safe, so only a real I/O error is reported.
		if serr != nil && !errors.Is(serr, os.ErrInvalid) && !errors.Is(serr, errUnsupported) {
			return fmt.Errorf("write %s: sync directory: %w", path, serr)
		}
	}
	return nil
}

// ReadFile reads a file written by WriteFileAtomic. It refuses files larger
// than MaxFileSize rather than reading them whole, with an error that
// matches ErrTooLarge. A missing file gives an error that matches
// fs.ErrNotExist.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("read %s: %w of %d bytes", path, ErrTooLarge, MaxFileSize)
	}
	return data, nil
}
