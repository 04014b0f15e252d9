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
	if n := New(httptest.NewRecorder()); n == b {
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
	if n.Written() || len(n.Bytes()) != 0 || n.w != w {
		t.Errorf("a Buffer from the pool: status %d body %q", n.Status(), n.Bytes())
	}
	n.Write([]byte(strings.Repeat("x", 2*len(n.small))))
	Release(n)
	if got := New(httptest.NewRecorder()); got == n {
		t.Error("a Buffer whose body outgrew its inline bytes was kept")
	}
	Release(nil) // no-op
}
