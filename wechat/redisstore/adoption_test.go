package redisstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/internal/redistest"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The keepers of the adoption test and benchmark run with the default
// RefreshBefore: a token turns stale 5 minutes before it expires, and a
// keeper that found the lock held elsewhere looks at the store again 1 s
// later (a tenth of RefreshBefore, at most 1 s).
const (
	adoptRefreshBefore = 5 * time.Minute
	adoptRetryDelay    = time.Second
)

// tally counts, for a fleet of keepers on one backing store, the attempts
// to take the store's lock (Lock and TryLock calls) and the acquisitions
// (those that took it) in one refresh cycle. With a barrier, the first
// acquisition of a cycle holds the lock until every keeper has made an
// attempt: all of them read the stale token before the first fetch ends,
// as processes that all see it turn stale at the same instant do.
type tally struct {
	n       int
	barrier bool

	mu       sync.Mutex
	attempts int
	locks    int
	all      chan struct{} // closed once every keeper has made an attempt
	timedOut bool          // the barrier gave up waiting
}

// reset starts a new cycle.
func (t *tally) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.attempts, t.locks, t.timedOut = 0, 0, false
	t.all = make(chan struct{})
}

// attempt counts an attempt to take the lock.
func (t *tally) attempt() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.attempts++
	if t.attempts == t.n {
		close(t.all)
	}
}

// took counts an acquisition and, for the first of a cycle with a
// barrier, waits until every keeper has made an attempt.
func (t *tally) took() {
	t.mu.Lock()
	t.locks++
	first, all := t.locks == 1, t.all
	t.mu.Unlock()
	if !t.barrier || !first {
		return
	}
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.mu.Lock()
		t.timedOut = true
		t.mu.Unlock()
	}
}

// counts returns the cycle's attempts and acquisitions.
func (t *tally) counts() (attempts, locks int, timedOut bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.attempts, t.locks, t.timedOut
}

// countingStore is one keeper's Store: it counts the lock's attempts and
// acquisitions in the fleet's tally, and its own keeper's Loads of the
// access token.
type countingStore struct {
	wechat.Store
	tally    *tally
	loads    atomic.Int64
	attempts atomic.Int64 // this keeper's Lock and TryLock calls
	tryHook  func()       // if set, called by TryLock before it tries
}

func (s *countingStore) Load(ctx context.Context, kind wechat.Kind) (wechat.Credential, error) {
	if kind == wechat.KindAccessToken {
		s.loads.Add(1)
	}
	return s.Store.Load(ctx, kind)
}

func (s *countingStore) Lock(ctx context.Context) (func(), error) {
	s.attempts.Add(1)
	s.tally.attempt()
	unlock, err := s.Store.Lock(ctx)
	if err == nil {
		s.tally.took()
	}
	return unlock, err
}

func (s *countingStore) TryLock(ctx context.Context) (func(), bool, error) {
	if s.tryHook != nil {
		s.tryHook()
	}
	s.attempts.Add(1)
	s.tally.attempt()
	unlock, ok, err := s.Store.(wechat.TryLocker).TryLock(ctx)
	if ok {
		s.tally.took()
	}
	return unlock, ok, err
}

// fleet is n keepers, standing in for n processes or hosts: separate
// keepers, each with its own handle on one backing store (its own Redis
// client, or its own FileStore), against one fake WeChat whose clock they
// share.
type fleet struct {
	srv     *wechattest.Server
	keepers []*wechat.Wechat
	stores  []*countingStore
	tally   *tally
}

// newFleet starts n keepers on the handles open returns, the first of
// which fetches the token that the others adopt.
func newFleet(tb testing.TB, n int, open func(tb testing.TB) wechat.Store, barrier bool) *fleet {
	tb.Helper()
	srv := wechattest.NewServer(wechattest.WithApp(e2eAppID, e2eSecret),
		wechattest.WithClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)))
	tb.Cleanup(srv.Close)
	f := &fleet{srv: srv, tally: &tally{n: n}}
	f.tally.reset()
	for range n {
		cs := &countingStore{Store: open(tb), tally: f.tally}
		w, err := wechat.Open(tb.Context(), wechat.Options{
			AppID: e2eAppID, AppSecret: e2eSecret, Store: cs,
			APIBase: srv.URL, HTTPClient: srv.Client(), Clock: srv, Logger: quiet,
			RefreshBefore: adoptRefreshBefore,
		})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(w.Close) // before the store closes
		f.keepers = append(f.keepers, w)
		f.stores = append(f.stores, cs)
	}
	for i, w := range f.keepers {
		if _, err := w.AccessToken(tb.Context()); err != nil {
			tb.Fatalf("keeper %d: %v", i, err)
		}
	}
	f.tally.barrier = barrier // from the first cycle on
	return f
}

// fetches is how many tokens the fake WeChat issued.
func (f *fleet) fetches() int { return f.srv.Stats().Fetches[wechattest.PathToken] }

// cycleResult is what one refresh cycle cost the fleet.
type cycleResult struct {
	attempts, locks int   // lock attempts and acquisitions
	timedOut        bool  // the barrier gave up
	loads           []int // by keeper: its Loads of the token until it served the new one
	rounds          int   // how many retry delays passed until every keeper served it
}

// cycle makes the token every keeper holds turn stale, for all of them at
// the same instant, and has every keeper call AccessToken at once. Then
// it lets the fake clock run on by the retry delay, calling AccessToken
// again, until every keeper serves the new token, which it returns with
// the cycle's costs.
func (f *fleet) cycle(tb testing.TB) (token string, res cycleResult) {
	tb.Helper()
	ctx := tb.Context()
	f.tally.reset()
	for _, s := range f.stores {
		s.loads.Store(0)
	}
	held, err := f.keepers[0].Token(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	f.srv.Advance(held.ExpiresAt.Add(-adoptRefreshBefore).Sub(f.srv.Now()))
	f.callAll(tb, held.Value, nil)

	for {
		f.waitIdle(tb)
		stored, err := f.stores[0].Store.Load(ctx, wechat.KindAccessToken)
		if err != nil {
			tb.Fatal(err)
		}
		var laggards []int
		for i, w := range f.keepers {
			if c, err := w.Token(ctx); err != nil || c.Value != stored.Value {
				laggards = append(laggards, i)
			}
		}
		if len(laggards) == 0 {
			token = stored.Value
			break
		}
		if res.rounds++; res.rounds > 10 {
			tb.Fatalf("%d keepers of %d still serve the old token %d retry delays after it turned stale", len(laggards), len(f.keepers), res.rounds-1)
		}
		f.srv.Advance(adoptRetryDelay)
		f.callAll(tb, "", laggards)
	}
	res.attempts, res.locks, res.timedOut = f.tally.counts()
	for _, s := range f.stores {
		res.loads = append(res.loads, int(s.loads.Load()))
	}
	return token, res
}

// callAll has the keepers (all of them for a nil which) call AccessToken
// at once, from one goroutine each; with want, each must get want.
func (f *fleet) callAll(tb testing.TB, want string, which []int) {
	tb.Helper()
	if which == nil {
		for i := range f.keepers {
			which = append(which, i)
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, i := range which {
		wg.Go(func() {
			<-start
			before := f.stores[i].attempts.Load()
			for try := 0; ; try++ {
				tok, err := f.keepers[i].AccessToken(tb.Context())
				if err != nil {
					tb.Errorf("keeper %d: AccessToken: %v", i, err)
					return
				}
				if try == 0 && want != "" && tok != want {
					tb.Errorf("keeper %d: AccessToken of a stale token returned another one", i)
					return
				}
				// On the stale token, a caller's call starts a refresh,
				// which tries the lock; unless the goroutine of the
				// keeper's last background refresh has not quite ended
				// (it stored its token, then clears its busy flag): call
				// again, as the next caller would, until one does (or
				// the keeper holds another token: it has refreshed).
				if want == "" || tok != want || f.stores[i].attempts.Load() > before || try == 2000 {
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	close(start)
	wg.Wait()
}

// waitIdle waits until no keeper's refresh is still to end: every keeper
// holds a token it counts as fresh (the new one, or the old one while it
// waits the retry delay to look again). A keeper still holding a stale
// token is called again, as a caller would: the goroutine of its last
// background refresh may have stored the token the cycle before and not
// yet ended when the cycle's call came, which then started none.
func (f *fleet) waitIdle(tb testing.TB) {
	tb.Helper()
	ctx := tb.Context()
	deadline := time.Now().Add(20 * time.Second)
	for i, w := range f.keepers {
		for st := w.Status(ctx); st.State != wechat.StateFresh; st = w.Status(ctx) {
			if time.Now().After(deadline) {
				tb.Fatalf("keeper %d: its background refresh did not end within 20 s (token %s, last error %q)", i, st.State, st.LastError)
			}
			time.Sleep(time.Millisecond)
			if _, err := w.AccessToken(ctx); err != nil {
				tb.Fatalf("keeper %d: %v", i, err)
			}
		}
	}
}

// adoptionBackings are the backing stores of the adoption test and
// benchmark: each returns the function that opens one more handle on a
// fresh backing.
var adoptionBackings = []struct {
	name string
	open func(tb testing.TB) func(tb testing.TB) wechat.Store
}{
	{"Redis", func(tb testing.TB) func(tb testing.TB) wechat.Store {
		url := redistest.Start(tb).URL()
		return func(tb testing.TB) wechat.Store { return open(tb, url, e2eAppID) }
	}},
	{"File", func(tb testing.TB) func(tb testing.TB) wechat.Store {
		path := filepath.Join(tb.TempDir(), "wechat.txt")
		return func(tb testing.TB) wechat.Store { return wechat.NewFileStore(path, quiet) }
	}},
}

// TestAdoptionLocksOncePerCycle: eight keepers on one store (separate
// keepers, each with its own Redis client or FileStore, as eight processes
// or hosts) all see the token turn stale at the same instant and all read
// the store before the first fetch ends. The store's lock is taken about
// once per refresh cycle, not once per keeper: the others find it held,
// keep serving the stale token and adopt the new one when they look
// again, a retry delay later, without the lock. WeChat is asked once per
// cycle, and every keeper ends up serving the new token.
func TestAdoptionLocksOncePerCycle(t *testing.T) {
	const keepers, cycles = 8, 5
	for _, b := range adoptionBackings {
		t.Run(b.name, func(t *testing.T) {
			f := newFleet(t, keepers, b.open(t), true)
			before := f.fetches()
			for c := range cycles {
				token, res := f.cycle(t)
				t.Logf("cycle %d: %d lock acquisitions of %d attempts, token loads by keeper %v, %d retry delays",
					c, res.locks, res.attempts, res.loads, res.rounds)
				if res.timedOut {
					t.Errorf("cycle %d: only %d of %d keepers tried the lock while its first holder held it", c, res.attempts, keepers)
				}
				if res.locks > 2 {
					t.Errorf("cycle %d: %d lock acquisitions by %d keepers, want about 1 (at most 2)", c, res.locks, keepers)
				}
				if res.rounds > 1 {
					t.Errorf("cycle %d: %d retry delays until every keeper adopted, want 1", c, res.rounds)
				}
				for i, n := range res.loads {
					if n > 3 {
						t.Errorf("cycle %d: keeper %d read the token %d times before it served the new one, want at most 3", c, i, n)
					}
				}
				for i, w := range f.keepers {
					if got, err := w.AccessToken(t.Context()); err != nil || got != token {
						t.Errorf("cycle %d: keeper %d serves another token than the stored one (err %v)", c, i, err)
					}
				}
			}
			if got := f.fetches() - before; got != cycles {
				t.Errorf("%d fetches in %d refresh cycles, want one per cycle", got, cycles)
			}
		})
	}
}

// BenchmarkAdoption measures one refresh cycle of 1 to 100 keepers on one
// store (each keeper with its own handle, as separate processes or hosts),
// all seeing the token turn stale at the same instant and calling
// AccessToken at once: locks/cycle is the store's lock acquisitions per
// cycle, tries/cycle the attempts (Lock and TryLock calls), loads/adopt a
// keeper's Loads of the token until it serves the new one, and
// delays/cycle the retry delays (fake time) until every keeper does.
func BenchmarkAdoption(b *testing.B) {
	for _, backing := range adoptionBackings {
		for _, n := range []int{1, 8, 32, 100} {
			b.Run(fmt.Sprintf("%s/keepers=%d", backing.name, n), func(b *testing.B) {
				f := newFleet(b, n, backing.open(b), false)
				var cycles, locks, tries, loads, rounds int
				for b.Loop() {
					_, res := f.cycle(b)
					cycles++
					locks += res.locks
					tries += res.attempts
					rounds += res.rounds
					for _, l := range res.loads {
						loads += l
					}
				}
				b.ReportMetric(float64(locks)/float64(cycles), "locks/cycle")
				b.ReportMetric(float64(tries)/float64(cycles), "tries/cycle")
				b.ReportMetric(float64(loads)/float64(cycles*n), "loads/adopt")
				b.ReportMetric(float64(rounds)/float64(cycles), "delays/cycle")
			})
		}
	}
}

// TestAdoptionWaitsOnlyWhenInAHurry: while another handle (another
// process or host) holds the store's lock, a background refresh of a
// stale but valid token does not wait for it: the keeper keeps serving
// its token, counts no failure, and looks again a retry delay later (in
// fake time: neither callers nor Run start a refresh before), when it
// takes the lock and fetches if the holder saved nothing. A refresh that
// is in a hurry, of an expired token, a passive or a forced one, waits
// for the lock as before.
func TestAdoptionWaitsOnlyWhenInAHurry(t *testing.T) {
	hurried := []struct {
		name    string
		advance time.Duration // past the stale instant
		call    func(ctx context.Context, w *wechat.Wechat, held string) (string, error)
	}{
		{"Expired", adoptRefreshBefore, func(ctx context.Context, w *wechat.Wechat, _ string) (string, error) {
			return w.AccessToken(ctx)
		}},
		{"Passive", 0, func(ctx context.Context, w *wechat.Wechat, held string) (string, error) {
			return w.Refresh(ctx, held)
		}},
		{"Forced", 0, func(ctx context.Context, w *wechat.Wechat, _ string) (string, error) {
			c, err := w.ForceRefresh(ctx)
			return c.Value, err
		}},
	}
	for _, b := range adoptionBackings {
		t.Run(b.name+"/Stale", func(t *testing.T) {
			f, w, held, unlock := lockedOut(t, b.open, 0)
			ctx := t.Context()
			f.tally.reset()
			before := f.fetches()
			if got, err := w.AccessToken(ctx); err != nil || got != held.Value {
				t.Fatalf("AccessToken of a stale token = err %v (or another token), want the held one at once", err)
			}
			f.waitIdle(t) // the refresh ended, the lock still held elsewhere
			attempts, locks, _ := f.tally.counts()
			if attempts != 1 || locks != 0 || f.fetches() != before {
				t.Fatalf("with the lock held elsewhere: %d lock attempts, %d taken, %d fetches; want 1 attempt, none taken, no fetch",
					attempts, locks, f.fetches()-before)
			}
			if st := w.Status(ctx); st.LastError != "" || !st.Healthy {
				t.Errorf("after finding the lock held: Status error %q, healthy %v; want no failure counted", st.LastError, st.Healthy)
			}
			// Served as fresh until the retry delay has passed: no caller and
			// no Run wake starts another refresh before.
			f.srv.Advance(adoptRetryDelay - time.Nanosecond)
			if st := w.Status(ctx).State; st != wechat.StateFresh {
				t.Errorf("just before the retry delay has passed the token is %s, want fresh", st)
			}
			f.srv.Advance(time.Nanosecond)
			if st := w.Status(ctx).State; st != wechat.StateStale {
				t.Errorf("once the retry delay has passed the token is %s, want stale again", st)
			}
			// The holder saved nothing: the next refresh takes the lock and fetches.
			unlock()
			if _, err := w.AccessToken(ctx); err != nil {
				t.Fatal(err)
			}
			f.waitIdle(t)
			if got := f.fetches() - before; got != 1 {
				t.Errorf("%d fetches after the lock was freed, want 1", got)
			}
			if c, err := w.Token(ctx); err != nil || c.Value == held.Value {
				t.Errorf("after the lock was freed the keeper still serves the old token (err %v)", err)
			}
		})
		for _, tt := range hurried {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				f, w, held, unlock := lockedOut(t, b.open, tt.advance)
				ctx := t.Context()
				before := f.fetches()
				type result struct {
					token string
					err   error
				}
				got := make(chan result, 1)
				go func() {
					tok, err := tt.call(ctx, w, held.Value)
					got <- result{tok, err}
				}()
				select {
				case r := <-got:
					t.Fatalf("returned (err %v) while the lock was held elsewhere, want it to wait for the lock", r.err)
				case <-time.After(200 * time.Millisecond):
				}
				unlock()
				select {
				case r := <-got:
					if r.err != nil || r.token == held.Value {
						t.Fatalf("after the lock was freed: err %v (or the old token), want a new token", r.err)
					}
				case <-time.After(30 * time.Second):
					t.Fatal("did not return within 30 s of the lock being freed")
				}
				if got := f.fetches() - before; got != 1 {
					t.Errorf("%d fetches, want 1", got)
				}
			})
		}
	}
}

// holdLock takes s's lock, as another process or host would hold it, and
// lockedOut starts one keeper on a fresh backing opened by openBacking,
// holding a token, and holds the store's lock from another handle (unlock
// frees it); the fake clock is then advanced to advance past the instant its
// token turns stale.
func lockedOut(t *testing.T, openBacking func(tb testing.TB) func(tb testing.TB) wechat.Store, advance time.Duration) (f *fleet, w *wechat.Wechat, held wechat.Credential, unlock func()) {
	t.Helper()
	open := openBacking(t)
	f = newFleet(t, 1, open, false)
	w = f.keepers[0]
	held, err := w.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	unlock = holdLock(t, open(t))
	f.srv.Advance(held.ExpiresAt.Add(-adoptRefreshBefore).Sub(f.srv.Now()) + advance)
	return f, w, held, unlock
}

// returns its unlock, which is also called when the test ends.
func holdLock(t *testing.T, s wechat.Store) func() {
	t.Helper()
	unlock, err := s.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	u := func() { once.Do(unlock) }
	t.Cleanup(u)
	return u
}

// TestPassiveRefreshSkipsDeferredRefresh: a passive refresh that arrives
// while a background refresh is trying the lock (held by another process)
// does not share that refresh, which ends with the held token; it waits
// for the lock and gets a new token, not the one WeChat rejected. (They
// shared one flight, and the caller got the rejected token back.)
func TestPassiveRefreshSkipsDeferredRefresh(t *testing.T) {
	for _, b := range adoptionBackings {
		t.Run(b.name, func(t *testing.T) {
			f, w, held, unlock := lockedOut(t, b.open, 0) // stale
			ctx := t.Context()
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			f.stores[0].tryHook = func() {
				once.Do(func() {
					close(entered)
					<-release
				})
			}
			if _, err := w.AccessToken(ctx); err != nil { // starts the background refresh
				t.Fatal(err)
			}
			<-entered // the background refresh is trying the lock
			got := make(chan string, 1)
			go func() {
				tok, err := w.Refresh(ctx, held.Value) // WeChat rejected held
				if err != nil {
					tok = "error: " + err.Error()
				}
				got <- tok
			}()
			// Let the background refresh find the lock held and end.
			close(release)
			f.waitIdle(t)
			select {
			case tok := <-got:
				t.Fatalf("the passive refresh returned %q while the lock was held elsewhere, want it to wait for the lock", tok)
			case <-time.After(200 * time.Millisecond):
			}
			unlock()
			if tok := <-got; tok == held.Value || strings.HasPrefix(tok, "error") {
				t.Fatalf("the passive refresh returned %q, want a new token", tok)
			}
		})
	}
}
