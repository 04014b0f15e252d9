package pushctx

import (
	"context"
	"testing"
)

type otherKey struct{}

// TestContext checks that a Context answers its key with V and shows its
// parent through: other values, cancellation, and a child context that
// is cancelled with the parent.
func TestContext(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), otherKey{}, "other"))
	c := &Context{Context: parent, V: "push"}
	if v := c.Value(Key{}); v != "push" {
		t.Errorf("Value(Key) = %v, want push", v)
	}
	if v := c.Value(otherKey{}); v != "other" {
		t.Errorf("Value(otherKey) = %v, want the parent's", v)
	}
	inner := &Context{Context: c, V: "inner"}
	if v := inner.Value(Key{}); v != "inner" {
		t.Errorf("inner Value(Key) = %v, want the innermost", v)
	}
	child, stop := context.WithCancel(c)
	defer stop()
	if c.Err() != nil || child.Err() != nil {
		t.Fatal("done before the parent was cancelled")
	}
	cancel()
	<-child.Done()
	if c.Err() != context.Canceled || child.Err() != context.Canceled {
		t.Errorf("after cancel: %v, %v; want context.Canceled", c.Err(), child.Err())
	}
	if s := c.String(); s == "" {
		t.Error("empty String")
	}
}
