package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// small is a run of the command small enough for CI: 20 apps, an idle
// window of a second, a simulated hour of ten-minute tokens.
func small(store string) Options {
	return Options{Apps: 20, Steps: []int{5}, Store: store, Idle: time.Second, FakeIdle: 200 * time.Millisecond,
		Pool: 8, Clients: 4, Load: 200 * time.Millisecond, Rounds: 2, Life: 10 * time.Minute, Refresh: 2 * time.Minute, Sim: time.Hour}
}

// needRedis skips the test without redis-server on PATH, and fails it
// instead when CI=true.
func needRedis(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but redis-server is not on PATH: %v", err)
		}
		t.Skipf("redis-server is not on PATH: %v", err)
	}
}

func TestRunSmall(t *testing.T) {
	for _, store := range []string{"file", "redis"} {
		t.Run(store, func(t *testing.T) {
			if store == "redis" {
				needRedis(t)
			}
			o := small(store)
			var progress bytes.Buffer
			rep, err := Run(context.Background(), o, &progress)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, progress.String())
			}
			checkReport(t, o, rep)

			var out bytes.Buffer
			rep.Print(&out)
			for _, want := range []string{"memory at rest", "idle CPU", "first token, all 20 apps", "simulated 1h0m0s", "GET /v1/apps/{id}/token"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("the table lacks %q:\n%s", want, out.String())
				}
			}
			if _, err := json.Marshal(rep); err != nil {
				t.Errorf("the report does not marshal: %v", err)
			}
		})
	}
}

// checkReport checks what a run of o must have found whatever the
// machine's speed: the counts, never the times.
func checkReport(t *testing.T, o Options, rep *Report) {
	t.Helper()
	if got := len(rep.Memory); got != 2 || rep.Memory[0].Apps != 5 || rep.Memory[1].Apps != o.Apps {
		t.Errorf("memory measured at %+v, want at 5 and %d apps", rep.Memory, o.Apps)
	}
	for _, p := range rep.Memory {
		// One Run loop per app at least, and the server's memory went
		// away with it.
		if p.ServerGoroutines < p.Apps || p.ServerHeap <= 0 {
			t.Errorf("%d apps: %d server goroutines, %d bytes of server heap: the fleet is not in the figures", p.Apps, p.ServerGoroutines, p.ServerHeap)
		}
		if p.UpstreamConns < 1 {
			t.Errorf("%d apps: no upstream connection seen after the first tokens", p.Apps)
		}
	}
	if rep.PerApp.Goroutines < 1 {
		t.Errorf("%.2f goroutines per app, want at least its Run loop", rep.PerApp.Goroutines)
	}
	if ft := rep.FirstToken; ft.Apps != o.Apps || ft.Fetches != o.Apps {
		t.Errorf("cold start: %d apps, %d tokens issued; want one token per app, %d", ft.Apps, ft.Fetches, o.Apps)
	}
	if rep.Idle.Fetches != 0 {
		t.Errorf("%d fetches while idle with every token fresh, want none", rep.Idle.Fetches)
	}
	if tp := rep.Throughput; tp.Failed != 0 || tp.PerApp <= 0 || tp.Single <= 0 || len(tp.PerAppRounds) != o.Rounds || len(tp.SingleRounds) != o.Rounds {
		t.Errorf("throughput: %+v, want both routes answering in %d rounds and none failed", tp, o.Rounds)
	}

	d := rep.Day
	if d.ColdStart != o.Apps {
		t.Errorf("simulated: %d fetches at the cold start, want %d", d.ColdStart, o.Apps)
	}
	if d.Invalid != 0 || d.Late != 0 {
		t.Errorf("simulated: %d app-seconds without a token, %d late refreshes; want none", d.Invalid, d.Late)
	}
	// Each app refreshes once per cycle, between life−window and
	// life−window/2 after its last fetch: over an hour of 10-minute tokens
	// refreshed 1–2 minutes ahead, 6 or 7 times.
	window := min(o.Refresh, o.Life/2)
	lo, hi := int(o.Sim/(o.Life-window/2)), int(o.Sim/(o.Life-window))+1
	if d.Fetches < lo*o.Apps || d.Fetches > hi*o.Apps {
		t.Errorf("simulated: %d fetches after the cold start, want %d to %d (%d apps)", d.Fetches, lo*o.Apps, hi*o.Apps, o.Apps)
	}
	var busy, fetches int
	for _, b := range d.Histogram {
		busy += b.Seconds
	}
	for sec, k := range d.perSecond {
		if sec > 0 {
			fetches += k
		}
	}
	if busy != d.BusySeconds || fetches != d.Fetches {
		t.Errorf("simulated: histogram holds %d seconds, %d busy; per-second fetches sum to %d, %d counted", busy, d.BusySeconds, fetches, d.Fetches)
	}
	if d.MaxPerSecond < 1 || d.MaxPerSecond > o.Apps {
		t.Errorf("simulated: at most %d fetches in a second, want 1 to %d", d.MaxPerSecond, o.Apps)
	}
	if d.LaterMax < 1 || d.LaterMax > d.MaxPerSecond {
		t.Errorf("simulated: at most %d fetches in a second after two lives, want 1 to the overall %d", d.LaterMax, d.MaxPerSecond)
	}
	// No refresh falls in the first refresh window's first part: a
	// token fetched at 0 is fresh until life−window at least.
	for sec, k := range d.perSecond {
		if sec > 0 && time.Duration(sec)*time.Second < o.Life-window {
			t.Errorf("simulated: %d fetches at +%ds, before any token could turn stale", k, sec)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
}

func TestHistogram(t *testing.T) {
	got := histogram(map[int]int{0: 1000, 1: 1, 2: 1, 3: 2, 4: 5, 5: 6, 6: 30})
	want := []Bucket{{1, 1, 2}, {2, 2, 1}, {3, 5, 1}, {6, 10, 1}, {11, 20, 0}, {21, 50, 1}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("histogram = %v, want %v (the cold start left out, empty top buckets dropped)", got, want)
	}
}

// BenchmarkAppToken compares GET /v1/apps/{app_id}/token on a fleet of
// 100 apps (random apps) with GET /v1/token on a server of one, over
// loopback HTTP with keep-alive connections.
func BenchmarkAppToken(b *testing.B) {
	for _, tc := range []struct {
		name string
		apps int
	}{{"fleet100", 100}, {"single", 1}} {
		b.Run(tc.name, func(b *testing.B) {
			bn := &bench{o: Options{Store: "file"}.withDefaults(), dir: b.TempDir(), tag: randomHex(3)}
			ids := bn.appIDs('b', tc.apps)
			fk, err := startFake(time.Minute, fakeOptions(ids)...)
			if err != nil {
				b.Fatal(err)
			}
			defer fk.Close()
			cfg, err := bn.config('b', ids, fk.URL, 5*time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			srv, err := serve(context.Background(), cfg, nil, bn.o.Logger)
			if err != nil {
				b.Fatal(err)
			}
			defer srv.stop()
			cl := newClient(64)
			defer cl.CloseIdleConnections()
			if _, err := firstTokens(context.Background(), cl, srv.admin, ids, 16); err != nil {
				b.Fatal(err)
			}
			urls := []string{srv.admin + "/v1/token"}
			if tc.apps > 1 {
				urls = urls[:0]
				for _, id := range ids {
					urls = append(urls, srv.admin+"/v1/apps/"+id+"/token")
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, urls[rand.IntN(len(urls))], nil)
					req.Header.Set("Authorization", "Bearer "+adminKey)
					resp, err := cl.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("HTTP %d", resp.StatusCode)
						return
					}
				}
			})
			b.StopTimer()
			if n := fk.Stats().Fetches[wechattest.PathToken]; n != tc.apps {
				b.Errorf("%d tokens fetched for %d apps during the benchmark", n, tc.apps)
			}
		})
	}
}
