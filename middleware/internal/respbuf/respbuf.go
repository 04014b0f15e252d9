// Package respbuf buffers a handler's response for the middleware that
// must see all of it before it answers: the retry dedupe, which keeps the
// reply, and safe mode, which encrypts it.
package respbuf

import (
	"bytes"
	"errors"
	"net/http"
	"sync"
)

// A Buffer is an http.ResponseWriter that keeps the status (the first one
// written; 200 on a Write without one) and the body a handler writes, to
// be sent to the writer under it later. Headers go straight into that
// writer's header map, which is sent only when the status is; the
// middleware that changes the body removes Content-Length. Build it with
// New.
//
// Its bytes are reused once it is released (Release): a handler that
// still writes then, against the http.ResponseWriter contract, gets
// ErrReleased, and nothing reaches the reply of another request.
type Buffer struct {
	s *state // nil once released
}

// state is what a Buffer holds; it is pooled.
type state struct {
	w      http.ResponseWriter
	status int
	body   bytes.Buffer
	late   bool      // see PassLater
	small  [512]byte // the body's first bytes: a passive reply fits
}

// ErrReleased is what a Write to a released Buffer returns.
var ErrReleased = errors.New("respbuf: write after the handler returned")

var pool = sync.Pool{New: func() any { return new(state) }}

// New returns an empty Buffer over w. Release gives its bytes back once
// they are no longer needed.
func New(w http.ResponseWriter) *Buffer {
	s := pool.Get().(*state)
	s.w, s.status, s.late = w, 0, false
	s.body = *bytes.NewBuffer(s.small[:0])
	return &Buffer{s: s}
}

// Release lets b's bytes be reused by a later New, unless PassLater was
// called (a framework may still write into b) or its body outgrew the
// inline bytes. Neither b's Bytes nor anything it returned may be used
// afterwards; a write to b fails with ErrReleased.
func Release(b *Buffer) {
	if b == nil || b.s == nil || b.s.late {
		return
	}
	s := b.s
	b.s = nil
	if s.body.Cap() > len(s.small) {
		return
	}
	s.w = nil
	s.body = bytes.Buffer{}
	pool.Put(s)
}

// Header returns the header map of the writer under b (a throwaway one
// once b is released).
func (b *Buffer) Header() http.Header {
	if b.s == nil {
		return http.Header{}
	}
	return b.s.w.Header()
}

// WriteHeader keeps the first status.
func (b *Buffer) WriteHeader(code int) {
	switch s := b.s; {
	case s == nil:
	case s.late:
		s.w.WriteHeader(code)
	case s.status == 0:
		s.status = code
	}
}

// Write appends to the body.
func (b *Buffer) Write(p []byte) (int, error) {
	s := b.s
	switch {
	case s == nil:
		return 0, ErrReleased
	case s.late:
		return s.w.Write(p)
	case s.status == 0:
		s.status = http.StatusOK
	}
	return s.body.Write(p)
}

// Status is the status written, 0 if nothing was.
func (b *Buffer) Status() int { return b.s.status }

// Bytes is the body written.
func (b *Buffer) Bytes() []byte { return b.s.body.Bytes() }

// Written reports whether the handler wrote anything: a status or a body.
func (b *Buffer) Written() bool { return b.s.status != 0 }

// PassLater sends every later call on b to the writer under it. It is for
// a handler that wrote nothing: a framework that answers after the
// middleware returned writes into the writer it gave its handler, which
// is b (echo's WrapMiddleware writes a handler's error that way), and that
// answer must reach the client rather than a buffer nobody reads.
func (b *Buffer) PassLater() { b.s.late = true }
