package respbuf

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBuffer(t *testing.T) {
	w := httptest.NewRecorder()
	b := New(w)
	if b.Written() || b.Status() != 0 {
		t.Fatal("a new Buffer has something written")
	}
	b.Header().Set("Content-Type", "text/xml")
	b.Write([]byte("<xml/>"))
	b.WriteHeader(http.StatusTeapot) // after a Write: 200 stays
	if b.Status() != http.StatusOK || string(b.Bytes()) != "<xml/>" || w.Header().Get("Content-Type") != "text/xml" {
		t.Errorf("status %d body %q header %q", b.Status(), b.Bytes(), w.Header().Get("Content-Type"))
	}
	if w.Body.Len() != 0 || w.Code != http.StatusOK || w.Flushed {
		t.Error("the Buffer wrote through to the writer under it")
	}
}

// TestPassLater: once PassLater is called, writes go to the writer under
// the Buffer, and Release leaves the Buffer alone, since a framework may
// still write into it.
func TestPassLater(t *testing.T) {
	w := httptest.NewRecorder()
	b := New(w)
	b.PassLater()
	Release(b)
	http.Error(b, "internal error", http.StatusInternalServerError)
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "internal error") {
		t.Errorf("late write: %d %q", w.Code, w.Body)
	}
	if n := New(httptest.NewRecorder()); n.s == b.s {
		t.Error("a Buffer passed on was reused")
	}
}

// TestRelease: a released Buffer comes back empty, over its new writer; one
// whose body outgrew the inline bytes is not kept.
func TestRelease(t *testing.T) {
	b := New(httptest.NewRecorder())
	b.WriteHeader(http.StatusAccepted)
	b.Write([]byte("first"))
	Release(b)
	w := httptest.NewRecorder()
	n := New(w)
	if n.Written() || len(n.Bytes()) != 0 || n.s.w != w {
		t.Errorf("a Buffer from the pool: status %d body %q", n.Status(), n.Bytes())
	}
	n.Write([]byte(strings.Repeat("x", 2*len(n.s.small))))
	grown := n.s
	Release(n)
	if got := New(httptest.NewRecorder()); got.s == grown {
		t.Error("a Buffer whose body outgrew its inline bytes was kept")
	}
	Release(nil) // no-op
}

// TestWriteAfterRelease: a handler that keeps its writer and writes after
// it returned (against the http.ResponseWriter contract) gets an error,
// and its bytes reach no other request's reply.
func TestWriteAfterRelease(t *testing.T) {
	old := New(httptest.NewRecorder())
	old.Write([]byte("first reply"))
	Release(old)
	next := New(httptest.NewRecorder()) // may have old's bytes
	next.Write([]byte("second"))
	if n, err := old.Write([]byte("LEAK")); err != ErrReleased || n != 0 {
		t.Errorf("Write after Release = %d, %v; want 0, ErrReleased", n, err)
	}
	old.WriteHeader(http.StatusTeapot)
	old.Header().Set("X-Leak", "1")
	if string(next.Bytes()) != "second" || next.Status() != http.StatusOK || next.Header().Get("X-Leak") != "" {
		t.Errorf("the next request's reply: %d %q, header %v", next.Status(), next.Bytes(), next.Header())
	}
}
