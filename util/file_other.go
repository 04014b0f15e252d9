//go:build !unix

package util

import "errors"

var errUnsupported = errors.ErrUnsupported
