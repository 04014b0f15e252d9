package redisstore

import (
	"log/slog"
	"strings"
	"sync"
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

// TestHeldTooLongExpires: a holder that never unlocks stops renewing after
// maxHold, so the other hosts are not kept out for good.
func TestHeldTooLongExpires(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	var logs strings.Builder
	var mu sync.Mutex
	a, err := Open(srv.URL(), "wxstuck", WithLockTTL(60*time.Millisecond),
		WithLogger(slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return logs.Write(p)
		}), nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.maxHold = 300 * time.Millisecond
	b, err := Open(srv.URL(), "wxstuck")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	unlockA, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer unlockA()
	unlockB, err := b.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unlockB()
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "held too long") {
		t.Errorf("no log line about the lock held too long:\n%s", logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
