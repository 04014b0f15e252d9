// Package e2e holds what the token keeper's multi-process end-to-end tests
// share: the test binary re-executes itself as worker processes (Start),
// and each worker hammers WeChat with business calls (Hammer) and prints a
// report on standard output. It imports nothing of wxcentral, so that the
// tests of package wechat itself can use it.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Hammer calls call from n goroutines, pausing between calls, until ctx is
// done, and returns how many calls were made and how many failed. Each
// failure, other than one caused by ctx ending, is written to errw.
func Hammer(ctx context.Context, n int, pause time.Duration, call func(context.Context) error, errw io.Writer) (calls, failed int) {
	var nCalls, nFailed atomic.Int64
	var mu sync.Mutex // serialises errw
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := call(ctx); err != nil && ctx.Err() == nil {
					nFailed.Add(1)
					mu.Lock()
					fmt.Fprintln(errw, "business call:", err)
					mu.Unlock()
				}
				nCalls.Add(1)
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		})
	}
	wg.Wait()
	return int(nCalls.Load()), int(nFailed.Load())
}

// Start starts n copies of the running test binary with env added to its
// environment (the variables that make TestMain run a worker instead of
// the tests). wait waits for them all and returns each one's report, the
// JSON value of type R it printed on standard output; a worker that fails
// or prints no report fails t (and leaves its report zero).
func Start[R any](t testing.TB, n int, env ...string) (wait func() []R) {
	t.Helper()
	reports := make([]R, n)
	var wg sync.WaitGroup
	for i := range n {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), env...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
		wg.Go(func() {
			if err := cmd.Wait(); err != nil {
				t.Errorf("worker %d: %v\n%s", i, err, errb.Bytes())
				return
			}
			if err := json.Unmarshal(out.Bytes(), &reports[i]); err != nil {
				t.Errorf("worker %d: report %q: %v", i, out.Bytes(), err)
			}
			if errb.Len() > 0 {
				t.Logf("worker %d stderr (first 2 KiB):\n%.2048s", i, errb.Bytes())
			}
		})
	}
	return func() []R { wg.Wait(); return reports }
}
