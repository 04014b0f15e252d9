package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxcentral/wxcentral/middleware/dedupe"
	"github.com/wxcentral/wxcentral/middleware/dedupe/dedupetest"
	"github.com/wxcentral/wxcentral/wechat/internal/redistest"
)

// startRedis starts a private redis-server for the test (see redistest:
// skipped without the binary, a failure with CI=true) and returns a client.
func startDedupeRedis(t *testing.T) *redis.Client {
	t.Helper()
	s := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDedupeContract(t *testing.T) {
	c := startDedupeRedis(t)
	var n atomic.Int32
	dedupetest.Run(t, func(t *testing.T) dedupe.Store {
		// A prefix of its own per case: one Redis serves them all.
		return &Dedupe{Client: c, Prefix: fmt.Sprintf("contract%d:", n.Add(1)), PollInterval: 5 * time.Millisecond}
	})
}

func TestDedupeClaimLifecycle(t *testing.T) {
	c := startDedupeRedis(t)
	ctx := context.Background()
	s := &Dedupe{Client: c, Prefix: "test:", PollInterval: 5 * time.Millisecond}

	first, err := s.Begin(ctx, "k", 30*time.Second)
	if err != nil || !first {
		t.Fatalf("Begin = %v, %v", first, err)
	}
	if first, _ := s.Begin(ctx, "k", 30*time.Second); first {
		t.Fatal("second Begin claimed a held key")
	}
	pttl := c.PTTL(ctx, "test:k").Val()
	if pttl <= 29*time.Second || pttl > 30*time.Second {
		t.Fatalf("claim PTTL = %v, want about 30 s", pttl)
	}
	want := dedupe.Reply{Status: 201, ContentType: "text/xml", Body: []byte("<xml>\x00bin</xml>")}
	if err := s.Finish(ctx, "k", want); err != nil {
		t.Fatal(err)
	}
	if pttl := c.PTTL(ctx, "test:k").Val(); pttl <= 0 || pttl > 30*time.Second {
		t.Fatalf("after Finish PTTL = %v: the reply must keep the claim's expiry", pttl)
	}
	got, err := s.Wait(ctx, "k")
	if err != nil || got.Status != want.Status || got.ContentType != want.ContentType || string(got.Body) != string(want.Body) {
		t.Fatalf("Wait = %+v, %v", got, err)
	}
	// A finished key is neither abandoned nor overwritten.
	s.Abandon(ctx, "k")
	s.Finish(ctx, "k", dedupe.Reply{Body: []byte("other")})
	if got, _ := s.Wait(ctx, "k"); string(got.Body) != string(want.Body) {
		t.Fatalf("finished reply changed to %q", got.Body)
	}

	// Abandon frees a pending claim and wakes its waiter with dedupe.ErrAbandoned.
	s.Begin(ctx, "p", 0)
	if pttl := c.PTTL(ctx, "test:p").Val(); pttl <= 29*time.Second {
		t.Errorf("default TTL: PTTL = %v, want DefaultTTL", pttl)
	}
	done := make(chan error, 1)
	go func() { _, err := s.Wait(ctx, "p"); done <- err }()
	if err := s.Abandon(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, dedupe.ErrAbandoned) {
		t.Fatalf("Wait after Abandon = %v", err)
	}
	if first, _ := s.Begin(ctx, "p", 0); !first {
		t.Error("an abandoned key could not be claimed again")
	}

	// Expiry: the claim really ends with its TTL.
	s.Begin(ctx, "short", 50*time.Millisecond)
	if pttl := c.PTTL(ctx, "test:short").Val(); pttl <= 0 || pttl > 50*time.Millisecond {
		t.Fatalf("PTTL = %v, want ≤ 50ms", pttl)
	}

	// A waiter gives up with its context.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := s.Wait(wctx, "p"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait = %v, want DeadlineExceeded", err)
	}
	// A store that cannot reach Redis says so.
	bad := &Dedupe{Client: redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})}
	defer bad.Client.Close()
	if _, err := bad.Begin(ctx, "k", 0); err == nil {
		t.Error("Begin on an unreachable Redis succeeded")
	}
}
