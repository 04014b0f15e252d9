package middleware

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/wxcentral/wxcentral/middleware/dedupe"
	"github.com/wxcentral/wxcentral/middleware/internal/pushctx"
	"github.com/wxcentral/wxcentral/middleware/internal/respbuf"
	"github.com/wxcentral/wxcentral/middleware/msgcrypt"
	"github.com/wxcentral/wxcentral/util"
)

// Defaults of the options.
const (
	// DefaultTimestampWindow is how far a callback's timestamp may be from
	// the server's clock, either way, unless WithTimestampWindow says
	// otherwise. WeChat retries a push for about 15 s, so five minutes
	// leaves ample room for clock skew.
	DefaultTimestampWindow = 5 * time.Minute

	// DefaultMaxBodySize is the largest POST body accepted unless
	// WithMaxBodySize says otherwise: 1 MiB, far above any WeChat message.
	DefaultMaxBodySize int64 = 1 << 20
)

// allowed is the Allow header of a 405 answer.
const allowed = "GET, POST"

// An Option configures the middleware built by Verify.
type Option func(*settings)

// settings is what the options set; Verify fills in the defaults first.
type settings struct {
	token     string
	previous  string
	window    time.Duration
	maxBody   int64
	logger    *slog.Logger
	now       func() time.Time
	onResult  func(*http.Request, Result)
	badOption string

	// Safe mode: set by WithAES and friends; crypter is built from them.
	aesAppID    string
	aesKey      *msgcrypt.Key
	aesPrevious *msgcrypt.Key
	allowPlain  bool
	crypter     *msgcrypt.Crypter

	dedupe    dedupe.Store
	dedupeSet bool // WithDedupe was given, maybe with nil

	trusted []netip.Prefix // WithTrustedProxies: masked, IPv4 unmapped

	// The replay check's accepted triples (see checkReplay): in a shared
	// store, or in a memory of this Verify's own; one of the two is set.
	replay    dedupe.Store
	replayMem *replayMemory
}

// WithPreviousToken also accepts signatures made with token, the callback
// token being replaced. Rotate by deploying the new token with the old one
// as previous, changing the token on the official account platform, and
// dropping the previous token once Result.PreviousToken stays false. An
// empty token accepts nothing more.
func WithPreviousToken(token string) Option {
	return func(s *settings) { s.previous = token }
}

// WithTimestampWindow sets how far the timestamp of a callback may be from
// the clock, either way, to the second; older or newer callbacks are
// rejected with 403 as replays. Zero turns the check off (a timestamp must
// still be a decimal number); a negative d makes Verify panic. The default
// is DefaultTimestampWindow.
func WithTimestampWindow(d time.Duration) Option {
	return func(s *settings) {
		if d < 0 {
			s.badOption = "WithTimestampWindow: the window must not be negative (0 turns the check off)"
		}
		s.window = d
	}
}

// WithMaxBodySize sets the largest POST body, in bytes, the middleware
// accepts; a larger one is answered with 413. n must be positive, or Verify
// panics. The default is DefaultMaxBodySize.
func WithMaxBodySize(n int64) Option {
	return func(s *settings) {
		if n <= 0 {
			s.badOption = "WithMaxBodySize: the size must be positive"
		}
		s.maxBody = n
	}
}

// WithLogger sets the logger requests are logged to: rejections at Warn,
// accepted callbacks at Info (one line each), store failures at Error.
// The default, or a nil l, is slog.Default() at the time of logging.
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) { s.logger = l }
}

// WithClock sets the clock the timestamp window is checked against, and
// that the replay memory, the default dedupe store, the logged latency and
// the messages' ReceivedAt (the CreateTime of their replies) follow. The default, or a nil c, is util.SystemClock. A test passes a
// fake clock, or a function as a util.ClockFunc.
func WithClock(c util.Clock) Option {
	return func(s *settings) {
		s.now = nil
		if c != nil {
			s.now = c.Now
		}
	}
}

// WithResultFunc sets a function called once for every request the
// middleware sees, with what it decided, before the next handler runs
// (for OutcomePass) or the middleware writes its answer (for the others).
// A metrics layer counts callback checks by Result.Outcome with it. fn runs
// on the request's goroutine, must be safe for concurrent use, and must not
// write to the response.
func WithResultFunc(fn func(r *http.Request, res Result)) Option {
	return func(s *settings) { s.onResult = fn }
}

// Verify returns a middleware that lets only genuine WeChat callbacks
// signed with token through to the next handler. Use it with net/http,
//
//	http.Handle("/wechat", middleware.Verify(token)(handler))
//
// or with gorilla/mux, router.Use(middleware.Verify(token)).
//
// What it does with a request:
//
//   - The query's signature, timestamp and nonce must each be present once
//     (else 400); timestamp must be decimal seconds (else 400); signature
//     must be hex sha1 of the sorted token, timestamp and nonce, compared
//     in constant time, upper or lower case (else 403); timestamp must be
//     within the window of the clock (else 403). Other query parameters,
//     such as openid, are left to the next handler.
//   - A GET that passes is the configuration handshake: the middleware
//     answers 200, text/plain, with echostr exactly as sent, and does not
//     call the next handler. A GET that passes without echostr is not a
//     handshake WeChat sends; it is answered 400, not passed on. The
//     handshake is the same in every mode, plain echostr.
//   - A POST that passes has its body read in full before the next handler
//     runs, up to the maximum size (413 beyond it, and 400 if reading
//     fails).
//   - With encrypt_type=aes in the query (safe and compatible mode), the
//     POST needs an EncodingAESKey (WithAES; else 400) and msg_signature
//     (else 400); the body must be an envelope with an Encrypt field, as
//     XML or JSON (else 400), msg_signature must be the sorted sha1 of
//     token, timestamp, nonce and Encrypt (else 403), Encrypt must decrypt
//     (else 400) and name the configured AppID (else 403). A plaintext body,
//     or the plaintext fields of a compatible-mode body, are never used. A
//     POST without encrypt_type=aes is refused with 403 when a key is
//     configured, unless WithAllowPlaintext(true) is given.
//   - The (decrypted) body must be a WeChat push, XML or JSON, with a
//     MsgType (else 400). It is parsed once into a message.Message, which
//     the next handler gets with message.FromContext(r.Context()). The next
//     handler also gets r.Body replaced by the plaintext push, with
//     r.ContentLength set to its length, and can read it at leisure.
//   - WeChat's re-deliveries of a push are answered with the first
//     delivery's reply without running the next handler again (WithDedupe).
//   - In safe mode the next handler's reply is buffered; a 2xx reply other
//     than "" or "success" is encrypted with the token and key that opened
//     the message into a reply envelope (XML, or JSON when the push was
//     JSON) with a fresh TimeStamp, the request's Nonce and its
//     MsgSignature. "", "success" and error statuses go out as written.
//   - A plain-mode POST whose signature, timestamp and nonce an accepted
//     POST had already, with another body, is refused with 403 as a replay;
//     with a byte-identical body (in any mode) it is WeChat re-sending the
//     push: once a delivery of it has been answered it never runs the next
//     handler again, it gets the stored reply, or 403 if that is no longer
//     kept (see the package documentation).
//   - Any other method is answered 405 with Allow: GET, POST.
//
// Every rejection has a plain-text body of a few words saying why, and is
// logged once at level Warn with the reason and the remote address. Every
// accepted callback is logged once at level Info, after the next handler
// has answered: outcome (echo or pass), msg_type, event, user (a short
// hash of the sender's OpenID), encrypted, status, latency, method, path
// and remote (see WithTrustedProxies). No line ever contains the token, a
// key, the body or an OpenID in clear.
//
// Verify panics if token is empty (anyone could sign with it) or an option
// is out of range or malformed; both are programming errors, found at
// start-up.
func Verify(token string, opts ...Option) func(http.Handler) http.Handler {
	if token == "" {
		panic("middleware: Verify needs the callback token: with an empty token anyone can sign a callback")
	}
	s := &settings{
		token:   token,
		window:  DefaultTimestampWindow,
		maxBody: DefaultMaxBodySize,
	}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	if s.badOption == "" && s.aesPrevious != nil && s.aesKey == nil {
		s.badOption = "WithPreviousAESKey: the previous key needs a current one (WithAES)"
	}
	if s.badOption != "" {
		panic("middleware: " + s.badOption)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.aesKey != nil {
		s.crypter = &msgcrypt.Crypter{
			Token:         s.token,
			PreviousToken: s.previous,
			AppID:         s.aesAppID,
			Key:           s.aesKey,
			PreviousKey:   s.aesPrevious,
		}
	}
	if !s.dedupeSet {
		// As many entries as the replay memory has triples: a reply
		// must outlive its push's triple (see dedupeTTL).
		s.dedupe = &dedupe.Memory{Clock: util.ClockFunc(s.now), MaxEntries: ReplayMaxEntries}
	}
	s.replayStore()
	return func(next http.Handler) http.Handler {
		if next == nil {
			panic("middleware: the handler Verify wraps is nil")
		}
		inner := next
		if s.dedupe != nil {
			var opts []dedupe.Option
			if s.logger != nil {
				opts = append(opts, dedupe.WithLogger(s.logger))
			}
			opts = append(opts, dedupe.WithTTL(s.dedupeTTL()))
			inner = dedupe.Middleware(s.dedupe, opts...)(next)
		}
		return &handler{s: s, next: inner}
	}
}

type handler struct {
	s    *settings
	next http.Handler // the wrapped handler, behind the dedupe if any
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	q, res, reason := s.check(r)
	if res.Outcome == OutcomePass {
		res, reason = s.mode(q, res)
	}
	if res.Outcome == OutcomePass {
		var body []byte
		body, res.Outcome, reason = s.readBody(w, r)
		if res.Outcome == OutcomePass {
			var in inbound
			in, res, reason = s.open(q, res, body)
			var rp replay
			if res.Outcome == OutcomePass {
				res, reason, rp = s.checkReplay(r, q, res, body)
			}
			if res.Outcome == OutcomePass {
				res, reason = h.serve(w, r, q, res, in, rp)
			}
			if res.Outcome == OutcomePass {
				return
			}
		}
	}
	// Log and report before answering, so that whoever sees the answer
	// can rely on both having happened.
	if res.Outcome == OutcomeEcho {
		s.report(r, res)
		s.logAccepted(r, res, nil, http.StatusOK, 0)
		hdr := w.Header()
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, q.echostr)
		return
	}
	status := res.Outcome.Status()
	s.logReject(r, res.Outcome, status, reason)
	s.report(r, res)
	if res.Outcome == OutcomeBadMethod {
		w.Header().Set("Allow", allowed)
	}
	http.Error(w, reason, status)
}

// serve hands an accepted POST to the next handler, and in safe mode
// encrypts its reply. A POST whose triple and body a delivery has already
// answered does not run the handler: it gets the dedupe's stored reply,
// or, when that is no longer kept, serve returns OutcomeReplay for the
// caller to refuse it. serve returns OutcomePass when it has answered (or
// the client is gone).
func (h *handler) serve(w http.ResponseWriter, r *http.Request, q query, res Result, in inbound, rp replay) (Result, string) {
	s := h.s
	ctx := r.Context()
	run, claimed := true, false // claimed: this delivery holds the run claim
	if s.dedupe != nil && (rp.key != "" || rp.err != nil) {
		var err error
		claimed, err = s.claimRun(ctx, rp)
		switch {
		case err == nil:
			run = claimed
		case ctx.Err() != nil:
			return res, "" // WeChat gave up waiting
		default:
			s.log(r, slog.LevelError, "wechat callback replay check failed; handler run without it", slog.String("error", err.Error()))
		}
	}
	var stored *dedupe.Reply
	if !run {
		reply, _, err := dedupe.Do(ctx, s.dedupe, in.msg.DedupeKey(), s.dedupeTTL(), func(context.Context) (dedupe.Reply, error) {
			return dedupe.Reply{}, errReplyGone
		})
		switch {
		case err == nil:
			stored = &reply
		case errors.Is(err, errReplyGone):
			res.Outcome = OutcomeReplay
			return res, "callback answered already and its reply is no longer kept: refused as a replay"
		case ctx.Err() != nil:
			return res, ""
		default:
			// The store failed: as the dedupe does then, a duplicate
			// run is better than a lost message.
			s.log(r, slog.LevelError, "wechat callback reply lookup failed; handler run again", slog.String("error", err.Error()))
		}
	}
	// The request the next handler gets, with the message in its context
	// (as message.NewContext puts it there), its body and its writer, in
	// one allocation.
	p := &struct {
		req http.Request
		ctx pushctx.Context
		rb  bufferedBody
		sw  statusWriter
	}{ctx: pushctx.Context{Context: ctx, V: in.msg}, sw: statusWriter{ResponseWriter: w}}
	p.req = *r.WithContext(&p.ctx) // a copy on the stack, where WithContext is inlined
	r = &p.req
	rb, sw := &p.rb, &p.sw
	rb.Reset(in.plain)
	r.Body = rb
	r.ContentLength = int64(len(in.plain))
	s.report(r, res)
	start := s.now()
	settled := false
	if claimed {
		defer func() {
			if !settled { // the handler panicked
				s.settleRun(r.Context(), rp, http.StatusInternalServerError)
			}
		}()
	}
	next := h.next
	if stored != nil {
		next = storedReply(*stored)
	}
	if !res.Encrypted {
		next.ServeHTTP(sw, r)
	} else {
		rec := respbuf.New(sw)
		next.ServeHTTP(rec, r)
		s.seal(sw, r, rec, in, q.nonce)
		respbuf.Release(rec)
	}
	if claimed {
		s.settleRun(r.Context(), rp, sw.written())
	}
	settled = true
	s.logAccepted(r, res, in.msg, sw.written(), s.now().Sub(start))
	return Result{Outcome: OutcomePass}, ""
}

// storedReply answers with a reply the dedupe kept, as the dedupe answers
// a re-delivery: status, Content-Type and body.
type storedReply dedupe.Reply

func (sr storedReply) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if sr.ContentType != "" {
		w.Header().Set("Content-Type", sr.ContentType)
	}
	status := sr.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	w.Write(sr.Body)
}

// bufferedBody is the body the next handler reads: the bytes read up front.
type bufferedBody struct{ bytes.Reader }

// Close does nothing; the server closes the connection's body itself.
func (*bufferedBody) Close() error { return nil }

func (s *settings) report(r *http.Request, res Result) {
	if s.onResult != nil {
		s.onResult(r, res)
	}
}

func (s *settings) logReject(r *http.Request, o Outcome, status int, reason string) {
	s.log(r, slog.LevelWarn, "wechat callback rejected",
		slog.String("outcome", o.String()),
		slog.String("reason", reason),
		slog.Int("status", status),
	)
}

// log logs msg with attrs and the request's method, path and remote
// address (the client's, from a trusted proxy's header, see
// WithTrustedProxies).
func (s *settings) log(r *http.Request, level slog.Level, msg string, attrs ...slog.Attr) {
	l := s.logger
	if l == nil {
		l = slog.Default()
	}
	remote, forwarded := s.clientAddr(r)
	attrs = append(attrs,
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("remote", remote),
	)
	if forwarded {
		attrs = append(attrs, slog.String("peer", r.RemoteAddr))
	}
	l.LogAttrs(r.Context(), level, msg, attrs...)
}

// check decides a request on its method and query alone. It returns
// OutcomePass for a POST that may go on once its body is read. It does not
// allocate for typical parameters.
func (s *settings) check(r *http.Request) (query, Result, string) {
	var q query
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return q, Result{Outcome: OutcomeBadMethod}, "method not allowed: use GET or POST"
	}
	q, reason := parseQuery(r.URL.RawQuery)
	if reason != "" {
		return q, Result{Outcome: OutcomeBadQuery}, reason
	}
	switch {
	case q.signature == "":
		return q, Result{Outcome: OutcomeMissingParam}, "missing signature"
	case q.timestamp == "":
		return q, Result{Outcome: OutcomeMissingParam}, "missing timestamp"
	case q.nonce == "":
		return q, Result{Outcome: OutcomeMissingParam}, "missing nonce"
	}
	ts, ok := parseSeconds(q.timestamp)
	if !ok {
		return q, Result{Outcome: OutcomeBadTimestamp}, "timestamp is not a number of seconds"
	}
	var res Result
	switch {
	case util.VerifySignature(q.signature, s.token, q.timestamp, q.nonce):
	case s.previous != "" && util.VerifySignature(q.signature, s.previous, q.timestamp, q.nonce):
		res.PreviousToken = true
	default:
		res.Outcome = OutcomeBadSignature
		return q, res, "signature mismatch"
	}
	if s.window > 0 && !within(s.now().Unix(), ts, s.window) {
		res.Outcome = OutcomeStale
		return q, res, "timestamp outside the allowed window: check the server clock"
	}
	if r.Method == http.MethodPost {
		res.Outcome = OutcomePass
		return q, res, ""
	}
	if q.echostr == "" {
		res.Outcome = OutcomeNoEcho
		return q, res, "missing echostr"
	}
	res.Outcome = OutcomeEcho
	return q, res, ""
}

// within reports whether ts is no more than window, in whole seconds, from
// now. Both are Unix seconds; ts is not negative.
func within(now, ts int64, window time.Duration) bool {
	limit := int64(window / time.Second)
	d := now - ts // cannot overflow: now is far from the int64 limits
	return d <= limit && d >= -limit
}

// parseSeconds parses a timestamp: decimal digits only, no sign, no
// spaces, fitting an int64.
func parseSeconds(s string) (int64, bool) {
	if s == "" || len(s) > 18 { // 18 digits always fit; more is no timestamp
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// readBody reads a POST body whole, at most s.maxBody bytes of it.
func (s *settings) readBody(w http.ResponseWriter, r *http.Request) ([]byte, Outcome, string) {
	const tooLarge = "request body too large"
	if r.ContentLength > s.maxBody {
		return nil, OutcomeTooLarge, tooLarge
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, OutcomePass, ""
	}
	// One byte more than the declared length lets the final Read see
	// io.EOF without growing the buffer.
	size := int64(512)
	if r.ContentLength >= 0 {
		size = r.ContentLength + 1
	}
	buf := make([]byte, 0, size)
	body := http.MaxBytesReader(w, r.Body, s.maxBody)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, OutcomePass, ""
		}
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				return nil, OutcomeTooLarge, tooLarge
			}
			return nil, OutcomeBodyError, "could not read the request body"
		}
	}
}
