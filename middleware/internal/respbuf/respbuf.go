// Package respbuf buffers a handler's response for the middleware that
// must see all of it before it answers: the retry dedupe, which keeps the
// reply, and safe mode, which encrypts it.
package respbuf

import (
	"bytes"
	"net/http"
)

// A Buffer is an http.ResponseWriter that keeps what a handler writes:
// its headers, its first status (200 on a Write without one) and its body.
// Build it with New.
type Buffer struct {
	header http.Header
	status int
	body   bytes.Buffer
	late   http.ResponseWriter // see PassLater
}

// New returns an empty Buffer.
func New() *Buffer { return &Buffer{header: make(http.Header)} }

// Header returns the headers to send (those of PassLater's writer once it
// was called).
func (b *Buffer) Header() http.Header {
	if b.late != nil {
		return b.late.Header()
	}
	return b.header
}

// WriteHeader keeps the first status.
func (b *Buffer) WriteHeader(code int) {
	if b.late != nil {
		b.late.WriteHeader(code)
		return
	}
	if b.status == 0 {
		b.status = code
	}
}

// Write appends to the body.
func (b *Buffer) Write(p []byte) (int, error) {
	if b.late != nil {
		return b.late.Write(p)
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// Status is the status written, 0 if nothing was.
func (b *Buffer) Status() int { return b.status }

// Bytes is the body written.
func (b *Buffer) Bytes() []byte { return b.body.Bytes() }

// Written reports whether the handler wrote anything: a status or a body.
func (b *Buffer) Written() bool { return b.status != 0 }

// PassLater copies the headers kept (but Content-Length) to w and sends
// every later call on b to w. It is for a handler that wrote nothing: a
// framework that answers after the middleware returned writes into the
// writer it gave its handler, which is b (echo's WrapMiddleware writes a
// handler's error that way), and that answer must reach the client
// rather than a buffer nobody reads.
func (b *Buffer) PassLater(w http.ResponseWriter) {
	CopyHeader(w.Header(), b.header)
	b.late = w
}

// CopyHeader copies the headers src holds to dst, but Content-Length,
// which the server sets for the body it sends.
func CopyHeader(dst, src http.Header) {
	for k, v := range src {
		if k != "Content-Length" {
			dst[k] = v
		}
	}
}
