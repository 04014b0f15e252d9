package sqlstore_test

import (
	"context"
	"errors"
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
// database, each with several stores used at once, all create (or find)
// the tables and record one version; each host makes one attempt.
func TestMigrateConcurrently(t *testing.T) {
	forEach(t, func(t *testing.T, srv *sqltest.Server) {
		prefix := fmt.Sprintf("mig%d_", apps.Add(1))
		const hosts, users = 4, 5
		dbs := make([]*sqlstore.DB, hosts)
		for i := range dbs {
			dbs[i] = open(t, srv.URL(), sqlstore.WithPrefix(prefix))
			if n := sqlstore.MigrationAttempts(dbs[i]); n != 0 {
				t.Fatalf("host %d: %d migration attempts at Open, want none", i, n)
			}
		}
		errs := make([]error, hosts*users)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, db := range dbs {
			for j := range users {
				s := store(t, db, fmt.Sprintf("wxmig%d", j))
				wg.Go(func() {
					<-start
					c := wechat.Credential{Value: fmt.Sprintf("token-%d", i), FetchedAt: time.UnixMicro(int64(i + 1)), ExpiresAt: time.Now().Add(time.Hour)}
					switch j % 3 {
					case 0:
						err := s.Save(testCtx(t), wechat.KindAccessToken, c)
						if errors.Is(err, wechat.ErrSuperseded) {
							err = nil // another host saved a later one first
						}
						errs[i*users+j] = err
					case 1:
						_, errs[i*users+j] = s.AddCount(testCtx(t), wechat.DayCounter(wechat.APIToken, time.Now()), 1)
					default:
						unlock, ok, err := s.TryLock(testCtx(t))
						if ok {
							unlock()
						}
						errs[i*users+j] = err
					}
				})
			}
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("host %d, store %d: first use: %v", i/users, i%users, err)
			}
		}
		for i, db := range dbs {
			if n := sqlstore.MigrationAttempts(db); n != 1 {
				t.Errorf("host %d: %d migration attempts for %d concurrent first uses, want 1", i, n, users)
			}
			if n := db.Errors(); n != 0 {
				t.Errorf("host %d: DB.Errors = %d, want 0", i, n)
			}
		}
		var n, version int
		q := "SELECT count(*), max(version) FROM " + prefix + "schema"
		if err := dbs[0].SQL().QueryRowContext(testCtx(t), q).Scan(&n, &version); err != nil {
			t.Fatal(err)
		}
		if n != 1 || version != 1 {
			t.Errorf("%d schema versions recorded, the latest %d; want one, 1", n, version)
		}
		// Every host works on the tables, and migrates no more.
		for i, db := range dbs {
			s := store(t, db, "wxmig")
			c := wechat.Credential{Value: fmt.Sprintf("token-%d", i), FetchedAt: time.UnixMicro(int64(100 + i)), ExpiresAt: time.Now().Add(time.Hour)}
			if err := s.Save(testCtx(t), wechat.KindAccessToken, c); err != nil {
				t.Errorf("host %d: Save: %v", i, err)
			}
			if n := sqlstore.MigrationAttempts(db); n != 1 {
				t.Errorf("host %d: %d migration attempts after more uses, want 1", i, n)
			}
		}
		// A host started later finds the tables and migrates nothing.
		late := open(t, srv.URL(), sqlstore.WithPrefix(prefix))
		if err := late.Ping(testCtx(t)); err != nil {
			t.Fatalf("Ping on a later host: %v", err)
		}
		got, err := store(t, late, "wxmig").Load(testCtx(t), wechat.KindAccessToken)
		if err != nil || got.Value != fmt.Sprintf("token-%d", hosts-1) {
			t.Errorf("Load on a later host = %q, %v; want token-%d", got.Value, err, hosts-1)
		}
		if n := sqlstore.MigrationAttempts(late); n != 1 {
			t.Errorf("later host: %d migration attempts, want 1 (by Ping)", n)
		}
	})
}

// TestOpenWhileDown: a DB opened while its database is down is built all
// the same; its first uses fail at once, each counted as a "migrate"
// failure after one attempt of its own, and once the database is back the
// same DB creates the tables and works.
func TestOpenWhileDown(t *testing.T) {
	forEach(t, func(t *testing.T, srv *sqltest.Server) {
		prefix := fmt.Sprintf("down%d_", apps.Add(1))
		var mu sync.Mutex
		hooked := map[string]int{}
		srv.Stop()
		restarted := false
		defer func() {
			if !restarted {
				srv.Start()
			}
		}()
		db := open(t, srv.URL(), sqlstore.WithPrefix(prefix), sqlstore.WithErrorHook(func(op string, err error) {
			mu.Lock()
			hooked[op]++
			mu.Unlock()
		}))
		s := store(t, db, newAppID())
		for i := range 2 {
			ctx := testCtx(t)
			_, err := s.Load(ctx, wechat.KindAccessToken)
			switch {
			case err == nil:
				t.Fatalf("Load %d succeeded with the database stopped", i+1)
			case ctx.Err() != nil:
				t.Fatalf("Load %d = %v: it waited for its context to end", i+1, err)
			case !strings.Contains(err.Error(), "prepare the tables") || strings.Contains(err.Error(), sqltest.Password):
				t.Errorf("Load %d = %v, want an error about preparing the tables, without the password", i+1, err)
			}
			if n := sqlstore.MigrationAttempts(db); n != int64(i+1) {
				t.Errorf("after %d failed Loads: %d migration attempts, want %d", i+1, n, i+1)
			}
		}
		if got := s.Errors(); got != 2 {
			t.Errorf("Store.Errors = %d after 2 failed Loads, want 2", got)
		}
		if got := db.Errors(); got != 2 {
			t.Errorf("DB.Errors = %d after 2 failed Loads, want 2", got)
		}
		mu.Lock()
		if hooked["migrate"] != 2 || len(hooked) != 1 {
			t.Errorf("error hook calls %v, want migrate: 2", hooked)
		}
		mu.Unlock()

		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		restarted = true
		tok := wechat.Credential{Value: "after", FetchedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
		if err := s.Save(testCtx(t), wechat.KindAccessToken, tok); err != nil {
			t.Fatalf("Save after the start: %v", err)
		}
		got, err := s.Load(testCtx(t), wechat.KindAccessToken)
		if err != nil || got.Value != "after" {
			t.Fatalf("Load after the start = %q, %v; want the token saved", got.Value, err)
		}
		var version int
		if err := db.SQL().QueryRowContext(testCtx(t), "SELECT max(version) FROM "+prefix+"schema").Scan(&version); err != nil || version != 1 {
			t.Errorf("schema version after the start = %d, %v; want 1", version, err)
		}
		if err := db.Ping(testCtx(t)); err != nil {
			t.Errorf("Ping after the start: %v", err)
		}
		if n := sqlstore.MigrationAttempts(db); n != 3 {
			t.Errorf("%d migration attempts in all, want 3 (two failed, one done)", n)
		}
		if got := db.Errors(); got != 2 {
			t.Errorf("DB.Errors = %d after the start, want still 2", got)
		}
	})
}

// TestMigrateWaiters: a caller whose context ends while the migration is
// in flight returns its context's error, uncounted, and leaves the attempt
// running for the others: a caller that waits for it succeeds, and the DB
// makes no other attempt. PostgreSQL only: its pools have no read timeout,
// so a table lock holds the migration as long as the test needs (MySQL's
// read_timeout would end it after 2 s).
func TestMigrateWaiters(t *testing.T) {
	srv := sqltest.Postgres(t)
	prefix := fmt.Sprintf("wait%d_", apps.Add(1))
	first := open(t, srv.URL(), sqlstore.WithPrefix(prefix))
	if err := first.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// Hold the schema table: the next DB's migration blocks reading it.
	tx, err := first.SQL().BeginTx(testCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(testCtx(t), "LOCK TABLE "+prefix+"schema IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	db := open(t, srv.URL(), sqlstore.WithPrefix(prefix))
	s := store(t, db, newAppID())
	gone, cancel := context.WithCancel(testCtx(t))
	cancel()
	if _, err := s.Load(gone, wechat.KindAccessToken); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load with a canceled context during the migration = %v, want context.Canceled", err)
	}
	if n := sqlstore.MigrationAttempts(db); n != 1 {
		t.Fatalf("%d migration attempts after the first use, want 1", n)
	}
	if n := db.Errors(); n != 0 {
		t.Errorf("DB.Errors = %d after a caller gave up, want 0", n)
	}

	loaded := make(chan error, 1)
	go func() {
		_, err := s.Load(testCtx(t), wechat.KindAccessToken)
		loaded <- err
	}()
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-loaded; err != nil {
		t.Fatalf("Load waiting for the migration: %v", err)
	}
	if n := sqlstore.MigrationAttempts(db); n != 1 {
		t.Errorf("%d migration attempts in all, want 1", n)
	}
	if n := db.Errors(); n != 0 {
		t.Errorf("DB.Errors = %d, want 0", n)
	}
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
			{"ping", db.Ping},
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
		if got := s.Errors(); got != uint64(len(ops)-1) {
			t.Errorf("Store.Errors = %d after %d failed calls of the store", got, len(ops)-1)
		}
		if got := db.Errors(); got != uint64(len(ops)) {
			t.Errorf("DB.Errors = %d after %d failed calls", got, len(ops))
		}
		mu.Lock()
		for _, op := range []string{"load", "save", "count", "add_count", "ping"} {
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
