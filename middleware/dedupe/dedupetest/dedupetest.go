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
//
// SettleAfterHangUp settles claims with a context that is already done, as
// happens when WeChat hangs up before the handler answers: Finish still
// stores the reply, and Abandon still frees the key.
//
// FinishKeepsACopy reuses the reply's body once Finish returned, as the
// middleware reuses its buffers: the stored reply is unchanged.
func Run(t *testing.T, newStore func(t *testing.T) dedupe.Store) {
	t.Run("ThreeDeliveries", func(t *testing.T) { threeDeliveries(t, newStore(t)) })
	t.Run("SettleAfterHangUp", func(t *testing.T) { settleAfterHangUp(t, newStore(t)) })
	t.Run("FinishKeepsACopy", func(t *testing.T) { finishKeepsACopy(t, newStore(t)) })
}

func finishKeepsACopy(t *testing.T, s dedupe.Store) {
	ctx := t.Context()
	if first, err := s.Begin(ctx, "k", time.Minute); err != nil || !first {
		t.Fatalf("Begin = %v, %v; want the first claim", first, err)
	}
	body := []byte("<xml>reply</xml>")
	if err := s.Finish(ctx, "k", dedupe.Reply{Status: 200, Body: body}); err != nil {
		t.Fatal(err)
	}
	copy(body, "XXXXXXXXXXXXXXXX") // the caller's buffer, reused
	if r, err := s.Wait(ctx, "k"); err != nil || string(r.Body) != "<xml>reply</xml>" {
		t.Errorf("Wait = %q, %v; want the reply as it was when Finish was called", r.Body, err)
	}
}

func settleAfterHangUp(t *testing.T, s dedupe.Store) {
	ctx, hangUp := context.WithCancel(context.Background())
	for _, key := range []string{"finished", "abandoned"} {
		if first, err := s.Begin(ctx, key, time.Minute); err != nil || !first {
			t.Fatalf("Begin(%q) = %v, %v; want the first claim", key, first, err)
		}
	}
	hangUp()
	if err := s.Finish(ctx, "finished", dedupe.Reply{Body: []byte("kept")}); err != nil {
		t.Errorf("Finish after the hang-up: %v", err)
	}
	if err := s.Abandon(ctx, "abandoned"); err != nil {
		t.Errorf("Abandon after the hang-up: %v", err)
	}
	// A store that lost the reply would wait out the claim: fail sooner.
	bg, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, err := s.Wait(bg, "finished"); err != nil || string(r.Body) != "kept" {
		t.Errorf("Wait after Finish with a done context = %q, %v; want the reply", r.Body, err)
	}
	if first, err := s.Begin(bg, "abandoned", time.Minute); err != nil || !first {
		t.Errorf("Begin after Abandon with a done context = %v, %v; want a new claim", first, err)
	}
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
