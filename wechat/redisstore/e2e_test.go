package redisstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/internal/e2e"
	"github.com/wxcentral/wxcentral/wechat/internal/redistest"
	"github.com/wxcentral/wxcentral/wechat/internal/serial"
	"github.com/wxcentral/wxcentral/wechat/redisstore"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The test binary doubles as the keeper processes of the end-to-end tests:
// with WXR_HELPER=worker, TestMain runs one keeper instead of the tests.
const (
	envHelper   = "WXR_HELPER"
	envAPI      = "WXR_API"      // the fake platform's URL
	envRedis    = "WXR_REDIS"    // the store's URL
	envDuration = "WXR_DURATION" // how long a worker runs

	e2eAppID  = "wx0123456789abcdef"
	e2eSecret = "S3CRET-must-never-leak-0123456789"
)

func TestMain(m *testing.M) {
	switch os.Getenv(envHelper) {
	case "":
		os.Exit(m.Run())
	case "worker":
		os.Exit(worker())
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(envHelper))
		os.Exit(2)
	}
}

// workerReport is what a worker prints on stdout when done.
type workerReport struct {
	Calls, Failed int
	StoreErrors   uint64
	Stats         wechat.Stats
}

// worker runs one keeper on the Redis store with 16 goroutines that get
// tokens and make business calls until the duration is over.
func worker() int {
	d, err := time.ParseDuration(os.Getenv(envDuration))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad duration:", err)
		return 2
	}
	store, err := redisstore.Open(os.Getenv(envRedis), e2eAppID, redisstore.WithLogger(quiet))
	if err != nil {
		fmt.Fprintln(os.Stderr, "Open:", err)
		return 1
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
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

// startWorkers starts n worker processes; wait collects their reports.
func startWorkers(t *testing.T, n int, api, redisURL string, d time.Duration) (wait func() []workerReport) {
	t.Helper()
	return e2e.Start[workerReport](t, n, envHelper+"=worker", envAPI+"="+api, envRedis+"="+redisURL, envDuration+"="+d.String())
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

// TestMultiHost runs four keeper processes that share one Redis against a
// fake WeChat whose tokens live 2 s and die 1 s after the next fetch, for
// four token lifetimes (eight refresh cycles): every refresh cycle must
// cost exactly one fetch and no business call may be rejected.
func TestMultiHost(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 8 s")
	}
	serial.Lock(t)
	const (
		lifetime = 2 * time.Second
		cycle    = lifetime / 2 // RefreshBefore is capped at half the lifetime
	)
	rds := redistest.Start(t)
	srv := wechattest.NewServer(wechattest.WithApp(e2eAppID, e2eSecret),
		wechattest.WithTokenLifetime(lifetime), wechattest.WithGrace(time.Second))
	defer srv.Close()

	start := time.Now()
	reports := startWorkers(t, 4, srv.URL, rds.URL(), 4*lifetime)()
	elapsed := time.Since(start)
	r := summarize(srv, reports)
	// One fetch at start-up, then one per cycle; a cycle ends at the first
	// call after the token turns stale, so the bound is generous by one.
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
		t.Errorf("%d store errors with Redis up", r.storeErrors)
	}
	if r.calls < 4*16*int(elapsed/time.Second) {
		t.Errorf("only %d business calls made", r.calls)
	}
}

// TestMultiHostRedisOutage stops Redis in the middle of a run and starts it
// again (empty): the keepers keep serving their valid token, fetch no more
// than the cycles need, and use Redis again once it is back.
func TestMultiHostRedisOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 12 s")
	}
	serial.Lock(t)
	const (
		lifetime = 3 * time.Second // a cycle longer than the outage
		cycle    = lifetime / 2
		run      = 4 * lifetime
		outage   = time.Second
	)
	rds := redistest.Start(t)
	srv := wechattest.NewServer(wechattest.WithApp(e2eAppID, e2eSecret),
		wechattest.WithTokenLifetime(lifetime), wechattest.WithGrace(time.Second))
	defer srv.Close()

	start := time.Now()
	wait := startWorkers(t, 4, srv.URL, rds.URL(), run)
	time.Sleep(run / 3)
	fetchesBefore := srv.Stats().Fetches[wechattest.PathToken]
	rds.Stop()
	time.Sleep(outage)
	fetchesDuring := srv.Stats().Fetches[wechattest.PathToken] - fetchesBefore
	rds.Restart()
	reports := wait()
	elapsed := time.Since(start)
	r := summarize(srv, reports)

	// The restarted Redis is empty, so one extra fetch may be needed.
	maxFetches := int(elapsed/cycle) + 3
	t.Logf("%v: %d fetches (bound %d, %d during the outage), %d by keepers, %d rejected, %d failed, %d store errors",
		elapsed.Round(time.Millisecond), r.fetches, maxFetches, fetchesDuring, r.keeperFetches, r.rejected, r.failed, r.storeErrors)
	if r.fetches > maxFetches {
		t.Errorf("%d fetches in %v, want at most %d", r.fetches, elapsed, maxFetches)
	}
	if fetchesDuring > 1 {
		t.Errorf("%d fetches during a %v outage, want at most 1", fetchesDuring, outage)
	}
	if r.rejected > 0 || r.failed > 0 {
		t.Errorf("%d business calls rejected, %d failed: a valid token must be served throughout", r.rejected, r.failed)
	}
	if r.storeErrors == 0 {
		t.Error("no store errors counted: the outage did not reach the keepers")
	}

	// The keepers used Redis again after the restart: the stored token is
	// one the platform accepts, and fetches were counted there.
	s := open(t, rds.URL(), e2eAppID)
	ctx := testCtx(t)
	c, err := s.Load(ctx, wechat.KindAccessToken)
	if err != nil || c.IsZero() {
		t.Fatalf("after the restart Redis holds %+v, %v; want the keepers' token", c, err)
	}
	if !c.FetchedAt.After(start.Add(run / 3)) {
		t.Errorf("stored token fetched at %v, before the outage ended", c.FetchedAt)
	}
	n, err := s.Count(ctx, wechat.DayCounter(wechat.APIToken, time.Now()))
	if err != nil || n < 1 {
		t.Errorf("fetch count in the restarted Redis = %d, %v; want the keepers' fetches counted", n, err)
	}
}
