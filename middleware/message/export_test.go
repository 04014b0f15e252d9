package message

import (
	"testing"
	"time"
)

// For the external tests, which run replies through the middleware.

// Decoded is decoded for the external tests.
type Decoded = decoded

// ReplyCases returns one reply of each type, named, with its reply and check.
func ReplyCases() (names []string, replies []Reply, checks []func(*testing.T, Decoded)) {
	for _, c := range replyCases() {
		names, replies, checks = append(names, c.name), append(replies, c.reply), append(checks, c.check)
	}
	return
}

// CheckReply is checkReply for the external tests.
func CheckReply(t *testing.T, body []byte, asJSON bool, at time.Time) Decoded {
	t.Helper()
	return checkReply(t, body, asJSON, at)
}
