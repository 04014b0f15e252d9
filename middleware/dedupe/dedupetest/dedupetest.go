// Package dedupetest checks that a dedupe.Store keeps the contract the
// dedupe middleware relies on, so that every store (dedupe.Memory,
// redisstore.Dedupe, yours) is tested by the same steps.
package dedupetest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/middleware/dedupe"
)

// Run checks the store newStore returns; each case gets a new one, empty.
//
// ThreeDeliveries delivers one key three times, as WeChat retries a slow
// push: while the handler of the first delivery is blocked the second
// waits, the handler runs once, and every delivery gets its reply,
// including a third that comes after the reply was stored.
func Run(t *testing.T, newStore func(t *testing.T) dedupe.Store) {
	t.Run("ThreeDeliveries", func(t *testing.T) { threeDeliveries(t, newStore(t)) })
}

// waitCounter counts the calls that have entered Wait.
type waitCounter struct {
	dedupe.Store
	n atomic.Int32
}

func (w *waitCounter) Wait(ctx context.Context, key string) (dedupe.Reply, error) {
	w.n.Add(1)
	return w.Store.Wait(ctx, key)
}

type result struct {
	r      dedupe.Reply
	shared bool
	err    error
}

func threeDeliveries(t *testing.T, store dedupe.Store) {
	ctx := context.Background()
	s := &waitCounter{Store: store}
	var runs atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	fn := func(ctx context.Context) (dedupe.Reply, error) {
		if runs.Add(1) == 1 {
			close(started)
			<-release
		}
		return dedupe.Reply{ContentType: "text/xml", Body: []byte("<xml>first</xml>")}, nil
	}
	results := make(chan result, 3)
	deliver := func() {
		r, shared, err := dedupe.Do(ctx, s, "gh_1|msg|42", time.Minute, fn)
		results <- result{r, shared, err}
	}
	go deliver()
	<-started
	go deliver() // WeChat's first retry, 5 s later
	// Only synchronises with the goroutine started above; fails after 5 s.
	for deadline := time.Now().Add(5 * time.Second); s.n.Load() < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the first re-delivery to wait")
		}
	}
	select {
	case res := <-results:
		t.Fatalf("a delivery returned while the handler was blocked: %+v", res)
	default:
	}
	close(release)
	for range 2 {
		res := <-results
		if res.err != nil || string(res.r.Body) != "<xml>first</xml>" || res.r.ContentType != "text/xml" {
			t.Fatalf("delivery = %+v", res)
		}
	}
	go deliver() // the second retry, after the reply was stored
	res := <-results
	if res.err != nil || !res.shared || string(res.r.Body) != "<xml>first</xml>" {
		t.Fatalf("late delivery = %+v", res)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}
