package middleware

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wxcentral/wxcentral/middleware/dedupe"
)

// ReplayMaxEntries bounds the (signature, timestamp, nonce) triples the
// replay check keeps in memory when it has no shared store: enough for
// about 160 plain-mode pushes a second, sustained, with the default
// window. Beyond it the triples closest to leaving the window are
// forgotten first.
const ReplayMaxEntries = 50000

// replayPrefix starts the replay check's keys in the store, apart from
// the dedupe keys (message.Message.DedupeKey) that share it.
const replayPrefix = "replay|"

// replayStore returns the store the replay check keeps triples in: the
// dedupe store when it is a shared one (dedupe.Redis, or any Store that is
// not a dedupe.Memory), else a Memory of this Verify's own, so that plain
// pushes, which stay up to twice the window, do not crowd the dedupe's
// 30-second entries out of a Memory's bounds.
func (s *settings) replayStore() dedupe.Store {
	if s.dedupe != nil {
		if _, isMemory := s.dedupe.(*dedupe.Memory); !isMemory {
			return s.dedupe
		}
	}
	return &dedupe.Memory{Clock: clockFunc(s.now), MaxEntries: ReplayMaxEntries}
}

// replayTTL is how long the triple of a push with timestamp ts must be
// kept: until ts leaves the window, when the signature check refuses it
// anyway. With the window check off it is twice the default window.
func (s *settings) replayTTL(ts int64) time.Duration {
	if s.window <= 0 {
		return 2 * DefaultTimestampWindow
	}
	left := time.Duration(ts-s.now().Unix())*time.Second + s.window + time.Second
	return max(left, time.Second)
}

// checkReplay refuses a plain-mode POST whose signature, timestamp and
// nonce an earlier accepted POST had, with another body. The plain-mode
// signature covers only the timestamp and nonce, so without this a signed
// URL seen once would carry any body for the whole window. The same triple
// with a byte-identical body is WeChat re-sending the push, and passes on
// to the dedupe, which answers it with the first reply. Bodies are
// compared by their SHA-256.
//
// If the store fails, the POST is accepted and the failure logged: a lost
// message is worse than the attack the signature and window still bound.
func (s *settings) checkReplay(r *http.Request, q query, res Result, body []byte) (Result, string) {
	ts, _ := parseSeconds(q.timestamp) // check has parsed it already
	sum := sha256.Sum256(body)
	key := replayPrefix + strings.ToLower(q.signature) + "|" + q.timestamp + "|" + q.nonce
	first, shared, err := dedupe.Do(r.Context(), s.replay, key, s.replayTTL(ts), func(context.Context) (dedupe.Reply, error) {
		return dedupe.Reply{Body: sum[:]}, nil
	})
	switch {
	case err == nil && shared && !bytes.Equal(first.Body, sum[:]):
		res.Outcome = OutcomeReplay
		return res, "signature already used with another body: refused as a replay"
	case err != nil && r.Context().Err() == nil:
		s.log(r, slog.LevelError, "wechat callback replay check failed; accepted without it", slog.String("error", err.Error()))
	}
	return res, ""
}
