//go:build unix

package util

import "syscall"

// errUnsupported is what fsync on a directory returns where the file system
// cannot do it.
var errUnsupported error = syscall.EINVAL
