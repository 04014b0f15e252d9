// Package respbuf buffers a handler's response for the middleware that
// must see all of it before it answers: the retry dedupe, which keeps the
// reply, and safe mode, which encrypts it.
package respbuf

import (
	"bytes"
	"net/http"
	"sync"
)

// A Buffer is an http.ResponseWriter that keeps the status (the first one
// written; 200 on a Write without one) and the body a handler writes, to
// be sent to the writer under it later. Headers go straight into that
// writer's header map, which is sent only when the status is; the
// middleware that changes the body removes Content-Length. Build it with
// New.
type Buffer struct {
	w      http.ResponseWriter
	status int
	body   bytes.Buffer
	late   bool      // see PassLater
	small  [512]byte // the body's first bytes: a passive reply fits
}

var pool = sync.Pool{New: func() any { return new(Buffer) }}

// New returns an empty Buffer over w. Release gives it back once its
// bytes are no longer needed.
func New(w http.ResponseWriter) *Buffer {
	b := pool.Get().(*Buffer)
	b.w, b.status, b.late = w, 0, false
	b.body = *bytes.NewBuffer(b.small[:0])
	return b
}

// Release lets b be reused by a later New, unless PassLater was called
// (a framework may still write into it) or its body outgrew the inline
// bytes. Neither b nor its Bytes may be used afterwards.
func Release(b *Buffer) {
	if b == nil || b.late || b.body.Cap() > len(b.small) {
		return
	}
	b.w = nil
	b.body = bytes.Buffer{}
	pool.Put(b)
}

// Header returns the header map of the writer under b.
func (b *Buffer) Header() http.Header { return b.w.Header() }

// WriteHeader keeps the first status.
func (b *Buffer) WriteHeader(code int) {
	if b.late {
		b.w.WriteHeader(code)
		return
	}
	if b.status == 0 {
		b.status = code
	}
}

// Write appends to the body.
func (b *Buffer) Write(p []byte) (int, error) {
	if b.late {
		return b.w.Write(p)
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

// PassLater sends every later call on b to the writer under it. It is for
// a handler that wrote nothing: a framework that answers after the
// middleware returned writes into the writer it gave its handler, which
// is b (echo's WrapMiddleware writes a handler's error that way), and that
// answer must reach the client rather than a buffer nobody reads.
func (b *Buffer) PassLater() { b.late = true }
