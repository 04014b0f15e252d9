// Package storetest is the contract suite every wechat.Store must pass: the
// file store, the Redis store, and any store a user writes.
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Factory {
//			path := filepath.Join(t.TempDir(), "wechat.txt")
//			return func(t *testing.T) wechat.Store { return wechat.NewFileStore(path, nil) }
//		})
//	}
//
// The suite checks what the keeper relies on: round trips of every Kind
// (the credentials, wechat.KindCooldown and any other name a caller may
// choose), fenced saves, a lock that excludes other handles (as other processes or
// hosts would hold them) and honours its context, and exact fetch counts.
// A store that implements wechat.TryLocker is also checked to try the
// same lock: taken when free, refused at once when held (by another handle
// or another caller of the same one), free again at unlock.
// Like the keeper, it writes from different handles concurrently only under
// the lock; goroutines sharing one handle also write without it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
)

// A Factory opens a new handle on one backing store. Every handle it
// returns shares data and lock with the others, as a second process on the
// same file, or a second host on the same Redis, would. It closes the
// handle, if needed, in t.Cleanup.
type Factory func(t *testing.T) wechat.Store

// Kinds are the credential kinds the suite round-trips.
var kinds = []wechat.Kind{wechat.KindAccessToken, wechat.KindJSAPITicket, wechat.KindCardTicket}

// otherKinds are names a store must keep as well as the built-in ones:
// the cooldown, and kinds a caller may add later (with characters that a
// path syntax or a key separator could give a meaning).
var otherKinds = []wechat.Kind{
	wechat.KindCooldown,
	"authorizer_token:wx0123456789abcdef",
	"component.verify*ticket?#1",
}

// Run runs the contract suite as subtests of t. newBacking is called once
// per subtest and returns a Factory for a fresh, empty backing store.
func Run(t *testing.T, newBacking func(t *testing.T) Factory) {
	tests := []struct {
		name string
		run  func(t *testing.T, open Factory)
	}{
		{"LoadEmpty", testLoadEmpty},
		{"RoundTrip", testRoundTrip},
		{"NewerSaveWins", testNewerSaveWins},
		{"FencedSave", testFencedSave},
		{"AnyKind", testAnyKind},
		{"ConcurrentSaves", testConcurrentSaves},
		{"RefreshUnderLock", testRefreshUnderLock},
		{"LockExcludes", testLockExcludes},
		{"LockHonoursContext", testLockHonoursContext},
		{"UnlockLetsWaiterIn", testUnlockLetsWaiterIn},
		{"Count", testCount},
		{"CountRejects", testCountRejects},
		{"AddCountConcurrent", testAddCountConcurrent},
	}
	// A store that can try its lock must do so on the same lock.
	if _, ok := newBacking(t)(t).(wechat.TryLocker); ok {
		tests = append(tests, []struct {
			name string
			run  func(t *testing.T, open Factory)
		}{
			{"TryLockFree", testTryLockFree},
			{"TryLockHeld", testTryLockHeld},
			{"TryLockUnlockLetsWaiterIn", testTryLockUnlockLetsWaiterIn},
			{"TryLockExcludes", testTryLockExcludes},
			{"TryLockHonoursContext", testTryLockHonoursContext},
		}...)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newBacking(t))
		})
	}
}

// ctx returns a context that ends with the test, bounded so that a
// deadlocked store fails rather than hangs.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// base is a fixed instant with a sub-millisecond part the store may drop.
var base = time.Date(2026, 11, 5, 10, 30, 15, 123_000_000, time.UTC)

func sameTime(a, b time.Time) bool {
	return a.Truncate(time.Millisecond).Equal(b.Truncate(time.Millisecond))
}

func checkCred(t *testing.T, what string, got, want wechat.Credential) {
	t.Helper()
	if got.Value != want.Value || !sameTime(got.ExpiresAt, want.ExpiresAt) || !sameTime(got.FetchedAt, want.FetchedAt) {
		t.Errorf("%s = {%q, expires %v, fetched %v}, want {%q, expires %v, fetched %v} (to the millisecond)",
			what, got.Value, got.ExpiresAt, got.FetchedAt, want.Value, want.ExpiresAt, want.FetchedAt)
	}
}

func mustLoad(t *testing.T, s wechat.Store, kind wechat.Kind) wechat.Credential {
	t.Helper()
	c, err := s.Load(ctx(t), kind)
	if err != nil {
		t.Fatalf("Load(%s): %v", kind, err)
	}
	return c
}

func cred(value string, fetched time.Time) wechat.Credential {
	return wechat.Credential{Value: value, FetchedAt: fetched, ExpiresAt: fetched.Add(7200 * time.Second)}
}

func testLoadEmpty(t *testing.T, open Factory) {
	s := open(t)
	for _, k := range kinds {
		if c := mustLoad(t, s, k); !c.IsZero() || !c.ExpiresAt.IsZero() || !c.FetchedAt.IsZero() {
			t.Errorf("Load(%s) of an empty store = %+v, want the zero Credential", k, c)
		}
	}
}

func testRoundTrip(t *testing.T, open Factory) {
	a, b := open(t), open(t)
	want := map[wechat.Kind]wechat.Credential{}
	for i, k := range kinds {
		fetched := base.Add(time.Duration(i)*time.Minute + 456*time.Microsecond)
		c := wechat.Credential{
			Value:     fmt.Sprintf("%s-%d_ABCdef-0123456789", k, i),
			FetchedAt: fetched,
			ExpiresAt: fetched.Add(7200*time.Second + 7*time.Millisecond),
		}
		if err := a.Save(ctx(t), k, c); err != nil {
			t.Fatalf("Save(%s): %v", k, err)
		}
		want[k] = c
	}
	for _, k := range kinds {
		checkCred(t, fmt.Sprintf("Load(%s) on the saving handle", k), mustLoad(t, a, k), want[k])
		checkCred(t, fmt.Sprintf("Load(%s) on a second handle", k), mustLoad(t, b, k), want[k])
	}
}

func testNewerSaveWins(t *testing.T, open Factory) {
	a, b := open(t), open(t)
	first, second := cred("first", base), cred("second", base.Add(time.Second))
	if err := a.Save(ctx(t), wechat.KindAccessToken, first); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx(t), wechat.KindAccessToken, second); err != nil {
		t.Fatalf("Save of a newer credential from another handle: %v", err)
	}
	checkCred(t, "Load after a newer save", mustLoad(t, a, wechat.KindAccessToken), second)
	// Other kinds are untouched.
	if c := mustLoad(t, a, wechat.KindJSAPITicket); !c.IsZero() {
		t.Errorf("Load(jsapi_ticket) = %+v after saving only access_token, want zero", c)
	}
}

func testFencedSave(t *testing.T, open Factory) {
	tests := []struct {
		name   string
		sameOn bool // save the older one through the handle that saved the newer
	}{
		{"OtherHandle", false},
		{"SameHandle", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind := kinds[i%len(kinds)]
			fast, slow := open(t), open(t)
			if tt.sameOn {
				slow = fast
			}
			newer := cred("fast-host-token", base.Add(time.Minute))
			older := cred("slow-host-token", base)
			if err := fast.Save(ctx(t), kind, newer); err != nil {
				t.Fatal(err)
			}
			err := slow.Save(ctx(t), kind, older)
			if !errors.Is(err, wechat.ErrSuperseded) {
				t.Fatalf("Save of a credential fetched before the stored one = %v, want ErrSuperseded", err)
			}
			checkCred(t, "Load after a refused save", mustLoad(t, fast, kind), newer)
		})
	}
}

// testAnyKind round-trips kinds beyond the credentials through two
// handles, fenced by FetchedAt like the others, each kept apart from the
// rest.
func testAnyKind(t *testing.T, open Factory) {
	a, b := open(t), open(t)
	tok := cred("the-token", base)
	if err := a.Save(ctx(t), wechat.KindAccessToken, tok); err != nil {
		t.Fatal(err)
	}
	want := map[wechat.Kind]wechat.Credential{}
	for i, k := range otherKinds {
		fetched := base.Add(time.Duration(i+1) * time.Minute)
		c := wechat.Credential{Value: fmt.Sprintf("value of %s", k), FetchedAt: fetched, ExpiresAt: fetched.Add(time.Duration(i+1) * time.Hour)}
		if err := a.Save(ctx(t), k, c); err != nil {
			t.Fatalf("Save(%q): %v", k, err)
		}
		want[k] = c
	}
	// An ended pause, as the keeper saves it: ExpiresAt before FetchedAt.
	ended := wechat.Credential{Value: "ended", FetchedAt: base.Add(time.Hour), ExpiresAt: base.Add(30 * time.Minute)}
	if err := b.Save(ctx(t), wechat.KindCooldown, ended); err != nil {
		t.Fatalf("Save(%s) of a newer, ended pause: %v", wechat.KindCooldown, err)
	}
	want[wechat.KindCooldown] = ended
	for _, k := range otherKinds {
		checkCred(t, fmt.Sprintf("Load(%q) on the saving handle", k), mustLoad(t, a, k), want[k])
		checkCred(t, fmt.Sprintf("Load(%q) on a second handle", k), mustLoad(t, b, k), want[k])
		older := cred("older", want[k].FetchedAt.Add(-time.Second))
		if err := b.Save(ctx(t), k, older); !errors.Is(err, wechat.ErrSuperseded) {
			t.Errorf("Save(%q) of a credential fetched before the stored one = %v, want ErrSuperseded", k, err)
		}
		checkCred(t, fmt.Sprintf("Load(%q) after a refused save", k), mustLoad(t, a, k), want[k])
	}
	checkCred(t, "Load(access_token) after saving other kinds", mustLoad(t, b, wechat.KindAccessToken), tok)
	for _, k := range kinds[1:] {
		if c := mustLoad(t, b, k); !c.IsZero() {
			t.Errorf("Load(%s) = %+v after saving only other kinds, want zero", k, c)
		}
	}
}

// testConcurrentSaves races saves of credentials fetched at different
// times: goroutines on one handle without the lock, and handles (as
// processes) under the lock. The latest fetch must end up stored.
func testConcurrentSaves(t *testing.T, open Factory) {
	tests := []struct {
		name   string
		handle func(i int) wechat.Store
		locked bool
	}{
		{"OneHandle", func() func(int) wechat.Store { s := open(t); return func(int) wechat.Store { return s } }(), false},
		{"HandlesUnderLock", func() func(int) wechat.Store {
			h := []wechat.Store{open(t), open(t)}
			return func(i int) wechat.Store { return h[i%2] }
		}(), true},
	}
	for k, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind := kinds[k%len(kinds)]
			const n = 16
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() {
					s := tt.handle(i)
					if tt.locked {
						unlock, err := s.Lock(ctx(t))
						if err != nil {
							errs <- err
							return
						}
						defer unlock()
					}
					c := cred(fmt.Sprintf("token-%02d", i), base.Add(time.Duration(i)*time.Second))
					if err := s.Save(ctx(t), kind, c); err != nil && !errors.Is(err, wechat.ErrSuperseded) {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("concurrent Save: %v", err)
			}
			want := cred(fmt.Sprintf("token-%02d", n-1), base.Add((n-1)*time.Second))
			checkCred(t, "Load after concurrent saves", mustLoad(t, tt.handle(0), kind), want)
		})
	}
}

// testRefreshUnderLock is the keeper's refresh: Lock, Load, Save, unlock,
// with Load and Save on the handle that holds the lock.
func testRefreshUnderLock(t *testing.T, open Factory) {
	s := open(t)
	for i := range 3 {
		unlock, err := s.Lock(ctx(t))
		if err != nil {
			t.Fatalf("Lock: %v", err)
		}
		old := mustLoad(t, s, wechat.KindAccessToken)
		if i > 0 && old.Value != fmt.Sprintf("token-%d", i-1) {
			t.Errorf("Load under the lock = %q, want token-%d", old.Value, i-1)
		}
		if err := s.Save(ctx(t), wechat.KindAccessToken, cred(fmt.Sprintf("token-%d", i), base.Add(time.Duration(i)*time.Hour))); err != nil {
			t.Fatalf("Save under the lock: %v", err)
		}
		unlock()
	}
}

func testLockExcludes(t *testing.T, open Factory) {
	handles := []wechat.Store{open(t), open(t)}
	const perWorker = 10
	var inside, counter atomic.Int64
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			s := handles[w]
			for range perWorker {
				unlock, err := s.Lock(ctx(t))
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("%d holders inside the critical section at once", n)
				}
				// A read-modify-write that loses updates without exclusion.
				v := counter.Load()
				time.Sleep(time.Millisecond)
				counter.Store(v + 1)
				inside.Add(-1)
				unlock()
			}
		})
	}
	wg.Wait()
	if got := counter.Load(); got != 2*perWorker {
		t.Errorf("counter = %d after %d locked increments: the lock let holders overlap", got, 2*perWorker)
	}
}

func testLockHonoursContext(t *testing.T, open Factory) {
	holder, waiter := open(t), open(t)
	unlock, err := holder.Lock(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"Deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx(t), 100*time.Millisecond)
		}, context.DeadlineExceeded},
		{"Cancel", func() (context.Context, context.CancelFunc) {
			c, cancel := context.WithCancel(ctx(t))
			time.AfterFunc(100*time.Millisecond, cancel)
			return c, cancel
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, cancel := tt.ctx()
			defer cancel()
			type result struct {
				unlock func()
				err    error
			}
			got := make(chan result, 1)
			go func() {
				u, err := waiter.Lock(c)
				got <- result{u, err}
			}()
			var (
				u   func()
				err error
			)
			select {
			case r := <-got:
				u, err = r.unlock, r.err
			case <-time.After(30 * time.Second):
				// The holder unlocks only when the test ends: a Lock that
				// ignores its context waits for good.
				t.Fatal("Lock did not return 30 s after its context ended")
			}
			if err == nil {
				u()
				t.Fatal("Lock succeeded while another handle held the lock")
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Lock while held elsewhere, ctx ended = %v, want an error wrapping %v", err, tt.want)
			}
		})
	}
}

func testUnlockLetsWaiterIn(t *testing.T, open Factory) {
	a, b := open(t), open(t)
	unlockA, err := a.Lock(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	unlockLetsWaiterIn(t, b, unlockA, "the first held the lock", nil, func() {
		// And back again: the released lock can be retaken by the first handle.
		u2, err := a.Lock(ctx(t))
		if err != nil {
			t.Fatalf("Lock after the waiter unlocked: %v", err)
		}
		u2()
	})
}

// unlockLetsWaiterIn checks that b's Lock waits while a holds the lock
// (unlockA releases it) and gets it once a unlocks; then held runs while
// the waiter holds it, and after once the waiter unlocked (either may be
// nil).
func unlockLetsWaiterIn(t *testing.T, b wechat.Store, unlockA func(), holder string, held, after func()) {
	t.Helper()
	type result struct {
		unlock func()
		err    error
	}
	got := make(chan result, 1)
	waitCtx := ctx(t)
	go func() {
		u, err := b.Lock(waitCtx)
		got <- result{u, err}
	}()
	select {
	case r := <-got:
		if r.err == nil {
			r.unlock()
		}
		t.Fatalf("a second handle's Lock returned (err %v) while %s", r.err, holder)
	case <-time.After(200 * time.Millisecond):
	}
	unlockA()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("waiting Lock: %v", r.err)
		}
		if held != nil {
			held()
		}
		r.unlock()
		if after != nil {
			after()
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiter did not get the lock within 30 s of unlock")
	}
}

func testCount(t *testing.T, open Factory) {
	a, b := open(t), open(t)
	day := wechat.DayCounter(wechat.APIToken, base)
	next := wechat.DayCounter(wechat.APIToken, base.Add(24*time.Hour))
	ticket := wechat.DayCounter(wechat.APITicket, base)
	force := wechat.DayCounter(wechat.APIStableForce, base)
	hour := wechat.HourCounter(wechat.APIToken, base)
	otherHour := wechat.HourCounter(wechat.APIToken, base.Add(time.Hour))
	steps := []struct {
		s       wechat.Store
		c       wechat.Counter
		n, want int // n == 0: Count
	}{
		{a, day, 0, 0},
		{a, day, 1, 1},
		{b, day, 2, 3},
		{a, day, 0, 3},
		{b, day, 0, 3},
		{a, ticket, 0, 0},
		{a, ticket, 5, 5},
		{b, next, 0, 0},
		{b, next, 1, 1},
		{a, day, 1, 4},
		{a, ticket, 0, 5},
		{a, force, 0, 0},
		// An hour of a day is a count of its own, apart from the day's.
		{a, hour, 0, 0},
		{a, hour, 2, 2},
		{b, hour, 1, 3},
		{b, otherHour, 0, 0},
		{b, otherHour, 1, 1},
		{a, day, 0, 4},
		{b, hour, 0, 3},
	}
	for i, st := range steps {
		if st.n == 0 {
			got, err := st.s.Count(ctx(t), st.c)
			if err != nil {
				t.Fatalf("step %d: Count(%v): %v", i, st.c, err)
			}
			if got != st.want {
				t.Errorf("step %d: Count(%v) = %d, want %d", i, st.c, got, st.want)
			}
			continue
		}
		got, err := st.s.AddCount(ctx(t), st.c, st.n)
		if err != nil {
			t.Fatalf("step %d: AddCount(%v, %d): %v", i, st.c, st.n, err)
		}
		if got != st.want {
			t.Errorf("step %d: AddCount(%v, %d) = %d, want %d", i, st.c, st.n, got, st.want)
		}
	}
}

// testCountRejects checks that a store refuses to add nothing or a
// negative number, and counters that name no count.
func testCountRejects(t *testing.T, open Factory) {
	s := open(t)
	day := wechat.DayCounter(wechat.APIToken, base)
	for _, n := range []int{0, -1} {
		if _, err := s.AddCount(ctx(t), day, n); err == nil {
			t.Errorf("AddCount(%v, %d) succeeded, want an error", day, n)
		}
	}
	bad := []wechat.Counter{
		{API: "", Day: day.Day},
		{API: wechat.APIToken, Day: "05/11/2026"},
		{API: wechat.APIToken},
		{API: wechat.APIToken, Day: day.Day, Hourly: true, Hour: 24},
		{API: "token@13", Day: day.Day},
	}
	for _, c := range bad {
		if _, err := s.AddCount(ctx(t), c, 1); err == nil {
			t.Errorf("AddCount(%#v, 1) succeeded, want an error", c)
		}
		if _, err := s.Count(ctx(t), c); err == nil {
			t.Errorf("Count(%#v) succeeded, want an error", c)
		}
	}
	if n, err := s.Count(ctx(t), day); err != nil || n != 0 {
		t.Errorf("Count(%v) after refused adds = %d, %v; want 0", day, n, err)
	}
}

// testAddCountConcurrent counts from many goroutines at once: on one
// handle without the lock, and on several handles (as processes) under the
// lock, as the keeper counts. Every count must be exact.
func testAddCountConcurrent(t *testing.T, open Factory) {
	tests := []struct {
		name    string
		handles []wechat.Store
		locked  bool
	}{
		{"OneHandle", []wechat.Store{open(t)}, false},
		{"HandlesUnderLock", []wechat.Store{open(t), open(t)}, true},
	}
	for k, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			day := wechat.DayCounter(wechat.APIToken, base.Add(time.Duration(k)*24*time.Hour))
			const workers, each = 8, 20
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					s := tt.handles[w%len(tt.handles)]
					for range each {
						if tt.locked {
							unlock, err := s.Lock(ctx(t))
							if err != nil {
								t.Errorf("Lock: %v", err)
								return
							}
							_, err = s.AddCount(ctx(t), day, 1)
							unlock()
							if err != nil {
								t.Errorf("AddCount: %v", err)
								return
							}
						} else if _, err := s.AddCount(ctx(t), day, 1); err != nil {
							t.Errorf("AddCount: %v", err)
							return
						}
					}
				})
			}
			wg.Wait()
			got, err := tt.handles[0].Count(ctx(t), day)
			if err != nil {
				t.Fatal(err)
			}
			if got != workers*each {
				t.Errorf("count after %d concurrent AddCount(1) = %d, want exactly %d", workers*each, got, workers*each)
			}
		})
	}
}

// tryLock calls s's TryLock, failing the test if s is no TryLocker or if
// TryLock has not returned within 30 s: it must not wait for a holder.
func tryLock(t *testing.T, c context.Context, s wechat.Store) (unlock func(), ok bool, err error) {
	t.Helper()
	tl, isTL := s.(wechat.TryLocker)
	if !isTL {
		t.Fatalf("%T is not a wechat.TryLocker, but another handle of its backing is", s)
	}
	type result struct {
		unlock func()
		ok     bool
		err    error
	}
	got := make(chan result, 1)
	go func() {
		u, ok, err := tl.TryLock(c)
		got <- result{u, ok, err}
	}()
	select {
	case r := <-got:
		if r.ok && (r.err != nil || r.unlock == nil) {
			t.Fatalf("TryLock = ok with unlock %v, err %v; want a non-nil unlock and no error", r.unlock != nil, r.err)
		}
		if !r.ok && r.unlock != nil {
			r.unlock()
			t.Fatal("TryLock returned an unlock function with ok false")
		}
		return r.unlock, r.ok, r.err
	case <-time.After(30 * time.Second):
		// Every holder in these tests unlocks only when the test ends.
		t.Fatal("TryLock did not return within 30 s: it waits for the holder")
	}
	return nil, false, nil
}

// mustTryLock is tryLock that wants the lock taken.
func mustTryLock(t *testing.T, s wechat.Store, what string) func() {
	t.Helper()
	unlock, ok, err := tryLock(t, ctx(t), s)
	if err != nil || !ok {
		t.Fatalf("%s: TryLock = ok %v, err %v; want the lock taken", what, ok, err)
	}
	return unlock
}

// mustNotTryLock is tryLock that wants the lock refused as held.
func mustNotTryLock(t *testing.T, s wechat.Store, what string) {
	t.Helper()
	unlock, ok, err := tryLock(t, ctx(t), s)
	if ok {
		unlock()
	}
	if err != nil || ok {
		t.Errorf("%s: TryLock = ok %v, err %v; want ok false and no error", what, ok, err)
	}
}

func testTryLockFree(t *testing.T, open Factory) {
	a, b := open(t), open(t)
	unlock := mustTryLock(t, a, "a free lock")
	mustNotTryLock(t, b, "held by another handle's TryLock")
	mustNotTryLock(t, a, "held by another caller of the same handle")
	unlock()
	unlock = mustTryLock(t, b, "after unlock")
	unlock()
	// Released on both handles: the waiting Lock takes it too.
	u, err := a.Lock(ctx(t))
	if err != nil {
		t.Fatalf("Lock after TryLock and unlock: %v", err)
	}
	u()
}

func testTryLockHeld(t *testing.T, open Factory) {
	holder, other := open(t), open(t)
	unlock, err := holder.Lock(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	mustNotTryLock(t, other, "held by another handle's Lock")
	mustNotTryLock(t, holder, "held by another caller of the same handle")
	// Refused attempts leave nothing behind: after the holder unlocks,
	// the lock is free.
	unlock()
	u := mustTryLock(t, other, "after the holder unlocked")
	u()
}

func testTryLockUnlockLetsWaiterIn(t *testing.T, open Factory) {
	a, b := open(t), open(t)
	unlockA := mustTryLock(t, a, "a free lock")
	unlockLetsWaiterIn(t, b, unlockA, "another handle held the lock by TryLock", func() {
		mustNotTryLock(t, a, "held by the waiter that got it")
	}, nil)
}

func testTryLockExcludes(t *testing.T, open Factory) {
	handles := []wechat.Store{open(t), open(t)}
	const workers, perWorker = 4, 10
	var inside, counter, refused atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			s := handles[w%len(handles)]
			for range perWorker {
				var unlock func()
				if w < len(handles) {
					u, err := s.Lock(ctx(t))
					if err != nil {
						t.Errorf("Lock: %v", err)
						return
					}
					unlock = u
				} else {
					for unlock == nil {
						u, ok, err := tryLock(t, ctx(t), s)
						if err != nil {
							t.Errorf("TryLock: %v", err)
							return
						}
						if !ok {
							refused.Add(1)
							time.Sleep(100 * time.Microsecond)
							continue
						}
						unlock = u
					}
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("%d holders inside the critical section at once", n)
				}
				v := counter.Load()
				time.Sleep(time.Millisecond)
				counter.Store(v + 1)
				inside.Add(-1)
				unlock()
			}
		})
	}
	wg.Wait()
	if got := counter.Load(); got != workers*perWorker {
		t.Errorf("counter = %d after %d locked increments: Lock and TryLock let holders overlap", got, workers*perWorker)
	}
	if refused.Load() == 0 {
		t.Log("no TryLock was refused: the workers never met")
	}
}

func testTryLockHonoursContext(t *testing.T, open Factory) {
	a, b := open(t), open(t)
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	unlock, ok, err := tryLock(t, c, a)
	if ok {
		unlock()
		t.Fatal("TryLock with a cancelled context took the lock")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("TryLock with a cancelled context = %v, want an error wrapping %v", err, context.Canceled)
	}
	u := mustTryLock(t, b, "after a cancelled TryLock")
	u()
}
