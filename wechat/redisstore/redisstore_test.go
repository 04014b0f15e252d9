package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/internal/redistest"
	"github.com/wxcentral/wxcentral/wechat/redisstore"
	"github.com/wxcentral/wxcentral/wechat/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// backings returns a storetest backing factory on the Redis at url: each
// backing is a fresh app ID, each handle a Store with its own client.
func backings(url string) func(t *testing.T) storetest.Factory {
	var n atomic.Int64
	return func(t *testing.T) storetest.Factory {
		appID := fmt.Sprintf("wxtest%d", n.Add(1))
		return func(t *testing.T) wechat.Store {
			return open(t, url, appID)
		}
	}
}

func open(t testing.TB, url, appID string, opts ...redisstore.Option) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(url, appID, append([]redisstore.Option{redisstore.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestContract(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, backings(srv.URL()))
}

func TestContractCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("TestContractCluster: slow (starts a Redis Cluster of three real processes); run without -short")
	}
	c := redistest.StartCluster(t, 3)
	storetest.Run(t, backings(c.URL()))

	// The keys of one app share one slot: check that the credential, the
	// lock and the counts all hashed together.
	s := open(t, c.URL(), "wxslot")
	ctx := testCtx(t)
	if err := s.Save(ctx, wechat.KindAccessToken, wechat.Credential{Value: "v", FetchedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddCount(ctx, wechat.Counter{API: wechat.APIToken, Day: wechat.QuotaDay(time.Now())}, 1); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	cc := s.Client().(*redis.ClusterClient)
	slot, err := cc.ClusterKeySlot(ctx, "{wxslot}").Result()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := cc.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Errorf("keys in slot %d = %q, want the credential, the lock and the count", slot, keys)
	}
}

func TestContractSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "mymaster")
	storetest.Run(t, backings("redis+sentinel://"+sentinel.Addr+"/mymaster"))
}

func TestKeyLayout(t *testing.T) {
	srv := redistest.Start(t)
	ctx := testCtx(t)
	tests := []struct {
		name   string
		opts   []redisstore.Option
		prefix string
	}{
		{"DefaultPrefix", nil, "wxcentral:"},
		{"CustomPrefix", []redisstore.Option{redisstore.WithPrefix("prod:")}, "prod:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, srv.URL(), "wxkeys", tt.opts...)
			if err := s.Save(ctx, wechat.KindJSAPITicket, wechat.Credential{Value: "ticket", FetchedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AddCount(ctx, wechat.Counter{API: wechat.APITicket, Day: "2026-11-05"}, 1); err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{tt.prefix + "{wxkeys}:cred:jsapi_ticket", tt.prefix + "{wxkeys}:fetches:getticket:2026-11-05"} {
				if n, err := s.Client().Exists(ctx, key).Result(); err != nil || n != 1 {
					t.Errorf("EXISTS %s = %d, %v; want 1", key, n, err)
				}
			}
		})
	}
}

func TestCountExpiry(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.URL(), "wxexp")
	ctx := testCtx(t)
	now := time.Now()
	tests := []struct {
		name    string
		day     string
		atLeast time.Time // the count must live until at least here
		atMost  time.Time
	}{
		{"Today", wechat.QuotaDay(now), wechat.NextQuotaDay(now), wechat.NextQuotaDay(now).Add(2 * time.Hour)},
		{"Tomorrow", wechat.QuotaDay(now.Add(24 * time.Hour)), wechat.NextQuotaDay(now.Add(24 * time.Hour)), wechat.NextQuotaDay(now.Add(24 * time.Hour)).Add(2 * time.Hour)},
		// A day long gone (a test clock) still keeps its count a while.
		{"LongAgo", "2001-01-01", now.Add(30 * time.Minute), now.Add(2 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.AddCount(ctx, wechat.Counter{API: wechat.APIToken, Day: tt.day}, 1); err != nil {
				t.Fatal(err)
			}
			key := "wxcentral:{wxexp}:fetches:token:" + tt.day
			at, err := s.Client().ExpireTime(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			exp := time.Unix(int64(at/time.Second), 0)
			if exp.Before(tt.atLeast.Truncate(time.Second)) || exp.After(tt.atMost) {
				t.Errorf("count of %s expires at %v, want between %v and %v", tt.day, exp, tt.atLeast, tt.atMost)
			}
		})
	}
}

func TestAddCountRejects(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.URL(), "wxrej")
	tests := []struct {
		c wechat.Counter
		n int
	}{
		{wechat.Counter{API: wechat.APIToken, Day: "2026-11-05"}, -1},
		{wechat.Counter{API: wechat.APIToken, Day: "2026-11-05"}, 0},
		{wechat.Counter{API: "", Day: "2026-11-05"}, 1},
		{wechat.Counter{API: wechat.APIToken, Day: "05/11/2026"}, 1},
		{wechat.Counter{API: wechat.APIToken, Day: ""}, 1},
		{wechat.Counter{API: wechat.APIToken, Day: "2026-11-05", Hourly: true, Hour: 24}, 1},
	}
	for _, tt := range tests {
		if _, err := s.AddCount(testCtx(t), tt.c, tt.n); err == nil {
			t.Errorf("AddCount(%v, %d) succeeded, want an error", tt.c, tt.n)
		}
	}
	if _, err := s.Count(testCtx(t), wechat.Counter{API: wechat.APIToken}); err == nil {
		t.Errorf("Count with an empty day succeeded, want an error")
	}
}

func TestCorruptEntryLoadsAsNothing(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.URL(), "wxbad")
	ctx := testCtx(t)
	key := "wxcentral:{wxbad}:cred:access_token"
	tests := []struct {
		name  string
		setup func() error
	}{
		{"WrongType", func() error { return s.Client().Set(ctx, key, "junk", 0).Err() }},
		{"BadTime", func() error {
			return s.Client().HSet(ctx, key, "value", "tok", "expires_at", "soon", "fetched_at", "1").Err()
		}},
		{"MissingTime", func() error { return s.Client().HSet(ctx, key, "value", "tok").Err() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Client().Del(ctx, key)
			if err := tt.setup(); err != nil {
				t.Fatal(err)
			}
			c, err := s.Load(ctx, wechat.KindAccessToken)
			if err != nil || !c.IsZero() {
				t.Errorf("Load of a corrupt entry = %+v, %v; want zero, nil", c, err)
			}
		})
	}
}

// TestExpiredHolderCannotUnlockNext: A's lock is lost while A holds it
// (it expired: a partition kept A's renewals from Redis), B takes it, and
// neither A's renewal nor A's late unlock may touch B's lock.
func TestExpiredHolderCannotUnlockNext(t *testing.T) {
	srv := redistest.Start(t)
	ctx := testCtx(t)
	logs := &lockedBuffer{}
	a := open(t, srv.URL(), "wxexpire", redisstore.WithLockTTL(time.Second),
		redisstore.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	b := open(t, srv.URL(), "wxexpire")
	const key = "wxcentral:{wxexpire}:lock"

	unlockA, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Client().Del(ctx, key).Err(); err != nil { // A's lease ran out
		t.Fatal(err)
	}
	unlockB, err := b.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock after the holder's lock expired: %v", err)
	}
	defer unlockB()
	ownerB, err := b.Client().Get(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	// A's next renewal finds B's lock and gives up (or, if it failed on a
	// busy machine, gives up when A's lease is over): either way A stops.
	deadline := time.Now().Add(30 * time.Second)
	for out := logs.String(); !strings.Contains(out, "lost while held") && !strings.Contains(out, "could not renew"); out = logs.String() {
		if time.Now().After(deadline) {
			t.Fatalf("A's renewal did not notice the lost lock:\n%s", logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	unlockA() // too late: must not release B's lock

	if got, err := b.Client().Get(ctx, key).Result(); err != nil || got != ownerB {
		t.Fatalf("after the expired holder's unlock the lock holds %q, %v; want B's lock (%q) left alone", got, err, ownerB)
	}
	if ttl, err := b.Client().PTTL(ctx, key).Result(); err != nil || ttl <= time.Second {
		t.Errorf("after the expired holder's unlock, the lock's TTL = %v, %v; want B's lock (default TTL) still there, not shortened to A's", ttl, err)
	}
}

// TestLiveHolderKeepsLock: a holder keeps its lock for longer than its
// lease because it renews it, while a waiter waits; the waiter gets it at
// unlock. The test watches the renewals happen (the lock's PTTL rising),
// so a busy machine makes it slower, never wrong, unless it stalls the
// holder for two thirds of the lease. A lock taken by TryLock is renewed
// alike.
func TestLiveHolderKeepsLock(t *testing.T) {
	if testing.Short() {
		t.Skip("TestLiveHolderKeepsLock: slow (watches four lease renewals in real time, twice: about 8 s); run without -short")
	}
	tests := []struct {
		name string
		take func(s *redisstore.Store, ctx context.Context) (func(), error)
	}{
		{"Lock", (*redisstore.Store).Lock},
		{"TryLock", func(s *redisstore.Store, ctx context.Context) (func(), error) {
			unlock, ok, err := s.TryLock(ctx)
			if err == nil && !ok {
				err = errors.New("TryLock of a free lock: not taken")
			}
			return unlock, err
		}},
	}
	srv := redistest.Start(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each on a lock of its own, waiting on real time
			testLiveHolderKeepsLock(t, srv.URL(), tt.take)
		})
	}
}

func testLiveHolderKeepsLock(t *testing.T, url string, take func(s *redisstore.Store, ctx context.Context) (func(), error)) {
	ctx := testCtx(t)
	const ttl = 3 * time.Second
	appID := "wxlease" + strings.ReplaceAll(t.Name(), "/", "_")
	key := "wxcentral:{" + appID + "}:lock"
	a := open(t, url, appID, redisstore.WithLockTTL(ttl))
	b := open(t, url, appID, redisstore.WithLockTTL(ttl))
	unlock, err := take(a, ctx)
	if err != nil {
		t.Fatal(err)
	}
	owner, err := a.Client().Get(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		if u, err := b.Lock(ctx); err == nil {
			got <- u
		} else {
			t.Errorf("waiting Lock: %v", err)
			close(got)
		}
	}()
	// Four renewals are more than one lease (each comes a third of it
	// after the one before).
	const renewals = 4
	prev, seen := ttl, 0
	deadline := time.Now().Add(60 * time.Second)
	for seen < renewals {
		if time.Now().After(deadline) {
			t.Fatalf("saw %d renewals in 60 s, want %d", seen, renewals)
		}
		select {
		case u, ok := <-got:
			if ok {
				u()
			}
			t.Fatalf("a second host took the lock after %d renewals while its holder was alive", seen)
		default:
		}
		left, err := a.Client().PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if cur, err := a.Client().Get(ctx, key).Result(); err != nil || cur != owner {
			t.Fatalf("after %d renewals the lock holds %q, %v; want the live holder's", seen, cur, err)
		}
		if left <= 0 || left > ttl {
			t.Fatalf("the lock's PTTL = %v, want a lease of at most %v", left, ttl)
		}
		if left > prev {
			seen++
		}
		prev = left
		time.Sleep(20 * time.Millisecond)
	}
	unlock()
	select {
	case u, ok := <-got:
		if !ok {
			t.FailNow()
		}
		u()
	case <-time.After(30 * time.Second):
		t.Fatal("the waiter did not get the lock within 30 s of unlock")
	}
}

// TestDeadHolderFreesLock: a holder whose connection to Redis is gone (as
// when its process dies) stops renewing, and its lock frees by itself
// within the lease; by default that lease is seconds, not the 45 s a lock
// had to last when it was not renewed.
func TestDeadHolderFreesLock(t *testing.T) {
	if testing.Short() {
		t.Skip("TestDeadHolderFreesLock: slow (waits out a real 1 s lease); run without -short")
	}
	srv := redistest.Start(t)
	ctx := testCtx(t)
	const ttl = time.Second
	key := "wxcentral:{wxdead}:lock"
	dying := open(t, srv.URL(), "wxdead", redisstore.WithLockTTL(ttl))
	other := open(t, srv.URL(), "wxdead")
	if _, err := dying.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	// The holder's process is gone: its client is closed, nobody unlocks.
	if err := dying.Client().Close(); err != nil {
		t.Fatal(err)
	}
	// Within the lease, or already expired (-2: no key); never without an
	// expiry (-1).
	if left, err := other.Client().PTTL(ctx, key).Result(); err != nil || left > ttl || (left <= 0 && left != -2) {
		t.Fatalf("the dead holder's lock has PTTL %v, %v; want it to expire within the lease %v", left, err, ttl)
	}
	u, err := other.Lock(ctx) // waits for the lease to run out
	if err != nil {
		t.Fatalf("Lock after the holder died: %v", err)
	}
	u()

	// The default lease: a few seconds.
	def := open(t, srv.URL(), "wxdefault")
	u, err = def.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer u()
	if left, err := def.Client().PTTL(ctx, "wxcentral:{wxdefault}:lock").Result(); err != nil || left > redisstore.DefaultLockTTL || redisstore.DefaultLockTTL > 10*time.Second {
		t.Errorf("default lock PTTL = %v, %v (DefaultLockTTL %v); want a lease of at most 10 s", left, err, redisstore.DefaultLockTTL)
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSlowHostCannotOverwrite: two hosts fetch under an expired lock; the
// one that fetched first but saves last is refused.
func TestSlowHostCannotOverwrite(t *testing.T) {
	srv := redistest.Start(t)
	ctx := testCtx(t)
	slow := open(t, srv.URL(), "wxslow")
	fast := open(t, srv.URL(), "wxslow")
	t0 := time.Now()
	slowTok := wechat.Credential{Value: "slow", FetchedAt: t0, ExpiresAt: t0.Add(2 * time.Hour)}
	fastTok := wechat.Credential{Value: "fast", FetchedAt: t0.Add(time.Millisecond), ExpiresAt: t0.Add(2 * time.Hour)}
	if err := fast.Save(ctx, wechat.KindAccessToken, fastTok); err != nil {
		t.Fatal(err)
	}
	err := slow.Save(ctx, wechat.KindAccessToken, slowTok)
	if !errors.Is(err, wechat.ErrSuperseded) {
		t.Fatalf("slow save = %v, want ErrSuperseded", err)
	}
	if got, _ := slow.Load(ctx, wechat.KindAccessToken); got.Value != "fast" {
		t.Errorf("stored token = %q, want the fast host's", got.Value)
	}
	if slow.Errors() != 0 {
		t.Errorf("a refused save counted as a store failure (%d)", slow.Errors())
	}
}

// TestOutage stops Redis and starts it again: every call fails promptly
// while it is down, is counted and hooked, and the same Store works again
// afterwards.
func TestOutage(t *testing.T) {
	srv := redistest.Start(t)
	var hooked sync.Map
	s := open(t, srv.URL(), "wxdown", redisstore.WithErrorHook(func(op string, err error) {
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error mentions a secret: %v", err)
		}
		hooked.Store(op, true)
	}))
	ctx := testCtx(t)
	if err := s.Save(ctx, wechat.KindAccessToken, wechat.Credential{Value: "before", FetchedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	unlock() // fails: counted, the lock would expire by itself
	ops := []struct {
		name string
		call func() error
	}{
		{"load", func() error { _, err := s.Load(ctx, wechat.KindAccessToken); return err }},
		{"save", func() error {
			return s.Save(ctx, wechat.KindAccessToken, wechat.Credential{Value: "x", FetchedAt: time.Now()})
		}},
		{"lock", func() error {
			u, err := s.Lock(ctx)
			if err == nil {
				u()
			}
			return err
		}},
		{"add_count", func() error {
			_, err := s.AddCount(ctx, wechat.Counter{API: wechat.APIToken, Day: "2026-11-05"}, 1)
			return err
		}},
		{"count", func() error {
			_, err := s.Count(ctx, wechat.Counter{API: wechat.APIToken, Day: "2026-11-05"})
			return err
		}},
	}
	for _, op := range ops {
		start := time.Now()
		err := op.call()
		if err == nil {
			t.Errorf("%s succeeded while Redis was down", op.name)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s took %v to fail while Redis was down, want promptly", op.name, d)
		}
		if ctx.Err() != nil {
			t.Fatalf("test context ended: %v", ctx.Err())
		}
	}
	for _, op := range []string{"load", "save", "lock", "unlock", "add_count", "count"} {
		if _, ok := hooked.Load(op); !ok {
			t.Errorf("no error hooked for %s", op)
		}
	}
	if n := s.Errors(); n < uint64(len(ops)+1) {
		t.Errorf("Errors() = %d, want at least %d", n, len(ops)+1)
	}

	srv.Restart() // empty: no persistence
	errsBefore := s.Errors()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.Load(ctx, wechat.KindAccessToken)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store still failing 10s after Redis restarted: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.Save(ctx, wechat.KindAccessToken, wechat.Credential{Value: "after", FetchedAt: time.Now()}); err != nil {
		t.Fatalf("Save after restart: %v", err)
	}
	if c, err := s.Load(ctx, wechat.KindAccessToken); err != nil || c.Value != "after" {
		t.Fatalf("Load after restart = %q, %v", c.Value, err)
	}
	u, err := s.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock after restart: %v", err)
	}
	u()
	if n, err := s.AddCount(ctx, wechat.Counter{API: wechat.APIToken, Day: "2026-11-05"}, 1); err != nil || n != 1 {
		t.Fatalf("AddCount after restart = %d, %v; want 1 on the emptied server", n, err)
	}
	t.Logf("errors while recovering: %d", s.Errors()-errsBefore)
}

func TestNewRejects(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	tests := []struct {
		name   string
		client redis.UniversalClient
		appID  string
		opts   []redisstore.Option
	}{
		{"NilClient", nil, "wx1", nil},
		{"EmptyAppID", client, "", nil},
		{"BraceInAppID", client, "wx{1}", nil},
		{"ZeroTTL", client, "wx1", []redisstore.Option{redisstore.WithLockTTL(0)}},
		{"TTLTooShortToRenew", client, "wx1", []redisstore.Option{redisstore.WithLockTTL(redisstore.MinLockTTL - time.Millisecond)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := redisstore.New(tt.client, tt.appID, tt.opts...); err == nil {
				t.Error("New succeeded, want an error")
			}
		})
	}
}

func TestCloseOwnership(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer client.Close()
	s, err := redisstore.New(client, "wxown", redisstore.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(testCtx(t)).Err(); err != nil {
		t.Errorf("Close of a Store built by New closed the caller's client: %v", err)
	}
	o, err := redisstore.Open(srv.URL(), "wxown")
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if err := o.Client().Ping(testCtx(t)).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("Ping after Close of an opened Store = %v, want redis.ErrClosed", err)
	}
}

// TestAtomicAcrossHosts: unlike a file, Redis counts and fences atomically
// even without the lock, so hosts whose lock expired still count exactly
// and keep the newest token.
func TestAtomicAcrossHosts(t *testing.T) {
	srv := redistest.Start(t)
	ctx := testCtx(t)
	hosts := make([]*redisstore.Store, 4)
	for i := range hosts {
		hosts[i] = open(t, srv.URL(), "wxatomic")
	}
	const each = 50
	t0 := time.Now()
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			for j := range each {
				if _, err := h.AddCount(ctx, wechat.Counter{API: wechat.APIToken, Day: "2026-11-05"}, 1); err != nil {
					t.Errorf("AddCount: %v", err)
					return
				}
				fetched := t0.Add(time.Duration(j*len(hosts)+i) * time.Millisecond)
				err := h.Save(ctx, wechat.KindAccessToken, wechat.Credential{Value: fetched.Format(time.RFC3339Nano), FetchedAt: fetched})
				if err != nil && !errors.Is(err, wechat.ErrSuperseded) {
					t.Errorf("Save: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n, err := hosts[0].Count(ctx, wechat.Counter{API: wechat.APIToken, Day: "2026-11-05"}); err != nil || n != len(hosts)*each {
		t.Errorf("count = %d, %v; want exactly %d", n, err, len(hosts)*each)
	}
	last := t0.Add(time.Duration(len(hosts)*each-1) * time.Millisecond)
	if c, err := hosts[0].Load(ctx, wechat.KindAccessToken); err != nil || !c.FetchedAt.Equal(last.Truncate(time.Microsecond)) {
		t.Errorf("stored token fetched at %v (%v), want the newest, %v", c.FetchedAt, err, last)
	}
}

// TestStringNamesLockOnly: String names the lock key and nothing of the
// URL, which may hold a password.
func TestStringNamesLockOnly(t *testing.T) {
	const password = "hunter2-secret"
	s, err := redisstore.Open("redis://admin:"+password+"@127.0.0.1:1/3", "wxname", redisstore.WithPrefix("prod:"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := fmt.Sprint(s)
	if want := "redis lock prod:{wxname}:lock"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for _, leak := range []string{password, "admin", "127.0.0.1"} {
		if strings.Contains(got, leak) {
			t.Errorf("String() = %q holds %q from the URL", got, leak)
		}
	}
}
