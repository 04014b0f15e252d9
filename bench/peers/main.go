// Command peers benchmarks wxcentral against another Go WeChat SDK,
// silenceper/wechat v2, doing the same work through each one's public API
// as a user would call it:
//
//   - signature check: the official signature vector, and every other
//     time the same with a wrong signature (util.VerifySignature; the
//     peer's util.Signature compared with ==);
//   - GET handshake through the whole callback handler (middleware.New
//     with a message.Router; the peer's GetServer, Serve, Send);
//   - a plain text push answered with a text reply, through the same
//     handlers;
//   - the same in safe mode, every push AES-encrypted and every reply
//     decrypted and checked;
//   - a cached access token read: wxcentral's keeper (wechat.Wechat) and
//     its remote client (wechat.Remote on the admin API over HTTP, served
//     from memory), the peer's OfficialAccount.GetAccessTokenContext on
//     its memory cache;
//   - a JS-SDK configuration signed for a page URL (Wechat.JSSDKConfig;
//     the peer's GetJs().GetConfig).
//
// Both sides serve one account: the same token, AES key and AppID, the
// same access token and jsapi_ticket (wxcentral's keeper fetches them
// from the fake WeChat platform once, over HTTP; the peer gets them in
// its memory cache, since its API host is fixed), the same messages and
// the same reply text. Every push is a new message with a nonce of its
// own, signed for the current time, so both handle first deliveries;
// wxcentral's default stack also keeps its replay memory and retry
// dedupe, which the peer has no counterpart of.
//
// The harness plays WeChat with code of its own (standard library
// only): it builds and encrypts the pushes and checks every output of
// both sides, every reply decrypted and its MsgSignature checked, every
// JS-SDK signature recomputed. The checks run outside the timed part, in
// batches, while the timer is stopped; a wrong output fails the run.
//
// The implementations run interleaved: each round measures every case
// with each implementation once (testing.Benchmark, the order rotating
// from round to round), and the table gives the median of the rounds and
// the median of the per-round ratios to wxcentral with their range.
//
// Usage, in bench/peers (a module of its own, so that the main module
// never depends on a peer), or with go -C bench/peers from the top:
//
//	go run . [-rounds 10] [-benchtime 300ms] [-run REGEXP] [-short]
//
// The full run takes about two and a half minutes on 2 cores. -short (for
// CI) is -rounds 2 -benchtime 300x: a few hundred operations per case,
// every output still checked, in about a second. go test runs every case
// once and checks that a wrong output of either side fails the checks.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

func main() {
	testing.Init()
	rounds := flag.Int("rounds", 10, "rounds: each measures every case with each implementation once")
	benchtime := flag.String("benchtime", "300ms", "time (or Nx, N operations) of one measurement")
	run := flag.String("run", "", "measure only the cases whose name matches this regular expression")
	short := flag.Bool("short", false, "a quick run for CI: -rounds 2 -benchtime 300x")
	flag.Parse()
	if *short {
		*rounds, *benchtime = 2, "300x"
	}
	cfg := config{rounds: *rounds, benchtime: *benchtime}
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			fmt.Fprintln(os.Stderr, "peers: -run:", err)
			os.Exit(2)
		}
		cfg.match = re.MatchString
	}
	start := time.Now()
	if err := runAll(context.Background(), os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
	fmt.Printf("\n(%d rounds of %s in %s)\n", cfg.rounds, cfg.benchtime, time.Since(start).Round(time.Second))
}

// config is one run of the harness.
type config struct {
	rounds    int
	benchtime string
	match     func(string) bool // nil: every case
}

// runAll measures the cases and writes the table to out.
func runAll(ctx context.Context, out io.Writer, cfg config) error {
	if cfg.rounds < 1 {
		return fmt.Errorf("-rounds %d: want at least 1", cfg.rounds)
	}
	if err := flag.Set("test.benchtime", cfg.benchtime); err != nil {
		return fmt.Errorf("-benchtime %q: %v", cfg.benchtime, err)
	}
	e, err := newEnv(ctx)
	if err != nil {
		return fmt.Errorf("setting up: %w", err)
	}
	defer e.close()

	var selected []benchCase
	for _, c := range cases {
		if cfg.match == nil || cfg.match(c.name) {
			selected = append(selected, c)
		}
	}
	// One worker per case and implementation, kept for every round, as a
	// server keeps its handlers.
	workers := make([][]worker, len(selected))
	results := make([][][]testing.BenchmarkResult, len(selected))
	for i, c := range selected {
		workers[i] = make([]worker, len(c.impls))
		results[i] = make([][]testing.BenchmarkResult, len(c.impls))
		for k, im := range c.impls {
			workers[i][k] = im.new(e)
		}
	}
	for r := range cfg.rounds {
		for i, c := range selected {
			for n := range c.impls {
				k := (n + r) % len(c.impls) // rotate who goes first
				res, err := measure(c.batch, workers[i][k])
				if err != nil {
					return fmt.Errorf("%s, %s: %w", c.name, c.impls[k].name, err)
				}
				results[i][k] = append(results[i][k], res)
			}
		}
	}
	fmt.Fprintf(out, "%s, %d rounds of %s, median (ratio: median of the rounds' ratios, min–max)\n\n", machine(), cfg.rounds, cfg.benchtime)
	fmt.Fprintln(out, "| case | implementation | ns/op | B/op | allocs/op | ratio to wxcentral (spread) |")
	fmt.Fprintln(out, "|---|---|--:|--:|--:|---|")
	for i, c := range selected {
		base := results[i][0]
		for k, im := range c.impls {
			rs := results[i][k]
			ratio := "1"
			if k > 0 {
				ratios := make([]float64, len(rs))
				for r := range rs {
					ratios[r] = nsPerOp(rs[r]) / nsPerOp(base[r])
				}
				ratio = fmt.Sprintf("%.2f× (%.2f–%.2f)", median(ratios), slices.Min(ratios), slices.Max(ratios))
			}
			name := c.name
			if k > 0 {
				name = ""
			}
			fmt.Fprintf(out, "| %s | %s | %s | %.0f | %.0f | %s |\n", name, implName(im.name),
				formatNs(median(collect(rs, nsPerOp))),
				median(collect(rs, func(r testing.BenchmarkResult) float64 { return float64(r.AllocedBytesPerOp()) })),
				median(collect(rs, func(r testing.BenchmarkResult) float64 { return float64(r.AllocsPerOp()) })),
				ratio)
		}
	}
	return nil
}

// measure runs one benchmark of w, checking every output between batches
// with the timer stopped.
func measure(batch int, w worker) (testing.BenchmarkResult, error) {
	var failed error
	res := testing.Benchmark(func(b *testing.B) {
		if failed != nil {
			return
		}
		b.ReportAllocs()
		b.StopTimer()
		for done := 0; done < b.N; {
			n := min(batch, b.N-done)
			w.prepare(n)
			b.StartTimer()
			for j := range n {
				w.do(j)
			}
			b.StopTimer()
			if err := w.check(n); err != nil {
				failed = err
				return
			}
			done += n
		}
	})
	if failed == nil && res.N == 0 {
		failed = fmt.Errorf("the benchmark did not run")
	}
	return res, failed
}

func nsPerOp(r testing.BenchmarkResult) float64 {
	return float64(r.T.Nanoseconds()) / float64(r.N)
}

func collect(rs []testing.BenchmarkResult, f func(testing.BenchmarkResult) float64) []float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return v
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func formatNs(ns float64) string {
	if ns < 100 {
		return fmt.Sprintf("%.1f", ns)
	}
	return fmt.Sprintf("%.0f", ns)
}

// implName names an implementation with its module version.
func implName(name string) string {
	if name == wxcentralName {
		return name
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if strings.TrimSuffix(d.Path, "/v2") == "github.com/"+name {
				return name + " " + d.Version
			}
		}
	}
	return name
}

// machine describes where the run happened.
func machine() string {
	cpu := runtime.GOARCH
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs (GOMAXPROCS %d), %s %s/%s", cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0),
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
