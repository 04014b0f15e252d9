package sqlstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/internal/sqltest"
	"github.com/wxcentral/wxcentral/wechat/sqlstore"
)

// host opens a DB on srv's database as another host would: with a pool of
// its own. Its DB.Close is the host's death.
func host(t *testing.T, srv *sqltest.Server, appID string, opts ...sqlstore.Option) (*sqlstore.DB, *sqlstore.Store) {
	t.Helper()
	db := open(t, srv.URL(), opts...)
	return db, store(t, db, appID)
}

// TestLeaseRenewed: a holder keeps its lock past many lock TTLs, because
// it renews the lease, and another host cannot take it meanwhile.
func TestLeaseRenewed(t *testing.T) {
	forEach(t, func(t *testing.T, srv *sqltest.Server) {
		const ttl = 400 * time.Millisecond
		appID := newAppID()
		_, holder := host(t, srv, appID, sqlstore.WithLockTTL(ttl))
		_, other := host(t, srv, appID, sqlstore.WithLockTTL(ttl))
		unlock, err := holder.Lock(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		// Five leases pass while the holder holds the lock.
		for end := time.Now().Add(5 * ttl); time.Now().Before(end); time.Sleep(ttl / 5) {
			if u, ok, err := other.TryLock(testCtx(t)); err != nil || ok {
				if ok {
					u()
				}
				t.Fatalf("another host's TryLock while the lock is held and renewed = ok %v, err %v", ok, err)
			}
		}
		unlock()
		u, ok, err := other.TryLock(testCtx(t))
		if err != nil || !ok {
			t.Fatalf("TryLock after unlock = ok %v, err %v; want the lock", ok, err)
		}
		u()
	})
}

// TestLeaseOfDeadHolder: a holder dies (its DB is closed: no renewal, no
// unlock). Its lock stays held until the lease expires, by the database's
// clock; then two hosts racing for it get it one at a time, and never
// both at once.
func TestLeaseOfDeadHolder(t *testing.T) {
	forEach(t, func(t *testing.T, srv *sqltest.Server) {
		const ttl = 2 * time.Second
		appID := newAppID()
		deadDB, dead := host(t, srv, appID, sqlstore.WithLockTTL(ttl))
		if _, err := dead.Lock(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		deadDB.Close()

		type result struct {
			who    int
			unlock func()
			err    error
		}
		got := make(chan result, 2)
		var racers [2]*sqlstore.Store
		for i := range racers {
			_, racers[i] = host(t, srv, appID, sqlstore.WithLockTTL(ttl))
		}
		// The lease is still running: a try is refused.
		if u, ok, err := racers[0].TryLock(testCtx(t)); err != nil || ok {
			if ok {
				u()
			}
			t.Fatalf("TryLock within the dead holder's lease = ok %v, err %v; want refused", ok, err)
		}
		for i, s := range racers {
			go func() {
				u, err := s.Lock(testCtx(t))
				got <- result{i, u, err}
			}()
		}
		first := <-got
		if first.err != nil {
			t.Fatalf("racer %d: Lock: %v", first.who, first.err)
		}
		// The winner holds the lock: the loser waits, and a third try
		// is refused.
		_, third := host(t, srv, appID)
		if u, ok, err := third.TryLock(testCtx(t)); err != nil || ok {
			if ok {
				u()
			}
			t.Fatalf("TryLock while racer %d holds the lock = ok %v, err %v; want refused", first.who, ok, err)
		}
		select {
		case r := <-got:
			t.Fatalf("racer %d got the lock (err %v) while racer %d held it", r.who, r.err, first.who)
		default:
		}
		first.unlock()
		second := <-got
		if second.err != nil {
			t.Fatalf("racer %d: Lock after the winner unlocked: %v", second.who, second.err)
		}
		second.unlock()
	})
}

// TestUnlockAfterLostLease: a holder whose lease expired (its renewal
// stopped) and was taken by another host does not release the new
// holder's lock when it unlocks at last.
func TestUnlockAfterLostLease(t *testing.T) {
	forEach(t, func(t *testing.T, srv *sqltest.Server) {
		const ttl = 300 * time.Millisecond
		appID := newAppID()
		pool := open(t, srv.URL())
		// A DB on a pool it does not own: closing it stops its renewals,
		// and leaves the pool usable for the late unlock.
		stale, err := sqlstore.New(testCtx(t), pool.SQL(), pool.Dialect(), sqlstore.WithLockTTL(ttl), sqlstore.WithLogger(quiet))
		if err != nil {
			t.Fatal(err)
		}
		slow := store(t, stale, appID)
		unlockSlow, err := slow.Lock(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		stale.Close()
		_, next := host(t, srv, appID, sqlstore.WithLockTTL(ttl))
		unlockNext, err := next.Lock(testCtx(t)) // waits for the lease to expire
		if err != nil {
			t.Fatal(err)
		}
		defer unlockNext()
		unlockSlow()
		if u, ok, err := slow.TryLock(testCtx(t)); err != nil || ok {
			if ok {
				u()
			}
			t.Fatalf("TryLock after the old holder's late unlock = ok %v, err %v; want the new holder's lock kept", ok, err)
		}
	})
}

// TestMigrateConcurrently: several hosts starting at once on an empty
// database all create (or find) the tables, and record one version.
func TestMigrateConcurrently(t *testing.T) {
	forEach(t, func(t *testing.T, srv *sqltest.Server) {
		prefix := fmt.Sprintf("mig%d_", apps.Add(1))
		const hosts = 6
		dbs := make([]*sqlstore.DB, hosts)
		errs := make([]error, hosts)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range hosts {
			wg.Go(func() {
				<-start
				dbs[i], errs[i] = sqlstore.Open(testCtx(t), srv.URL(), sqlstore.WithPrefix(prefix), sqlstore.WithLogger(quiet))
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("host %d: Open: %v", i, err)
			}
			defer dbs[i].Close()
		}
		var n, version int
		q := "SELECT count(*), max(version) FROM " + prefix + "schema"
		if err := dbs[0].SQL().QueryRowContext(testCtx(t), q).Scan(&n, &version); err != nil {
			t.Fatal(err)
		}
		if n != 1 || version != 1 {
			t.Errorf("%d schema versions recorded, the latest %d; want one, 1", n, version)
		}
		// Every host works on the tables.
		for i, db := range dbs {
			s := store(t, db, "wxmig")
			c := wechat.Credential{Value: fmt.Sprintf("token-%d", i), FetchedAt: time.UnixMicro(int64(i + 1)), ExpiresAt: time.Now().Add(time.Hour)}
			if err := s.Save(testCtx(t), wechat.KindAccessToken, c); err != nil {
				t.Errorf("host %d: Save: %v", i, err)
			}
		}
		// A host started later finds the tables and migrates nothing.
		late := open(t, srv.URL(), sqlstore.WithPrefix(prefix))
		got, err := store(t, late, "wxmig").Load(testCtx(t), wechat.KindAccessToken)
		if err != nil || got.Value != fmt.Sprintf("token-%d", hosts-1) {
			t.Errorf("Load on a later host = %q, %v; want token-%d", got.Value, err, hosts-1)
		}
	})
}

// TestOutage stops the database: every method fails promptly with an
// error that is counted and passed to the hook, and the same DB works
// again once the database is back.
func TestOutage(t *testing.T) {
	forEach(t, func(t *testing.T, srv *sqltest.Server) {
		var mu sync.Mutex
		hooked := map[string]int{}
		db := open(t, srv.URL(), sqlstore.WithErrorHook(func(op string, err error) {
			mu.Lock()
			hooked[op]++
			mu.Unlock()
		}))
		s := store(t, db, newAppID())
		day := wechat.DayCounter(wechat.APIToken, time.Now())
		tok := wechat.Credential{Value: "before", FetchedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
		if err := s.Save(testCtx(t), wechat.KindAccessToken, tok); err != nil {
			t.Fatal(err)
		}
		srv.Stop()
		restarted := false
		defer func() {
			if !restarted {
				srv.Start()
			}
		}()
		ops := []struct {
			op   string
			call func(ctx context.Context) error
		}{
			{"load", func(ctx context.Context) error { _, err := s.Load(ctx, wechat.KindAccessToken); return err }},
			{"save", func(ctx context.Context) error { return s.Save(ctx, wechat.KindAccessToken, tok) }},
			{"lock", func(ctx context.Context) error { _, err := s.Lock(ctx); return err }},
			{"lock", func(ctx context.Context) error { _, _, err := s.TryLock(ctx); return err }},
			{"count", func(ctx context.Context) error { _, err := s.Count(ctx, day); return err }},
			{"add_count", func(ctx context.Context) error { _, err := s.AddCount(ctx, day, 1); return err }},
		}
		for _, o := range ops {
			// A generous context: the store must fail the call by itself,
			// not wait for the database or for the context.
			ctx := testCtx(t)
			err := o.call(ctx)
			if err == nil {
				t.Errorf("%s succeeded with the database stopped", o.op)
			} else if ctx.Err() != nil {
				t.Errorf("%s = %v: it waited for its context to end", o.op, err)
			}
		}
		if got := s.Errors(); got != uint64(len(ops)) {
			t.Errorf("Store.Errors = %d after %d failed calls", got, len(ops))
		}
		if got := db.Errors(); got != uint64(len(ops)) {
			t.Errorf("DB.Errors = %d after %d failed calls", got, len(ops))
		}
		mu.Lock()
		for _, op := range []string{"load", "save", "count", "add_count"} {
			if hooked[op] != 1 {
				t.Errorf("error hook called %d times for %s, want 1", hooked[op], op)
			}
		}
		if hooked["lock"] != 2 {
			t.Errorf("error hook called %d times for lock, want 2", hooked["lock"])
		}
		mu.Unlock()

		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		restarted = true
		got, err := s.Load(testCtx(t), wechat.KindAccessToken)
		if err != nil || got.Value != "before" {
			t.Fatalf("Load after the restart = %q, %v; want the token saved before", got.Value, err)
		}
		unlock, err := s.Lock(testCtx(t))
		if err != nil {
			t.Fatalf("Lock after the restart: %v", err)
		}
		unlock()
		if n, err := s.AddCount(testCtx(t), day, 1); err != nil || n != 1 {
			t.Errorf("AddCount after the restart = %d, %v; want 1", n, err)
		}
	})
}

// TestOutageWhileLocked stops the database while a lock is held: the
// failed renewals and the failed release are counted and passed to the
// hook, and the lease, never released, expires by itself.
func TestOutageWhileLocked(t *testing.T) {
	forEach(t, func(t *testing.T, srv *sqltest.Server) {
		const ttl = 300 * time.Millisecond
		hooked := make(chan string, 100)
		appID := newAppID()
		db, s := host(t, srv, appID, sqlstore.WithLockTTL(ttl), sqlstore.WithErrorHook(func(op string, err error) {
			select {
			case hooked <- op:
			default:
			}
		}))
		unlock, err := s.Lock(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		srv.Stop()
		restarted := false
		defer func() {
			if !restarted {
				srv.Start()
			}
		}()
		if op := <-hooked; op != "renew" {
			t.Errorf("first failure while locked: %q, want renew", op)
		}
		unlock()
		for op := range hooked {
			if op == "unlock" {
				break
			}
			if op != "renew" {
				t.Errorf("failure %q while locked, want renew or unlock", op)
			}
		}
		if db.Errors() < 2 {
			t.Errorf("DB.Errors = %d after a failed renewal and release", db.Errors())
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		restarted = true
		// The release failed, so the lease runs out by itself.
		_, other := host(t, srv, appID, sqlstore.WithLockTTL(ttl))
		u, err := other.Lock(testCtx(t))
		if err != nil {
			t.Fatalf("Lock after the restart: %v", err)
		}
		u()
	})
}

// TestString names the lock without the URL's secrets. The DB is opened
// by the scheme's alias (mariadb://, postgresql://).
func TestString(t *testing.T) {
	forEach(t, func(t *testing.T, srv *sqltest.Server) {
		_, rest, _ := strings.Cut(srv.URL(), "://")
		alias := map[string]string{"mysql": "MariaDB://", "postgres": "postgresql://"}[srv.Dialect] + rest
		s := store(t, open(t, alias, sqlstore.WithPrefix("prod_")), "wx123")
		want := srv.Dialect + " lock prod_locks[wx123]"
		if got := s.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
		if strings.Contains(s.String(), sqltest.Password) {
			t.Errorf("String() = %q contains the password", s.String())
		}
	})
}
