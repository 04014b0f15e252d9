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

// replayStore sets where the replay check keeps triples: in the dedupe
// store when it is a shared one (redisstore.Dedupe, or any Store that is
// not a dedupe.Memory), else in a replayMemory of this Verify's own, so
// that plain pushes' triples do not crowd the dedupe's replies out of a
// Memory's bounds.
func (s *settings) replayStore() {
	if s.dedupe != nil {
		if _, isMemory := s.dedupe.(*dedupe.Memory); !isMemory {
			s.replay = s.dedupe
			return
		}
	}
	s.replayMem = &replayMemory{now: s.now, maxEntries: ReplayMaxEntries}
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
// triple, and, with a replayMemory, the run claim it took already.
type replay struct {
	key string // the triple's key; "" if the check failed
	run string // with a shared store: key + "|run", made with it in one allocation
	ttl time.Duration

	// With a replayMemory, which checks and claims in one step (s.dedupe
	// is set, else no claim is asked):
	seq     uint64 // the claim's, for settle
	claimed bool   // this delivery holds the run claim
	err     error  // the context ended while another delivery held it
}

// runKey is the key of the triple's run claim in a shared store: held
// while a delivery of the triple runs the next handler, finished once one
// has answered it, abandoned when it failed (nothing written, or a 5xx).
func (rp replay) runKey() string { return rp.run }

// checkReplay refuses a POST whose signature, timestamp and nonce (and in
// safe mode msg_signature) an earlier accepted POST had, with another
// body. The plain-mode signature covers only the timestamp and nonce, so
// without this a signed URL seen once would carry any body for the whole
// window. The same triple with a byte-identical body is WeChat re-sending
// the push (or someone replaying it), and passes; see claimRun for what
// happens to it then. Bodies are compared by their SHA-256. In safe mode msg_signature covers the body already, so only
// the identical replay matters there.
//
// If the store fails, the POST is accepted and the failure logged: a lost
// message is worse than the attack the signature and window still bound.
func (s *settings) checkReplay(r *http.Request, q query, res Result, body []byte) (Result, string, replay) {
	const otherBody = "signature already used with another body: refused as a replay"
	ts, _ := parseSeconds(q.timestamp) // check has parsed it already
	var buf [128]byte                  // room for a typical key on the stack
	b := append(buf[:0], replayPrefix...)
	b = appendLower(b, q.signature)
	b = append(b, '|')
	b = append(b, q.timestamp...)
	b = append(b, '|')
	b = append(b, q.nonce...)
	if res.Encrypted {
		b = append(b, '|')
		b = appendLower(b, q.msgSignature)
	}
	sum := sha256.Sum256(body)
	rp := replay{ttl: s.replayTTL(ts)}
	if m := s.replayMem; m != nil {
		key, seq, v, err := m.check(r.Context(), b, &sum, rp.ttl, s.dedupe != nil)
		if v == verdictOtherBody {
			res.Outcome = OutcomeReplay
			return res, otherBody, replay{}
		}
		rp.key, rp.seq, rp.claimed, rp.err = key, seq, v == verdictRun, err
		return res, "", rp
	}
	b = append(b, "|run"...)
	run := string(b)
	key := run[:len(run)-len("|run")]
	digest := append([]byte(nil), sum[:]...) // sum and buf stay on the stack
	rp.key, rp.run = key, run
	first, shared, err := dedupe.Put(r.Context(), s.replay, key, rp.ttl, dedupe.Reply{Body: digest})
	switch {
	case err == nil && shared && !bytes.Equal(first.Body, digest):
		res.Outcome = OutcomeReplay
		return res, otherBody, replay{}
	case err == nil:
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
	if s.replayMem != nil {
		return rp.claimed, rp.err // check claimed it
	}
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
	answered := status > 0 && status < 500
	if s.replayMem != nil {
		s.replayMem.settle(rp.key, rp.seq, answered)
		return
	}
	if answered {
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
// strings.ToLower does for the hex digits of a signature. A signature in
// lower case already, as WeChat sends it, is appended as it is.
func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			return appendLowerFrom(append(b, s[:i]...), s[i:])
		}
	}
	return append(b, s...)
}

func appendLowerFrom(b []byte, s string) []byte {
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
