// Package dedupe keeps WeChat's re-deliveries of a push from running its
// handler twice.
//
// WeChat re-sends a push when the reply takes more than 5 s, three
// deliveries in all over about 15 s. Keyed by the message's dedupe key
// (message.Message.DedupeKey), the first delivery claims the key and runs
// the handler; a re-delivery that arrives meanwhile waits for the first
// one's reply and answers with the same bytes, and one that arrives later
// gets the stored reply at once. If the first delivery fails (an error, a
// 5xx, a panic, or a handler that wrote nothing at all), the claim is
// abandoned so that the next delivery runs the handler again.
//
// A Store holds the claims and replies: Memory for one process,
// redisstore.Dedupe (package wechat/redisstore, which keeps go-redis out of
// this package) for many processes or hosts. Do is the whole protocol for one call;
// Middleware wraps an http.Handler with it.
package dedupe

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultTTL is how long a claim and its reply are kept when no TTL is
// given: twice WeChat's retry window of about 15 s.
const DefaultTTL = 30 * time.Second

// ErrAbandoned is what Wait returns when the delivery that held the key
// ended without a reply (it failed, or its claim expired or was evicted),
// or when no delivery holds the key. The caller may claim the key itself.
var ErrAbandoned = errors.New("dedupe: the first delivery ended without a reply")

// ErrNotStored is wrapped by Do's error when fn succeeded but its reply
// could not be stored: the reply Do returns with it is good to send, only
// re-deliveries will not find it.
var ErrNotStored = errors.New("dedupe: the reply could not be stored")

// A Reply is what a handler answered, replayed to re-deliveries.
type Reply struct {
	Status      int    // HTTP status; 0 means 200
	ContentType string // the Content-Type header, if any
	Body        []byte
}

// A Store holds claims on keys and the replies that settle them. Every
// method is safe for concurrent use, across processes for a shared store.
type Store interface {
	// Begin claims key for ttl (DefaultTTL if ttl <= 0). first reports
	// whether this call made the claim; if not, another delivery holds
	// the key or has already finished it.
	Begin(ctx context.Context, key string, ttl time.Duration) (first bool, err error)

	// Finish stores the reply to the claim on key and wakes its waiters.
	// The reply lives as long as the claim would have. A reply for a key
	// whose claim has expired is dropped: WeChat's retries are over.
	// r.Body belongs to the caller, which reuses it once Finish returns:
	// a store keeps a copy.
	//
	// Finish and Abandon settle a claim once the work is done, often with
	// the context of a request whose client (WeChat) has hung up: they
	// must settle it even when ctx is already done, or the reply is lost
	// and the re-delivery runs the handler again. A store that does I/O
	// detaches ctx (context.WithoutCancel, as redisstore.Dedupe does);
	// Memory does not use it.
	Finish(ctx context.Context, key string, r Reply) error

	// Abandon gives up an unfinished claim on key, so that a later Begin
	// succeeds, and wakes its waiters with ErrAbandoned.
	Abandon(ctx context.Context, key string) error

	// Wait returns the reply to key, blocking while the claim is
	// unfinished. It returns ErrAbandoned if the claim ends without a
	// reply or there is none, and ctx.Err() if ctx ends first.
	Wait(ctx context.Context, key string) (Reply, error)
}

// maxRounds bounds how often Do re-claims a key whose holder abandoned it.
const maxRounds = 3

// Do runs fn at most once per key among all deliveries that share s within
// ttl, and returns its reply to every one of them. shared reports whether
// the reply came from another delivery. When fn returns an error, the
// claim is abandoned (another delivery may run fn again) and the error
// returned; likewise if fn panics, after which the panic continues.
func Do(ctx context.Context, s Store, key string, ttl time.Duration, fn func(context.Context) (Reply, error)) (r Reply, shared bool, err error) {
	for range maxRounds {
		first, err := s.Begin(ctx, key, ttl)
		if err != nil {
			return Reply{}, false, err
		}
		if first {
			r, err := run(ctx, s, key, fn)
			return r, false, err
		}
		r, err := s.Wait(ctx, key)
		if errors.Is(err, ErrAbandoned) {
			continue // the holder failed: try to claim it ourselves
		}
		return r, err == nil, err
	}
	return Reply{}, false, fmt.Errorf("dedupe: key %q abandoned %d times in a row", key, maxRounds)
}

// Put is Do with the reply known in advance: it stores r under key for
// ttl unless a delivery sharing s has stored one already, and returns the
// reply key holds (r if this call stored it) and whether it came from
// another delivery. On a Memory it is one step; on other stores it is Do.
func Put(ctx context.Context, s Store, key string, ttl time.Duration, r Reply) (Reply, bool, error) {
	if m, ok := s.(*Memory); ok {
		if err := ctx.Err(); err != nil {
			return Reply{}, false, err
		}
		switch held, existed, pending := m.put(key, ttl, r); {
		case !existed:
			return r, false, nil
		case !pending:
			return held, true, nil
		}
		// A claim made with Begin, not finished yet: wait for it as Do does.
	}
	return Do(ctx, s, key, ttl, func(context.Context) (Reply, error) { return r, nil })
}

func run(ctx context.Context, s Store, key string, fn func(context.Context) (Reply, error)) (r Reply, err error) {
	done := false
	defer func() {
		if !done {
			// fn panicked: release the claim before the panic goes on.
			// The request's context may be the reason; do not depend on it.
			s.Abandon(ctx, key)
		}
	}()
	r, err = fn(ctx)
	done = true
	if err != nil {
		if aerr := s.Abandon(ctx, key); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return Reply{}, err
	}
	if ferr := s.Finish(ctx, key, r); ferr != nil {
		return r, fmt.Errorf("%w: %w", ErrNotStored, ferr)
	}
	return r, nil
}
