//go:build !unix

package main

import (
	"errors"
	"time"
)

var errNoRusage = errors.New("manyapps: CPU time needs getrusage (a Unix system)")

// cpuTime is unavailable on this system.
func cpuTime() (time.Duration, error) { return 0, errNoRusage }

// processCPU is unavailable on this system.
func processCPU(int) (time.Duration, error) { return 0, errNoRusage }
