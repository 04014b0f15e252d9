package sqlstore_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/internal/serial"
	"github.com/wxcentral/wxcentral/wechat/internal/sqltest"
	"github.com/wxcentral/wxcentral/wechat/internal/storee2e"
	"github.com/wxcentral/wxcentral/wechat/sqlstore"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The environment of a worker process.
const (
	envHelper   = "WXS_HELPER"
	envAPI      = "WXS_API"      // the fake platform's URL
	envDB       = "WXS_DB"       // the database URL
	envPrefix   = "WXS_PREFIX"   // the table prefix
	envDuration = "WXS_DURATION" // how long a worker runs
)

// worker runs one keeper on the SQL store with 16 goroutines that get
// tokens and make business calls until the duration is over.
func worker() int {
	d, err := time.ParseDuration(os.Getenv(envDuration))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad duration:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	db, err := sqlstore.Open(ctx, os.Getenv(envDB), sqlstore.WithPrefix(os.Getenv(envPrefix)), sqlstore.WithLogger(quiet))
	if err != nil {
		fmt.Fprintln(os.Stderr, "Open:", err)
		return 1
	}
	defer db.Close()
	store, err := db.Store(storee2e.AppID)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Store:", err)
		return 1
	}
	if err := storee2e.Work(ctx, store, store.Errors, os.Getenv(envAPI), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startWorkers starts n worker processes on the tables under prefix;
// wait collects their reports.
func startWorkers(t *testing.T, n int, api, dbURL, prefix string, d time.Duration) (wait func() []storee2e.Report) {
	t.Helper()
	return storee2e.Start(t, n, envHelper+"=worker", envAPI+"="+api, envDB+"="+dbURL,
		envPrefix+"="+prefix, envDuration+"="+d.String())
}

// newPrefix returns a table prefix of fresh, empty tables.
func newPrefix() string { return fmt.Sprintf("e2e%d_", apps.Add(1)) }

// TestMultiHost runs three keeper processes that share one database
// against a fake WeChat whose tokens live 2 s and die 1 s after the next
// fetch, for three token lifetimes (six refresh cycles): every refresh
// cycle must cost exactly one fetch and no business call may be rejected.
func TestMultiHost(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 6 s per database")
	}
	forEach(t, func(t *testing.T, db *sqltest.Server) {
		serial.Lock(t)
		const (
			lifetime = 2 * time.Second
			cycle    = lifetime / 2 // RefreshBefore is capped at half the lifetime
		)
		srv := storee2e.NewServer(t, lifetime)

		start := time.Now()
		reports := startWorkers(t, 3, srv.URL, db.URL(), newPrefix(), 3*lifetime)()
		storee2e.CheckMultiHost(t, srv, "the database", 3, cycle, time.Since(start), reports)
	})
}

// TestMultiHostOutage stops the database in the middle of a run and
// starts it again: the keepers keep serving their valid token, fetch no
// more than the cycles need and none while the database is down, and use
// the database again once it is back.
func TestMultiHostOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 10 s per database")
	}
	forEach(t, func(t *testing.T, db *sqltest.Server) {
		serial.Lock(t)
		const (
			lifetime = 5 * time.Second // a cycle longer than the outage and the restart
			cycle    = lifetime / 2
			run      = 2 * lifetime
			outage   = 2 * time.Second
		)
		srv := storee2e.NewServer(t, lifetime)
		prefix := newPrefix()

		start := time.Now()
		wait := startWorkers(t, 3, srv.URL, db.URL(), prefix, run)
		// The outage spans the moment the first token turns stale, so that
		// the keepers' refresh meets it.
		first := firstFetch(t, srv)
		time.Sleep(time.Until(first.Add(cycle - outage/2)))
		fetchesBefore := srv.Stats().Fetches[wechattest.PathToken]
		db.Stop()
		stopped := time.Now()
		time.Sleep(outage)
		fetchesDuring := srv.Stats().Fetches[wechattest.PathToken] - fetchesBefore
		if err := db.Start(); err != nil {
			t.Fatalf("restart the database: %v", err)
		}
		down := time.Since(stopped)
		reports := wait()
		elapsed := time.Since(start)
		r := storee2e.Summarize(srv, reports)

		maxFetches := int(elapsed/cycle) + 2
		t.Logf("%v: %d fetches (bound %d, %d while down for %v), %d by keepers, %d calls, %d rejected, %d failed, %d store errors",
			elapsed.Round(time.Millisecond), r.Fetches, maxFetches, fetchesDuring, down.Round(time.Millisecond),
			r.KeeperFetches, r.Calls, r.Rejected, r.Failed, r.StoreErrors)
		storee2e.CheckOutage(t, r, elapsed, maxFetches)
		if fetchesDuring > 0 {
			t.Errorf("%d fetches while the database was down, want none: a fetch needs the lock", fetchesDuring)
		}

		// The keepers used the database again after the restart: the
		// stored token was fetched after it, and every fetch was counted.
		s := store(t, open(t, db.URL(), sqlstore.WithPrefix(prefix)), storee2e.AppID)
		ctx := testCtx(t)
		storee2e.CheckRestored(t, ctx, s, "the database", stopped)
		counted := 0
		for _, day := range uniqueDays(start, time.Now()) {
			n, err := s.Count(ctx, wechat.DayCounter(wechat.APIToken, day))
			if err != nil {
				t.Fatal(err)
			}
			counted += n
		}
		if counted < r.Fetches {
			t.Errorf("%d fetches counted in the database, the platform saw %d: a fetch escaped the count", counted, r.Fetches)
		}
	})
}

// firstFetch waits for the first token fetch from srv and returns about
// when it happened.
func firstFetch(t *testing.T, srv *wechattest.Server) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for srv.Stats().Fetches[wechattest.PathToken] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no token fetched within 30 s of starting the workers")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Now()
}

// uniqueDays returns a and b if they fall on different Beijing days (the
// run crossed midnight there), else a.
func uniqueDays(a, b time.Time) []time.Time {
	if wechat.QuotaDay(a) == wechat.QuotaDay(b) {
		return []time.Time{a}
	}
	return []time.Time{a, b}
}
