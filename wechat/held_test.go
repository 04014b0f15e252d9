package wechat

import (
	"testing"
	"time"
)

func TestHeldAndReplaced(t *testing.T) {
	e := newEnv(t, newFake(t))
	w := openKeeper(t, e)
	if _, ok := w.Held(); ok {
		t.Fatal("Held reports a token before any was fetched")
	}
	if _, _, ok := w.Replaced(); ok {
		t.Fatal("Replaced reports a token before any was replaced")
	}
	first, err := w.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := w.Held(); !ok || h != first {
		t.Errorf("Held = %v, %v; want the token fetched", ok, h == first)
	}
	e.srv.Advance(time.Minute)
	second, err := w.ForceRefresh(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	prev, at, ok := w.Replaced()
	if !ok || prev.Value != first.Value || !at.Equal(e.srv.Now()) {
		t.Errorf("Replaced = %v at %v; want the first token, replaced now (%v)", ok, at, e.srv.Now())
	}
	if h, _ := w.Held(); h.Value != second.Value {
		t.Errorf("Held is not the new token")
	}
	e.srv.Advance(3 * time.Hour)
	if _, ok := w.Held(); ok {
		t.Errorf("Held reports an expired token")
	}
}
