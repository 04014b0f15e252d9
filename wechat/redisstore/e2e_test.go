package redisstore_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/internal/redistest"
	"github.com/wxcentral/wxcentral/wechat/internal/serial"
	"github.com/wxcentral/wxcentral/wechat/internal/storee2e"
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

	e2eAppID  = storee2e.AppID
	e2eSecret = storee2e.Secret
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
	if err := storee2e.Work(ctx, store, store.Errors, os.Getenv(envAPI), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startWorkers starts n worker processes; wait collects their reports.
func startWorkers(t *testing.T, n int, api, redisURL string, d time.Duration) (wait func() []storee2e.Report) {
	t.Helper()
	return storee2e.Start(t, n, envHelper+"=worker", envAPI+"="+api, envRedis+"="+redisURL, envDuration+"="+d.String())
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
	srv := storee2e.NewServer(t, lifetime)

	start := time.Now()
	reports := startWorkers(t, 4, srv.URL, rds.URL(), 4*lifetime)()
	storee2e.CheckMultiHost(t, srv, "Redis", 4, cycle, time.Since(start), reports)
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
	srv := storee2e.NewServer(t, lifetime)

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
	r := storee2e.Summarize(srv, reports)

	// The restarted Redis is empty, so one extra fetch may be needed.
	maxFetches := int(elapsed/cycle) + 3
	t.Logf("%v: %d fetches (bound %d, %d during the outage), %d by keepers, %d rejected, %d failed, %d store errors",
		elapsed.Round(time.Millisecond), r.Fetches, maxFetches, fetchesDuring, r.KeeperFetches, r.Rejected, r.Failed, r.StoreErrors)
	storee2e.CheckOutage(t, r, elapsed, maxFetches)
	if fetchesDuring > 1 {
		t.Errorf("%d fetches during a %v outage, want at most 1", fetchesDuring, outage)
	}

	// The keepers used Redis again after the restart: the stored token is
	// one the platform accepts, and fetches were counted there.
	s := open(t, rds.URL(), e2eAppID)
	ctx := testCtx(t)
	storee2e.CheckRestored(t, ctx, s, "Redis", start.Add(run/3))
	n, err := s.Count(ctx, wechat.DayCounter(wechat.APIToken, time.Now()))
	if err != nil || n < 1 {
		t.Errorf("fetch count in the restarted Redis = %d, %v; want the keepers' fetches counted", n, err)
	}
}
