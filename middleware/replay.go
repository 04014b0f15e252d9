package middleware

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wxcentral/wxcentral/middleware/dedupe"
	"github.com/wxcentral/wxcentral/util"
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
// dedupe store when it is a shared one (redisstore.Dedupe, or any Store that is
// not a dedupe.Memory), else a Memory of this Verify's own, so that plain
// pushes' triples do not crowd the dedupe's replies out of a Memory's
// bounds.
func (s *settings) replayStore() dedupe.Store {
	if s.dedupe != nil {
		if _, isMemory := s.dedupe.(*dedupe.Memory); !isMemory {
			return s.dedupe
		}
	}
	// Two entries a triple: the body's hash and the run claim.
	return &dedupe.Memory{Clock: util.ClockFunc(s.now), MaxEntries: 2 * ReplayMaxEntries}
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

// A replay says what the replay check found for a POST: the keys of its
// triple, and whether an accepted POST had the same triple and body.
type replay struct {
	key   string // the triple's key in s.replay; "" if the check failed
	run   string // key + "|run", made with it in one allocation
	again bool   // an accepted POST had this triple with this body
	ttl   time.Duration
}

// runKey is the key of the triple's run claim: held while a delivery of
// the triple runs the next handler, finished once one has answered it,
// abandoned when it failed (nothing written, or a 5xx).
func (rp replay) runKey() string { return rp.run }

// checkReplay refuses a POST whose signature, timestamp and nonce (and in
// safe mode msg_signature) an earlier accepted POST had, with another
// body. The plain-mode signature covers only the timestamp and nonce, so
// without this a signed URL seen once would carry any body for the whole
// window. The same triple with a byte-identical body is WeChat re-sending
// the push (or someone replaying it), and passes with again set; see
// claimRun for what happens to it then. Bodies are compared by their
// SHA-256. In safe mode msg_signature covers the body already, so only
// again matters there.
//
// If the store fails, the POST is accepted and the failure logged: a lost
// message is worse than the attack the signature and window still bound.
func (s *settings) checkReplay(r *http.Request, q query, res Result, body []byte) (Result, string, replay) {
	ts, _ := parseSeconds(q.timestamp) // check has parsed it already
	b := make([]byte, 0, len(replayPrefix)+len(q.signature)+len(q.timestamp)+len(q.nonce)+len(q.msgSignature)+sha256.Size+8)
	b = append(b, replayPrefix...)
	b = appendLower(b, q.signature)
	b = append(b, '|')
	b = append(b, q.timestamp...)
	b = append(b, '|')
	b = append(b, q.nonce...)
	if res.Encrypted {
		b = append(b, '|')
		b = appendLower(b, q.msgSignature)
	}
	b = append(b, "|run"...)
	run := string(b)
	key := run[:len(run)-len("|run")]
	sum := sha256.Sum256(body)
	digest := append(b[:0], sum[:]...) // b is free again, and big enough
	rp := replay{key: key, run: run, ttl: s.replayTTL(ts)}
	first, shared, err := dedupe.Put(r.Context(), s.replay, key, rp.ttl, dedupe.Reply{Body: digest})
	switch {
	case err == nil && shared && !bytes.Equal(first.Body, digest):
		res.Outcome = OutcomeReplay
		return res, "signature already used with another body: refused as a replay", replay{}
	case err == nil:
		rp.again = shared
	case r.Context().Err() == nil:
		s.log(r, slog.LevelError, "wechat callback replay check failed; accepted without it", slog.String("error", err.Error()))
		fallthrough
	default:
		rp.key = ""
	}
	return res, "", rp
}

// claimRun decides whether this delivery of an accepted triple runs the
// next handler, by the triple's run claim (runKey). The first delivery
// claims it. A later one waits while the claim is held, and claims it
// itself if every delivery before it failed (the claim was abandoned, as
// the dedupe abandons its own, so WeChat's re-delivery after a failure
// runs the handler again). Once a delivery has answered, claimRun
// returns false for every later one: it is answered from the dedupe's
// reply, or refused, and never runs the handler again.
func (s *settings) claimRun(ctx context.Context, rp replay) (bool, error) {
	for range 3 {
		first, err := s.replay.Begin(ctx, rp.runKey(), rp.ttl)
		if err != nil || first {
			return first, err
		}
		if _, err := s.replay.Wait(ctx, rp.runKey()); !errors.Is(err, dedupe.ErrAbandoned) {
			return false, err
		}
	}
	return false, errors.New("middleware: a callback's run was abandoned 3 times in a row")
}

// settleRun ends this delivery's run claim: finished if the next handler
// answered (a status below 500), abandoned if it failed or wrote nothing,
// so that a re-delivery runs it again. Like every settling of a claim it
// must outlive WeChat hanging up, which the store sees to (dedupe.Store).
func (s *settings) settleRun(ctx context.Context, rp replay, status int) {
	if status > 0 && status < 500 {
		s.replay.Finish(ctx, rp.runKey(), dedupe.Reply{})
		return
	}
	s.replay.Abandon(ctx, rp.runKey())
}

// dedupeTTL is how long the dedupe keeps a reply: as long as the triple of
// the push it answers can come back inside the window (2 window + 1 s, the
// longest replayTTL), and at least dedupe.DefaultTTL. A shorter one let an
// identical replay run the handler again once the reply was forgotten.
func (s *settings) dedupeTTL() time.Duration {
	window := s.window
	if window <= 0 {
		window = DefaultTimestampWindow
	}
	return max(dedupe.DefaultTTL, 2*window+time.Second)
}

// errReplyGone ends the dedupe lookup of a replayed push whose reply is no
// longer kept: Do must not claim the key and run anything.
var errReplyGone = errors.New("middleware: the reply to a replayed callback is no longer kept")

// appendLower appends s to b with ASCII letters in lower case, as
// strings.ToLower does for the hex digits of a signature.
func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return append(b, strings.ToLower(s[i:])...)
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}
