// Package storee2e holds what the multi-host end-to-end tests of the
// shared stores (redisstore, sqlstore) have in common, whatever the store:
// the body of a worker process (a keeper on the store and business calls
// through it), the report it prints, the summary of a run, and the checks
// that every refresh cycle cost one fetch and no business call failed.
//
// Opening the store, starting and stopping its server and re-executing the
// test binary (package e2e) stay with each store's tests. Unlike package
// e2e, this package imports package wechat, so wechat's own tests cannot
// use it.
package storee2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/internal/e2e"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The account the workers keep a token for, registered on the fake
// platform that NewServer starts.
const (
	AppID  = "wx0123456789abcdef"
	Secret = "S3CRET-must-never-leak-0123456789"
)

// callers is how many goroutines of a worker make business calls, and
// pause how long each waits between two calls.
const (
	callers = 16
	pause   = 40 * time.Millisecond
)

// NewServer starts a fake WeChat platform that knows AppID, issues tokens
// that live lifetime and die a second after the next fetch, and is closed
// when the test ends.
func NewServer(t testing.TB, lifetime time.Duration) *wechattest.Server {
	t.Helper()
	srv := wechattest.NewServer(wechattest.WithApp(AppID, Secret),
		wechattest.WithTokenLifetime(lifetime), wechattest.WithGrace(time.Second))
	t.Cleanup(srv.Close)
	return srv
}

// Report is what a worker prints on standard output when done.
type Report struct {
	Calls, Failed int
	StoreErrors   uint64
	Stats         wechat.Stats
}

// Start starts n workers, copies of the running test binary with env
// added to its environment (see e2e.Start); wait waits for them and
// returns their reports.
func Start(t testing.TB, n int, env ...string) (wait func() []Report) {
	t.Helper()
	return e2e.Start[Report](t, n, env...)
}

// Work is the body of a worker process. It runs a keeper of AppID on
// store against the platform at api, and 16 goroutines that get tokens
// and make business calls through it, until ctx is done; then it writes
// its Report as JSON to stdout, with storeErrors the count of the store's
// failed operations. Failed business calls are written to stderr.
func Work(ctx context.Context, store wechat.Store, storeErrors func() uint64, api string, stdout, stderr io.Writer) error {
	w, err := wechat.New(ctx, wechat.Options{
		AppID: AppID, AppSecret: Secret, Store: store,
		APIBase: api, MaxFetchesPerHour: 10000,
	})
	if err != nil {
		return fmt.Errorf("New: %w", err)
	}
	go w.Run(ctx)
	c := &wechat.Client{Source: w, APIBase: api}
	calls, failed := e2e.Hammer(ctx, callers, pause, func(ctx context.Context) error {
		_, err := c.Get(ctx, wechattest.PathAPIDomainIP, nil)
		return err
	}, stderr)
	return json.NewEncoder(stdout).Encode(Report{
		Calls: calls, Failed: failed, StoreErrors: storeErrors(), Stats: w.Stats(),
	})
}

// Result sums up a run: what the platform saw and what the workers
// reported.
type Result struct {
	// Fetches counts the tokens the platform handed out, and Rejected
	// the business calls it turned down.
	Fetches, Rejected int
	// KeeperFetches counts the fetches the workers' keepers report,
	// Calls and Failed their business calls and the failed ones.
	KeeperFetches, Calls, Failed int
	// StoreErrors counts the workers' failed store operations.
	StoreErrors uint64
}

// Summarize sums up a run on srv whose workers reported reports.
func Summarize(srv *wechattest.Server, reports []Report) Result {
	st := srv.Stats()
	r := Result{Fetches: st.Fetches[wechattest.PathToken]}
	for _, n := range st.Rejected {
		r.Rejected += n
	}
	for _, w := range reports {
		r.Calls += w.Calls
		r.Failed += w.Failed
		r.StoreErrors += w.StoreErrors
		for _, byOutcome := range w.Stats.Refreshes {
			r.KeeperFetches += int(byOutcome["fetched"])
		}
	}
	return r
}

// CheckMultiHost checks a run of hosts workers on a store that stayed up,
// against the platform srv whose refresh cycle is cycle, that took
// elapsed: every refresh cycle cost one fetch, made by a keeper; no
// business call was rejected or failed; no store operation failed; and
// every worker's callers kept calling. store names the store in messages
// ("Redis", "the database").
func CheckMultiHost(t testing.TB, srv *wechattest.Server, store string, hosts int, cycle, elapsed time.Duration, reports []Report) {
	t.Helper()
	r := Summarize(srv, reports)
	// One fetch at start-up, then one per cycle; a cycle ends at the first
	// call after the token turns stale, so the bound is generous by one.
	maxFetches := int(elapsed/cycle) + 2
	minFetches := int(elapsed/(2*cycle)) + 1
	t.Logf("%v: %d fetches (want %d..%d), %d by keepers, %d calls accepted of %d, %d rejected, %d failed, %d store errors",
		elapsed.Round(time.Millisecond), r.Fetches, minFetches, maxFetches, r.KeeperFetches, srv.Stats().Accepted, r.Calls, r.Rejected, r.Failed, r.StoreErrors)
	if r.Fetches > maxFetches || r.Fetches < minFetches {
		t.Errorf("%d fetches in %v, want one per refresh cycle: %d..%d", r.Fetches, elapsed, minFetches, maxFetches)
	}
	if r.Fetches != r.KeeperFetches {
		t.Errorf("the platform saw %d fetches, the keepers report %d", r.Fetches, r.KeeperFetches)
	}
	if r.Rejected > 0 || r.Failed > 0 {
		t.Errorf("%d business calls rejected by the platform, %d failed in workers; want 0", r.Rejected, r.Failed)
	}
	if r.StoreErrors != 0 {
		t.Errorf("%d store errors with %s up", r.StoreErrors, store)
	}
	if r.Calls < hosts*callers*int(elapsed/time.Second) {
		t.Errorf("only %d business calls made", r.Calls)
	}
}

// CheckOutage checks a run through an outage of the store that took
// elapsed: at most maxFetches fetches, no business call rejected or failed
// (a valid token was served throughout), and store errors counted (the
// outage reached the keepers).
func CheckOutage(t testing.TB, r Result, elapsed time.Duration, maxFetches int) {
	t.Helper()
	if r.Fetches > maxFetches {
		t.Errorf("%d fetches in %v, want at most %d", r.Fetches, elapsed, maxFetches)
	}
	if r.Rejected > 0 || r.Failed > 0 {
		t.Errorf("%d business calls rejected, %d failed: a valid token must be served throughout", r.Rejected, r.Failed)
	}
	if r.StoreErrors == 0 {
		t.Error("no store errors counted: the outage did not reach the keepers")
	}
}

// CheckRestored checks that s, the store after an outage, holds an access
// token fetched after the given time: the keepers used the store again
// once it was back. store names it in messages, as for CheckMultiHost.
func CheckRestored(t testing.TB, ctx context.Context, s wechat.Store, store string, after time.Time) {
	t.Helper()
	c, err := s.Load(ctx, wechat.KindAccessToken)
	if err != nil || c.IsZero() {
		t.Fatalf("after the restart %s holds %+v, %v; want the keepers' token", store, c, err)
	}
	if !c.FetchedAt.After(after) {
		t.Errorf("stored token fetched at %v, before the outage ended", c.FetchedAt)
	}
}
