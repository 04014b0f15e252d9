package middleware

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/wxcentral/wxcentral/middleware/message"
)

// logAccepted writes the one Info line of an accepted callback: what it
// was, how it was answered and how long that took. m is nil for the GET
// handshake. It never logs the body, the query (openid, the signatures) or
// the sender's OpenID; the sender appears as userHash. status is 0 when
// nothing was written: the answer is left to whatever wraps the
// middleware.
func (s *settings) logAccepted(r *http.Request, res Result, m *message.Message, status int, latency time.Duration) {
	l := s.logger
	if l == nil {
		l = slog.Default()
	}
	if !l.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs, slog.String("outcome", res.Outcome.String()))
	if m != nil {
		attrs = append(attrs, slog.String("msg_type", m.MsgType))
		if m.Event != "" {
			attrs = append(attrs, slog.String("event", m.Event))
		}
		if m.FromUserName != "" {
			attrs = append(attrs, slog.String("user", userHash(m.FromUserName)))
		}
		attrs = append(attrs, slog.Bool("encrypted", res.Encrypted))
	}
	attrs = append(attrs,
		slog.Int("status", status),
		slog.Duration("latency", latency),
	)
	s.log(r, slog.LevelInfo, "wechat callback", attrs...)
}

// userHash is the first 8 hex digits of the SHA-256 of an OpenID: enough
// to follow one user through the logs, not to recover the OpenID.
func userHash(openID string) string {
	sum := sha256.Sum256([]byte(openID))
	return hex.EncodeToString(sum[:4])
}

// statusWriter notes the status a handler answers with, for the log line.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Flush flushes the connection's writer, if it can be flushed.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// written is the status the handler answered with; 0 if it wrote nothing
// at all, when whatever wraps the middleware answers after it returned
// (net/http sends 200, echo's WrapMiddleware the handler's error), which
// the access line, written before, cannot know.
func (w *statusWriter) written() int { return w.status }
