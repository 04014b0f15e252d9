package redisstore

import (
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/util/redistest"
)

// TestWaiterWakesOnUnlock: with polling slowed to once a minute, a waiter
// still gets the lock at once, because unlock publishes on the release channel.
func TestWaiterWakesOnUnlock(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	a, err := Open(srv.URL(), "wxwake")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(srv.URL(), "wxwake")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.pollMin, b.pollMax = time.Minute, time.Minute

	unlock, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan time.Time, 1)
	go func() {
		defer close(got)
		if u, err := b.Lock(ctx); err == nil {
			got <- time.Now()
			u()
		}
	}()
	// Wait until the waiter listens for the release; its polls are a
	// minute apart from then on.
	for {
		n, err := a.Client().PubSubNumSub(ctx, a.unlockChan).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n[a.unlockChan] == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	released := time.Now()
	unlock()
	select {
	case at, ok := <-got:
		if !ok {
			t.Fatal("waiting Lock failed")
		}
		if d := at.Sub(released); d > 500*time.Millisecond {
			t.Errorf("waiter took the lock %v after unlock, want it woken by the release notice", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken by unlock")
	}
}
