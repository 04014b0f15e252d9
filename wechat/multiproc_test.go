package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/wxcentral/wxcentral/wechat/internal/e2e"
	"github.com/wxcentral/wxcentral/wechat/internal/serial"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The test binary doubles as the helper processes of the multi-process
// tests: with WXC_HELPER set, TestMain runs the helper instead of the tests.
const (
	envHelper   = "WXC_HELPER"   // "worker" or "saver"
	envAPI      = "WXC_API"      // the fake platform's URL
	envStore    = "WXC_STORE"    // the shared wechat.txt
	envDuration = "WXC_DURATION" // how long a worker runs
	envNoLock   = "WXC_NOLOCK"   // "1": the worker's store has a no-op Lock
)

func TestMain(m *testing.M) {
	switch os.Getenv(envHelper) {
	case "":
		os.Exit(m.Run())
	case "worker":
		os.Exit(helperWorker())
	case "saver":
		os.Exit(helperSaver())
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(envHelper))
		os.Exit(2)
	}
}

// noLockStore is a Store whose Lock does nothing: the helper uses it to show
// that without the cross-process lock processes kill each other's tokens.
type noLockStore struct{ Store }

func (noLockStore) Lock(context.Context) (func(), error) { return func() {}, nil }

// workerReport is what a worker prints on stdout when done.
type workerReport struct {
	Calls, Failed int
	Stats         Stats
}

// helperWorker runs one keeper with 16 goroutines that get tokens and make
// business calls until the duration is over.
func helperWorker() int {
	d, err := time.ParseDuration(os.Getenv(envDuration))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad duration:", err)
		return 2
	}
	var store Store = NewFileStore(os.Getenv(envStore), nil)
	if os.Getenv(envNoLock) == "1" {
		store = noLockStore{store}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	w, err := New(ctx, Options{
		AppID: testAppID, AppSecret: testSecret, Store: store,
		APIBase: os.Getenv(envAPI), MaxFetchesPerHour: 10000,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "New:", err)
		return 1
	}
	go w.Run(ctx)
	c := &Client{Source: w, APIBase: os.Getenv(envAPI)}
	calls, failed := e2e.Hammer(ctx, 16, 40*time.Millisecond, func(ctx context.Context) error {
		_, err := c.Get(ctx, wechattest.PathAPIDomainIP, nil)
		return err
	}, os.Stderr)
	json.NewEncoder(os.Stdout).Encode(workerReport{Calls: calls, Failed: failed, Stats: w.Stats()})
	return 0
}

// helperSaver saves new tokens and counts as fast as it can until killed.
func helperSaver() int {
	s := NewFileStore(os.Getenv(envStore), nil)
	ctx := context.Background()
	big := string(bytes.Repeat([]byte("T"), 600)) // tokens may be 512+ characters
	for i := 0; ; i++ {
		now := time.Now()
		c := Credential{Value: big + strconv.Itoa(i), FetchedAt: now, ExpiresAt: now.Add(time.Hour)}
		unlock, err := s.Lock(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := s.Save(ctx, KindAccessToken, c); err != nil && err != ErrSuperseded {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := s.AddCount(ctx, DayCounter(APIToken, now), 1); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		unlock()
	}
}

// runWorkers runs n worker processes against srv sharing one wechat.txt.
func runWorkers(t *testing.T, srv *wechattest.Server, n int, d time.Duration, noLock bool) []workerReport {
	t.Helper()
	store := filepath.Join(t.TempDir(), "wechat.txt")
	env := []string{envHelper + "=worker", envAPI + "=" + srv.URL, envStore + "=" + store, envDuration + "=" + d.String()}
	if noLock {
		env = append(env, envNoLock+"=1")
	}
	return e2e.Start[workerReport](t, n, env...)()
}

// TestMultiProcess is the cross-process smoke test of the shared store:
// four processes, each running Run and hammering WeChat with business
// calls, share one wechat.txt against a fake WeChat whose tokens live 1 s
// (the shortest expires_in WeChat can give: it counts in seconds) and die
// 1 s after the next fetch. It asserts on what WeChat sees, not on the
// workers' clients: with the Store's lock, about one fetch per refresh
// cycle for all four processes, and no call rejected (40001 superseded,
// 42001 expired, or any other code); without the lock, the processes fetch
// over each other, which shows the test can tell. The schedule itself is
// tested in fake time (TestNextWake, TestRunSchedule), the refresh
// protocol within one process by the tests of keeper_test.go and
// guard_test.go, and the Store's lock across processes by
// TestFileStoreLockNeverSplits.
func TestMultiProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 8 s of real time")
	}
	serial.Lock(t)
	const (
		lifetime = time.Second
		grace    = time.Second
		// RefreshBefore is capped at half the lifetime: a cycle is 0.5 s.
		cycle = lifetime / 2
	)
	tests := []struct {
		name     string
		d        time.Duration
		noLock   bool
		wantFail bool
	}{
		// Each run ends mid-cycle, away from a fetch.
		{"lock", 6*cycle + cycle/2, false, false},
		{"no-lock", 4*cycle + cycle/2, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret),
				wechattest.WithTokenLifetime(lifetime), wechattest.WithGrace(grace))
			defer srv.Close()
			start := time.Now()
			reports := runWorkers(t, srv, 4, tc.d, tc.noLock)
			elapsed := time.Since(start)
			st := srv.Stats()

			fetches := st.Fetches[wechattest.PathToken]
			// One fetch at start-up, then one per cycle; a cycle ends at the
			// first call after the token turns stale, so it is a little
			// longer than `cycle`: the bound is generous by one.
			maxFetches := int(elapsed/cycle) + 2
			calls, failed, fetched := 0, 0, int64(0)
			for _, r := range reports {
				calls += r.Calls
				failed += r.Failed
				for _, byOutcome := range r.Stats.Refreshes {
					fetched += byOutcome["fetched"]
				}
			}
			rejected := 0
			for _, n := range st.Rejected {
				rejected += n
			}
			// The workers' own failures (a client giving up under load) are
			// logged, not asserted: WeChat's counters are what matter.
			t.Logf("%v: %d fetches (bound %d), %d keeper fetches, %d of %d business calls accepted, rejected %v, %d failed in workers",
				elapsed.Round(time.Millisecond), fetches, maxFetches, fetched, st.Accepted, calls, st.Rejected, failed)
			bad := fetches > maxFetches || rejected > 0
			if tc.wantFail {
				if !bad {
					t.Errorf("without the lock: %d fetches (bound %d) and no rejected call; the test cannot tell the lock matters", fetches, maxFetches)
				}
				return
			}
			if fetches > maxFetches {
				t.Errorf("with the lock: %d fetches in %v, want at most one per %v cycle (≤ %d)", fetches, elapsed, cycle, maxFetches)
			}
			if rejected > 0 {
				t.Errorf("with the lock: WeChat rejected %d business calls (%d with 40001, %d with 42001; all: %v), want none",
					rejected, st.Rejected[40001], st.Rejected[42001], st.Rejected)
			}
			if minFetches := int(tc.d/(2*cycle)) + 1; fetches < minFetches {
				t.Errorf("only %d fetches in %v: tokens were not refreshed every cycle (want ≥ %d)", fetches, tc.d, minFetches)
			}
			// Every fetch is the keepers' own, but for one that a worker's
			// end may cut off before it is counted (with the lock, only one
			// is ever in flight).
			if d := int64(fetches) - fetched; d < 0 || d > 1 {
				t.Errorf("the platform saw %d fetches, the keepers report %d", fetches, fetched)
			}
			// Calls must have reached WeChat all along, or "none rejected"
			// proves nothing: at least one per process per cycle.
			if want := 4 * int(tc.d/cycle); st.Accepted < want {
				t.Errorf("WeChat accepted only %d business calls in %v, want ≥ %d", st.Accepted, tc.d, want)
			}
		})
	}
}

// TestCrashSafety SIGKILLs a process again and again while it saves tokens;
// wechat.txt must always parse and hold a token, and the lock must be free
// again each time.
func TestCrashSafety(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wechat.txt")
	env := append(os.Environ(), envHelper+"=saver", envStore+"="+path)
	s := NewFileStore(path, nil)
	ctx := context.Background()
	for i := range 25 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = env
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until it has written at least once, then a little more.
		deadline := time.Now().Add(5 * time.Second)
		for {
			if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the saver wrote nothing in 5 s: %s", errb.Bytes())
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(i%7) * 3 * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()

		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !gjson.ValidBytes(data) {
			t.Fatalf("kill %d: wechat.txt does not parse: %.120q", i, data)
		}
		c, err := s.Load(ctx, KindAccessToken)
		if err != nil || c.IsZero() {
			t.Fatalf("kill %d: Load = %+v, %v; want a token", i, c, err)
		}
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		unlock, err := s.Lock(lctx)
		cancel()
		if err != nil {
			t.Fatalf("kill %d: the dead process's lock was not released: %v", i, err)
		}
		unlock()
	}
}
