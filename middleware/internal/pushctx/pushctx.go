// Package pushctx is how a request's context carries its push: the key
// package message looks the message up by, and a context that carries it
// without an allocation of its own, for the callback middleware to place
// in the one it makes for the request anyway.
package pushctx

import "context"

// Key is the context key of the push (a *message.Message).
type Key struct{}

// A Context is its parent with V under Key, as context.WithValue(parent,
// Key{}, V) would make it; the zero value is not usable. The parent's
// deadline, cancellation and other values show through, and the context
// package sees the parent's cancellation as its own (no goroutine per
// derived context).
type Context struct {
	context.Context
	V any
}

// Value returns V for Key, and the parent's value for any other key.
func (c *Context) Value(key any) any {
	if _, ok := key.(Key); ok {
		return c.V
	}
	return c.Context.Value(key)
}

// String names the context as context.WithValue's do, for debugging.
func (c *Context) String() string {
	return "pushctx.Context(" + contextName(c.Context) + ")"
}

func contextName(c context.Context) string {
	if s, ok := c.(interface{ String() string }); ok {
		return s.String()
	}
	return "context"
}
