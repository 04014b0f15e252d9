package redisstore

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxcentral/wxcentral/wechat/internal/redistest"
)

// slowURL is the URL of px for a client that waits a minute for a reply
// and never retries, so a reply the proxy holds back stays pending.
func slowURL(px *redistest.Proxy) string {
	return px.URL() + "?read_timeout=60s&max_retries=-1"
}

// loadScripts loads the lock's scripts into srv, so that a store's first
// call of each is an EVALSHA a proxy can recognise by the script's hash.
func loadScripts(t *testing.T, srv *redistest.Server) {
	t.Helper()
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer direct.Close()
	for _, sc := range []*redis.Script{acquireScript, renewScript, releaseScript} {
		if err := sc.Load(t.Context(), direct).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor waits for c, failing the test after a bound far beyond any
// scheduling delay.
func waitFor(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(30 * time.Second):
		t.Fatalf("no %s within 30 s", what)
	}
}

// TestUnlockDoesNotWaitForRenewal: a renewal whose reply never comes (a
// slow or partitioned Redis) does not hold up unlock, which releases the
// lock over another connection at once.
func TestUnlockDoesNotWaitForRenewal(t *testing.T) {
	if testing.Short() {
		t.Skip("TestUnlockDoesNotWaitForRenewal: slow (waits for the first real lease renewal, about 1 s); run without -short")
	}
	srv := redistest.Start(t)
	loadScripts(t, srv)
	px := redistest.StartProxy(t, srv.Addr)
	s, err := Open(slowURL(px), "wxslowrenew", WithLockTTL(3*time.Second), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	caught, release := px.Hold(renewScript.Hash())
	defer release()
	unlock, err := s.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, caught, "renewal")
	// The renewal reached Redis; its reply is held back for good.
	unlocked := make(chan struct{})
	go func() {
		unlock()
		close(unlocked)
	}()
	waitFor(t, unlocked, "return from unlock while a renewal was in flight")
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer direct.Close()
	if n, err := direct.Exists(t.Context(), s.lockKey).Result(); err != nil || n != 0 {
		t.Errorf("after unlock the lock key exists (%d, %v), want it released", n, err)
	}
}

// TestLeaseCountsFromSend: the lease of a lock runs from when the SET was
// sent, not from its reply. The proxy holds the reply back until the lock
// has expired in Redis, then Redis goes away: the first failed renewal
// already finds the lease over and stops, where counting from the reply
// would have kept the lock for ours a whole TTL longer.
func TestLeaseCountsFromSend(t *testing.T) {
	srv := redistest.Start(t)
	loadScripts(t, srv)
	px := redistest.StartProxy(t, srv.Addr)
	logs := &syncLog{}
	var renewFails atomic.Int64
	s, err := Open(slowURL(px), "wxsent", WithLockTTL(300*time.Millisecond),
		WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		WithErrorHook(func(op string, _ error) {
			if op == "renew" {
				renewFails.Add(1)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	caught, release := px.Hold(acquireScript.Hash())
	defer release()
	locked := make(chan struct{})
	go func() {
		defer close(locked)
		if _, err := s.Lock(t.Context()); err != nil {
			t.Errorf("Lock: %v", err)
		}
	}()
	waitFor(t, caught, "lock attempt")
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer direct.Close()
	for expires := time.Now().Add(30 * time.Second); ; {
		if time.Now().After(expires) {
			t.Fatal("the lock did not expire in Redis within 30 s")
		}
		n, err := direct.Exists(t.Context(), s.lockKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break // the lease is over in Redis
		}
		time.Sleep(5 * time.Millisecond)
	}
	release()
	waitFor(t, locked, "return from Lock")
	px.CloseConns() // every renewal fails from now on
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "could not renew the lock before it expired") &&
		!strings.Contains(logs.String(), "lost while held") { // a renewal got through before CloseConns
		if time.Now().After(deadline) {
			t.Fatalf("the holder kept renewing 30 s after Redis went away:\n%s", logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := renewFails.Load(); n > 1 {
		t.Errorf("%d renewals failed before the holder gave the lock up, want at most 1: its lease was over when Lock returned\n%s", n, logs)
	}
}

// syncLog is a log sink safe for concurrent writes.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

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
	got := make(chan bool, 1)
	go func() {
		defer close(got)
		if u, err := b.Lock(ctx); err == nil {
			got <- true
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
	unlock()
	// Its next poll is a minute away: only the release notice can bring it
	// the lock within the bound.
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("waiting Lock failed")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("waiter not woken by unlock")
	}
}

// TestHeldTooLongExpires: a holder that never unlocks stops renewing after
// maxHold, so the other hosts are not kept out for good. With maxHold at
// 1 ns the first renewal tick gives up, so no slow renewal can take
// another exit; the lease (1 s) leaves renewals time to be slow.
func TestHeldTooLongExpires(t *testing.T) {
	if testing.Short() {
		t.Skip("TestHeldTooLongExpires: slow (waits out a real 1 s lease); run without -short")
	}
	srv := redistest.Start(t)
	ctx := t.Context()
	logs := &syncLog{}
	a, err := Open(srv.URL(), "wxstuck", WithLockTTL(time.Second), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.maxHold = time.Nanosecond
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
	unlockB, err := b.Lock(ctx) // once A's lease runs out
	if err != nil {
		t.Fatal(err)
	}
	unlockB()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "held too long") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line about the lock held too long:\n%s", logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if strings.Contains(logs.String(), "could not renew") || strings.Contains(logs.String(), "lost while held") {
		t.Errorf("the holder renewed after maxHold:\n%s", logs)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
