package sqlstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/internal/e2e"
	"github.com/wxcentral/wxcentral/wechat/internal/serial"
	"github.com/wxcentral/wxcentral/wechat/internal/sqltest"
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

	e2eAppID  = "wx0123456789abcdef"
	e2eSecret = "S3CRET-must-never-leak-0123456789"
)

// workerReport is what a worker prints on stdout when done.
type workerReport struct {
	Calls, Failed int
	StoreErrors   uint64
	Stats         wechat.Stats
}

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
	store, err := db.Store(e2eAppID)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Store:", err)
		return 1
	}
	w, err := wechat.New(ctx, wechat.Options{
		AppID: e2eAppID, AppSecret: e2eSecret, Store: store,
		APIBase: os.Getenv(envAPI), MaxFetchesPerHour: 10000,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "New:", err)
		return 1
	}
	go w.Run(ctx)
	c := &wechat.Client{Source: w, APIBase: os.Getenv(envAPI)}
	calls, failed := e2e.Hammer(ctx, 16, 40*time.Millisecond, func(ctx context.Context) error {
		_, err := c.Get(ctx, wechattest.PathAPIDomainIP, nil)
		return err
	}, os.Stderr)
	json.NewEncoder(os.Stdout).Encode(workerReport{
		Calls: calls, Failed: failed, StoreErrors: store.Errors(), Stats: w.Stats(),
	})
	return 0
}

// startWorkers starts n worker processes on the tables under prefix;
// wait collects their reports.
func startWorkers(t *testing.T, n int, api, dbURL, prefix string, d time.Duration) (wait func() []workerReport) {
	t.Helper()
	return e2e.Start[workerReport](t, n, envHelper+"=worker", envAPI+"="+api, envDB+"="+dbURL,
		envPrefix+"="+prefix, envDuration+"="+d.String())
}

type e2eResult struct {
	fetches, keeperFetches, rejected, failed, calls int
	storeErrors                                     uint64
}

func summarize(srv *wechattest.Server, reports []workerReport) e2eResult {
	st := srv.Stats()
	r := e2eResult{fetches: st.Fetches[wechattest.PathToken]}
	for _, n := range st.Rejected {
		r.rejected += n
	}
	for _, w := range reports {
		r.calls += w.Calls
		r.failed += w.Failed
		r.storeErrors += w.StoreErrors
		for _, byOutcome := range w.Stats.Refreshes {
			r.keeperFetches += int(byOutcome["fetched"])
		}
	}
	return r
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
		srv := wechattest.NewServer(wechattest.WithApp(e2eAppID, e2eSecret),
			wechattest.WithTokenLifetime(lifetime), wechattest.WithGrace(time.Second))
		defer srv.Close()

		start := time.Now()
		reports := startWorkers(t, 3, srv.URL, db.URL(), newPrefix(), 3*lifetime)()
		elapsed := time.Since(start)
		r := summarize(srv, reports)
		// One fetch at start-up, then one per cycle; a cycle ends at the
		// first call after the token turns stale, so the bound is generous
		// by one.
		maxFetches := int(elapsed/cycle) + 2
		minFetches := int(elapsed/(2*cycle)) + 1
		t.Logf("%v: %d fetches (want %d..%d), %d by keepers, %d calls accepted of %d, %d rejected, %d failed, %d store errors",
			elapsed.Round(time.Millisecond), r.fetches, minFetches, maxFetches, r.keeperFetches, srv.Stats().Accepted, r.calls, r.rejected, r.failed, r.storeErrors)
		if r.fetches > maxFetches || r.fetches < minFetches {
			t.Errorf("%d fetches in %v, want one per refresh cycle: %d..%d", r.fetches, elapsed, minFetches, maxFetches)
		}
		if r.fetches != r.keeperFetches {
			t.Errorf("the platform saw %d fetches, the keepers report %d", r.fetches, r.keeperFetches)
		}
		if r.rejected > 0 || r.failed > 0 {
			t.Errorf("%d business calls rejected by the platform, %d failed in workers; want 0", r.rejected, r.failed)
		}
		if r.storeErrors != 0 {
			t.Errorf("%d store errors with the database up", r.storeErrors)
		}
		if r.calls < 3*16*int(elapsed/time.Second) {
			t.Errorf("only %d business calls made", r.calls)
		}
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
		srv := wechattest.NewServer(wechattest.WithApp(e2eAppID, e2eSecret),
			wechattest.WithTokenLifetime(lifetime), wechattest.WithGrace(time.Second))
		defer srv.Close()
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
		r := summarize(srv, reports)

		maxFetches := int(elapsed/cycle) + 2
		t.Logf("%v: %d fetches (bound %d, %d while down for %v), %d by keepers, %d calls, %d rejected, %d failed, %d store errors",
			elapsed.Round(time.Millisecond), r.fetches, maxFetches, fetchesDuring, down.Round(time.Millisecond),
			r.keeperFetches, r.calls, r.rejected, r.failed, r.storeErrors)
		if r.fetches > maxFetches {
			t.Errorf("%d fetches in %v, want at most %d", r.fetches, elapsed, maxFetches)
		}
		if fetchesDuring > 0 {
			t.Errorf("%d fetches while the database was down, want none: a fetch needs the lock", fetchesDuring)
		}
		if r.rejected > 0 || r.failed > 0 {
			t.Errorf("%d business calls rejected, %d failed: a valid token must be served throughout", r.rejected, r.failed)
		}
		if r.storeErrors == 0 {
			t.Error("no store errors counted: the outage did not reach the keepers")
		}

		// The keepers used the database again after the restart: the
		// stored token was fetched after it, and every fetch was counted.
		s := store(t, open(t, db.URL(), sqlstore.WithPrefix(prefix)), e2eAppID)
		ctx := testCtx(t)
		c, err := s.Load(ctx, wechat.KindAccessToken)
		if err != nil || c.IsZero() {
			t.Fatalf("after the restart the database holds %+v, %v; want the keepers' token", c, err)
		}
		if !c.FetchedAt.After(stopped) {
			t.Errorf("stored token fetched at %v, before the outage ended", c.FetchedAt)
		}
		counted := 0
		for _, day := range uniqueDays(start, time.Now()) {
			n, err := s.Count(ctx, wechat.DayCounter(wechat.APIToken, day))
			if err != nil {
				t.Fatal(err)
			}
			counted += n
		}
		if counted < r.fetches {
			t.Errorf("%d fetches counted in the database, the platform saw %d: a fetch escaped the count", counted, r.fetches)
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
