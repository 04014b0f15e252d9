package dedupe

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/wxcentral/wxcentral/middleware/internal/respbuf"
	"github.com/wxcentral/wxcentral/middleware/message"
)

// An Option configures Middleware.
type Option func(*options)

type options struct {
	ttl    time.Duration
	key    func(*http.Request) (string, bool)
	logger *slog.Logger
}

// WithTTL sets how long a claim and its reply are kept (DefaultTTL).
func WithTTL(d time.Duration) Option { return func(o *options) { o.ttl = d } }

// WithKey sets how a request's dedupe key is found. The default is the
// DedupeKey of the message the callback middleware put in the request's
// context (message.FromContext); a request without a key is passed through.
func WithKey(f func(*http.Request) (string, bool)) Option { return func(o *options) { o.key = f } }

// WithLogger sets where store failures are logged (slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// MessageKey is the default key: the DedupeKey of the request's message.
func MessageKey(r *http.Request) (string, bool) {
	m, ok := message.FromContext(r.Context())
	if !ok {
		return "", false
	}
	return m.DedupeKey(), true
}

// Middleware runs the next handler once per dedupe key within the TTL and
// answers every delivery of the key with its reply: the delivery that ran
// the handler with all the headers it set, the others with its status,
// Content-Type and body (other headers are not replayed). It buffers the
// reply, which for a passive reply is at most a few kilobytes.
//
// It belongs inside the callback middleware, after the signature check,
// decryption and parsing, and before the application's handler, so that
// it stores the plaintext reply and each delivery's reply is encrypted
// afresh. A reply with a 5xx status counts as a failure: it is sent but not
// stored, and the next delivery runs the handler again. So does a handler
// that writes nothing at all (neither WriteHeader nor Write): nothing is
// stored, and Middleware writes nothing either, leaving the answer to
// whatever wraps it (net/http sends 200 with an empty body; a framework
// such as echo, whose WrapMiddleware turns a handler's error into nothing
// written, sends its error: what it writes afterwards into the writer its
// handler had goes on to the client). A handler that means "no reply" writes
// "success" or calls WriteHeader(http.StatusOK). If the store
// fails, the handler runs anyway (a duplicate is better than a lost
// message) and the failure is logged.
func Middleware(s Store, opts ...Option) func(http.Handler) http.Handler {
	o := options{ttl: DefaultTTL, key: MessageKey}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key, ok := o.key(r)
			if !ok {
				next.ServeHTTP(w, r)
				return
			}
			var rec *respbuf.Buffer // set if this delivery runs the handler
			reply, shared, err := Do(r.Context(), s, key, o.ttl, func(ctx context.Context) (Reply, error) {
				rec = respbuf.New(w)
				next.ServeHTTP(rec, r)
				if !rec.Written() {
					// Nothing written at all: no reply to keep. A
					// framework around this middleware may answer the
					// request itself (echo's WrapMiddleware answers a
					// handler's error after it returns).
					return Reply{}, errNoReply
				}
				reply := Reply{Status: rec.Status(), ContentType: rec.Header().Get("Content-Type"), Body: rec.Bytes()}
				if rec.Status() >= 500 {
					return reply, &failedReply{reply}
				}
				return reply, nil
			})
			failed, isFailed := errors.AsType[*failedReply](err)
			switch {
			case err == nil:
			case errors.Is(err, errNoReply):
				// Pass the headers on and write nothing, as the
				// handler did, so that whoever wraps this can still
				// answer, through w or through the writer it gave
				// its handler.
				rec.PassLater()
				return
			case isFailed:
				reply = failed.r
			case errors.Is(err, ErrNotStored):
				o.logger.Warn("dedupe: reply not stored; a re-delivery will run the handler again", "key", key, "err", err)
			case r.Context().Err() != nil:
				return // the client (WeChat) gave up waiting
			default:
				o.logger.Error("dedupe: store failed; running the handler without dedupe", "key", key, "err", err)
				next.ServeHTTP(w, r)
				return
			}
			if shared {
				o.logger.Debug("dedupe: answered a re-delivery with the first reply", "key", key)
			}
			writeReply(w, reply)
			respbuf.Release(rec) // the store keeps a copy of what it stored
		})
	}
}

// errNoReply is what the handler's run returns through Do when the
// handler wrote nothing: Do abandons the claim, so the next delivery runs
// the handler again.
var errNoReply = errors.New("dedupe: the handler wrote no reply")

// failedReply carries a 5xx reply through Do, which abandons the claim.
type failedReply struct{ r Reply }

func (e *failedReply) Error() string {
	return "dedupe: handler answered " + http.StatusText(e.r.Status)
}

func writeReply(w http.ResponseWriter, r Reply) {
	if h := w.Header(); r.ContentType != "" && (len(h["Content-Type"]) != 1 || h["Content-Type"][0] != r.ContentType) {
		h.Set("Content-Type", r.ContentType)
	}
	status := r.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	w.Write(r.Body)
}
