package util

import "time"

// A Clock tells the time. Every package of wxcentral that reads the time
// takes one, so that tests can cross an expiry, a replay window or a
// Beijing midnight without sleeping; the zero value of an option means
// SystemClock. Timers are not part of it: code that waits uses the time
// package, and its tests run in a testing/synctest bubble.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock, time.Now.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// ClockFunc adapts a function to a Clock.
type ClockFunc func() time.Time

// Now returns f().
func (f ClockFunc) Now() time.Time { return f() }
