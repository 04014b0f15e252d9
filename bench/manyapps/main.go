// Command manyapps measures one wxcentral server keeping many apps: the
// real server.Serve, in this process, against the fake WeChat platform
// (wechattest), on a file store or on Redis. It reports
//
//   - memory at rest (after GC) at a few fleet sizes, and the bytes each
//     app adds;
//   - the CPU the process spends while idle, every token held;
//   - the time from Serve's start on an empty store until every app's
//     GET /v1/apps/{app_id}/token has answered 200;
//   - the largest number of upstream token fetches in any one second of a
//     simulated stretch on the fake's clock, with short-lived tokens so
//     that many refresh cycles pass;
//   - the throughput of GET /v1/apps/{app_id}/token next to GET /v1/token
//     of a second server that keeps one app.
//
// Usage:
//
//	go run ./bench/manyapps [-apps 1000] [-store file|redis] [-redis URL]
//	    [-steps 1,100,1000] [-idle 60s] [-clients 16] [-load 3s] [-rounds 3]
//	    [-life 10m] [-refresh-before 2m] [-sim 2h] [-run-jitter]
//	    [-memprofile FILE] [-json] [-v]
//
// With -store redis and no -redis, it starts its own redis-server (from
// PATH) on a free port in a temporary directory. The apps of every phase
// have AppIDs of their own, made up for the run, so a shared Redis is
// never flushed; their keys are deleted at the end.
//
// The fake serves on its own http.Server whose idle keep-alive
// connections close after -fake-idle, as a real API front end closes
// them: memory "at rest" is measured once they have closed, and the
// figure right after the first tokens, with them open, is printed beside
// it.
//
// The simulated stretch moves the fake's frozen clock from one app's
// stale instant to the next and asks that app's token there, as steady
// traffic would (see bench.simulate); -run-jitter asks it later by Run's
// jitter instead, as on an idle server. The keepers share the
// process's one upstream client, as in the serve command.
package main

import (
	"cmp"
	"container/heap"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/wechat/server"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// adminKey is the admin key of every server the bench starts.
const adminKey = "manyapps-bench-admin-key-0123456789"

// Options are what one run measures. The zero value of a field takes the
// default of its flag.
type Options struct {
	Apps  int   // apps of the largest fleet
	Steps []int // fleet sizes whose memory is measured; Apps is always one

	Store    string // "file" or "redis"
	RedisURL string // the Redis of -store redis; "": start a redis-server

	Idle       time.Duration // the idle window of the CPU figure
	FakeIdle   time.Duration // the fake's keep-alive idle timeout
	Pool       int           // concurrent requests of the first-token phase
	Clients    int           // concurrent keep-alive clients of the throughput phase
	Load       time.Duration // how long each throughput run lasts
	Rounds     int           // throughput runs of each route, taking turns
	Life       time.Duration // token lifetime of the simulated stretch
	Refresh    time.Duration // every app's RefreshBefore in the simulated stretch
	Sim        time.Duration // fake time simulated
	RunJitter  bool          // simulated stretch: ask each stale token later by a jitter of up to RefreshBefore/10, as Run waits
	MemProfile string        // if set, the heap profile of the largest fleet at rest is written there

	Logger *slog.Logger // the servers' log; nil: discard
}

func (o Options) withDefaults() Options {
	o.Apps = cmp.Or(o.Apps, 1000)
	o.Store = cmp.Or(o.Store, "file")
	o.Idle = cmp.Or(o.Idle, time.Minute)
	o.FakeIdle = cmp.Or(o.FakeIdle, 5*time.Second)
	o.Pool = cmp.Or(o.Pool, 64)
	o.Clients = cmp.Or(o.Clients, 16)
	o.Load = cmp.Or(o.Load, 3*time.Second)
	o.Rounds = cmp.Or(o.Rounds, 3)
	o.Life = cmp.Or(o.Life, 10*time.Minute)
	o.Refresh = cmp.Or(o.Refresh, 2*time.Minute)
	o.Sim = cmp.Or(o.Sim, 2*time.Hour)
	if o.Steps == nil {
		o.Steps = []int{1, 100, 1000}
	}
	var steps []int
	for _, n := range o.Steps {
		if n > 0 && n < o.Apps {
			steps = append(steps, n)
		}
	}
	steps = append(steps, o.Apps)
	slices.Sort(steps)
	o.Steps = slices.Compact(steps)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// A Report is what a run measured.
type Report struct {
	Store      string     `json:"store"`
	Apps       int        `json:"apps"`
	GoMaxProcs int        `json:"gomaxprocs"`
	LoadAvg    string     `json:"loadavg,omitempty"` // /proc/loadavg at the end: the machine's other load
	Memory     []MemPoint `json:"memory"`
	PerApp     PerApp     `json:"per_app"`
	FirstToken FirstToken `json:"first_token"`
	Idle       Idle       `json:"idle"`
	Throughput Throughput `json:"throughput"`
	Day        Day        `json:"simulated"`
	Wall       Duration   `json:"wall_time"`
	Notes      []string   `json:"notes,omitempty"`
}

// A MemPoint is the process's memory with a fleet of Apps running, every
// token held and no upstream connection open, after GC; Server* are the
// bytes that went away when that server stopped.
type MemPoint struct {
	Apps             int    `json:"apps"`
	HeapInuse        uint64 `json:"heap_inuse"`
	StackInuse       uint64 `json:"stack_inuse"`
	Sys              uint64 `json:"sys"`
	RSS              uint64 `json:"rss"` // resident set (Linux; 0 elsewhere)
	Goroutines       int    `json:"goroutines"`
	ServerHeap       int64  `json:"server_heap"`  // HeapInuse − HeapInuse after the server stopped
	ServerStack      int64  `json:"server_stack"` // StackInuse − the same after
	ServerGoroutines int    `json:"server_goroutines"`
	// AfterStart is HeapInuse+StackInuse right after the first tokens,
	// with the keepers' upstream keep-alive connections still open;
	// UpstreamConns is how many the fake had open then.
	AfterStart    uint64 `json:"after_start"`
	UpstreamConns int64  `json:"upstream_conns"`
}

// PerApp is the cost of one more app: the slope of the server's heap and
// stack between the smallest and the largest fleet.
type PerApp struct {
	Bytes      float64 `json:"bytes"`
	Goroutines float64 `json:"goroutines"`
}

// FirstToken is the cold start of the largest fleet.
type FirstToken struct {
	Apps     int      `json:"apps"`
	Time     Duration `json:"time"`
	Retries  int      `json:"retries"`  // answers other than 200 that were asked again
	Fetches  int      `json:"fetches"`  // tokens the fake issued meanwhile
	Attempts int      `json:"attempts"` // token calls the fake saw meanwhile
}

// Idle is the CPU of the idle window, every token held.
type Idle struct {
	Window        Duration `json:"window"`
	CPU           Duration `json:"cpu"`       // user+sys of this process
	Percent       float64  `json:"percent"`   // of one core
	RedisCPU      Duration `json:"redis_cpu"` // of the redis-server this run started, if any
	RedisCommands int64    `json:"redis_commands"`
	Fetches       int      `json:"fetches"` // upstream token fetches during the window
}

// Throughput compares the per-app token route with the single-app one.
type Throughput struct {
	Clients  int      `json:"clients"`
	Duration Duration `json:"duration"`
	Rounds   int      `json:"rounds"`
	PerApp   float64  `json:"per_app_rps"` // GET /v1/apps/{app_id}/token, random apps: the median
	Single   float64  `json:"single_rps"`  // GET /v1/token, one-app server: the median
	Ratio    float64  `json:"ratio"`
	Failed   int64    `json:"failed"`

	PerAppRounds []float64 `json:"per_app_rounds"`
	SingleRounds []float64 `json:"single_rounds"`
}

// Day is the simulated stretch on the fake's clock.
type Day struct {
	Apps          int      `json:"apps"`
	Simulated     Duration `json:"simulated"`
	Life          Duration `json:"token_life"`
	RefreshBefore Duration `json:"refresh_before"`
	Cycles        float64  `json:"cycles"`
	ColdStart     int      `json:"cold_start_fetches"` // fetched in the first second, from an empty store
	Fetches       int      `json:"fetches"`            // after the cold start
	MaxPerSecond  int      `json:"max_per_second"`     // after the cold start
	MaxAt         Duration `json:"max_at"`             // fake time since the start
	// LaterMax is the most fetches in one second after the first two
	// token lives, once the apps' own spreads have pulled the cold
	// start's cohort apart.
	LaterMax int `json:"later_max_per_second"`
	// FirstCycleMean is the mean per second to expect in the first
	// refresh window when every app was fetched in the same second:
	// apps ÷ (maxSpread × window), window = min(RefreshBefore, life/2).
	FirstCycleMean float64     `json:"first_cycle_mean"`
	BusySeconds    int         `json:"busy_seconds"` // seconds with at least one fetch
	Histogram      []Bucket    `json:"histogram"`
	RunJitter      bool        `json:"run_jitter"` // each fetch later by Run's jitter, as on an idle server
	Invalid        int         `json:"invalid"`    // token requests not answered 200 (should be 0)
	Late           int         `json:"late"`       // refreshes not served within 5 s of real time (should be 0)
	Wall           Duration    `json:"wall_time"`
	perSecond      map[int]int // by fake second since the start
}

// simCounts are the problems seen while apps refresh.
type simCounts struct {
	invalid, late atomic.Int64
}

// A Bucket counts the seconds whose fetches were in [Min, Max].
type Bucket struct {
	Min     int `json:"min"`
	Max     int `json:"max"`
	Seconds int `json:"seconds"`
}

// A Duration is a time.Duration that marshals as its String.
type Duration time.Duration

// MarshalJSON writes d as a string such as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d Duration) String() string { return time.Duration(d).String() }

func main() {
	var o Options
	var steps string
	var store, redisURL string
	var asJSON, verbose bool
	flag.IntVar(&o.Apps, "apps", 1000, "apps of the largest fleet")
	flag.StringVar(&steps, "steps", "1,100,1000", "fleet sizes whose memory is measured (comma-separated; -apps is always one)")
	flag.StringVar(&store, "store", "file", "token store: file or redis")
	flag.StringVar(&redisURL, "redis", "", "Redis URL of -store redis (default: start a redis-server from PATH)")
	flag.DurationVar(&o.Idle, "idle", time.Minute, "idle window of the CPU figure")
	flag.DurationVar(&o.FakeIdle, "fake-idle", 5*time.Second, "the fake's keep-alive idle timeout")
	flag.IntVar(&o.Pool, "pool", 64, "concurrent requests while waiting for the first tokens")
	flag.IntVar(&o.Clients, "clients", 16, "concurrent keep-alive clients of the throughput runs")
	flag.DurationVar(&o.Load, "load", 3*time.Second, "duration of each throughput run")
	flag.IntVar(&o.Rounds, "rounds", 3, "throughput runs of each route, taking turns (the medians are reported)")
	flag.DurationVar(&o.Life, "life", 10*time.Minute, "token lifetime of the simulated stretch (whole seconds)")
	flag.DurationVar(&o.Refresh, "refresh-before", 2*time.Minute, "every app's refresh_before in the simulated stretch")
	flag.DurationVar(&o.Sim, "sim", 2*time.Hour, "fake time simulated")
	flag.StringVar(&o.MemProfile, "memprofile", "", "write the heap profile of the largest fleet at rest to this file")
	flag.BoolVar(&o.RunJitter, "run-jitter", false, "simulated stretch: ask each stale token after Run's jitter (an idle server) instead of at once (steady traffic)")
	flag.BoolVar(&asJSON, "json", false, "print the report as JSON")
	flag.BoolVar(&verbose, "v", false, "log the servers' warnings to standard error")
	flag.Parse()
	for s := range strings.SplitSeq(steps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			log.Fatalf("manyapps: -steps: %q is not a positive number", s)
		}
		o.Steps = append(o.Steps, n)
	}
	o.Store, o.RedisURL = store, redisURL
	if o.MemProfile != "" {
		runtime.MemProfileRate = 4 << 10 // fine enough to attribute a few KiB per app
	}
	if verbose {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx := context.Background()
	rep, err := Run(ctx, o, os.Stderr)
	if err != nil {
		log.Fatal(err)
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			log.Fatal(err)
		}
		return
	}
	rep.Print(os.Stdout)
}

// Run measures what o asks, writing progress lines to progress.
func Run(ctx context.Context, o Options, progress io.Writer) (*Report, error) {
	o = o.withDefaults()
	if o.Store != "file" && o.Store != "redis" {
		return nil, fmt.Errorf("manyapps: -store %q is neither file nor redis", o.Store)
	}
	started := time.Now()
	say := func(format string, args ...any) { fmt.Fprintf(progress, "manyapps: "+format+"\n", args...) }
	dir, err := os.MkdirTemp("", "manyapps-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	b := &bench{o: o, dir: dir, tag: randomHex(3), say: say}
	rep := &Report{Store: o.Store, Apps: o.Apps, GoMaxProcs: runtime.GOMAXPROCS(0)}
	if o.Store == "redis" {
		if b.redisURL = o.RedisURL; b.redisURL == "" {
			rs, err := startRedis(ctx, filepath.Join(dir, "redis"))
			if err != nil {
				return nil, err
			}
			defer rs.stop()
			b.redis, b.redisURL = rs, rs.url
			say("started redis-server at %s (pid %d)", rs.url, rs.cmd.Process.Pid)
		}
		opt, err := redis.ParseURL(b.redisURL)
		if err != nil {
			return nil, fmt.Errorf("manyapps: -redis: %w", err)
		}
		b.rc = redis.NewClient(opt)
		defer b.rc.Close()
		if err := b.rc.Ping(ctx).Err(); err != nil {
			return nil, fmt.Errorf("manyapps: Redis: %w", err)
		}
		defer b.cleanRedis(context.WithoutCancel(ctx))
	}

	for i, n := range o.Steps {
		p, err := b.fleetPhase(ctx, rep, byte('a'+i), n, n == o.Apps)
		if err != nil {
			return nil, err
		}
		rep.Memory = append(rep.Memory, p)
	}
	if len(rep.Memory) > 1 {
		lo, hi := rep.Memory[0], rep.Memory[len(rep.Memory)-1]
		dn := float64(hi.Apps - lo.Apps)
		rep.PerApp.Bytes = float64(hi.ServerHeap+hi.ServerStack-lo.ServerHeap-lo.ServerStack) / dn
		rep.PerApp.Goroutines = float64(hi.ServerGoroutines-lo.ServerGoroutines) / dn
	}
	day, err := b.simulate(ctx, 'z', o.Apps)
	if err != nil {
		return nil, err
	}
	rep.Day = *day
	if rep.Day.Invalid > 0 || rep.Day.Late > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("simulated stretch: %d app-seconds without a valid token, %d refreshes late", rep.Day.Invalid, rep.Day.Late))
	}
	rep.Wall = Duration(time.Since(started).Round(time.Millisecond))
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.LoadAvg = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	return rep, nil
}

// A bench is the state of one Run.
type bench struct {
	o        Options
	dir      string
	tag      string // 6 hex digits in every AppID of the run
	say      func(format string, args ...any)
	redis    *redisServer  // the redis-server Run started, if any
	redisURL string        // the store of -store redis
	rc       *redis.Client // for INFO and the clean-up
}

// appIDs returns n made-up AppIDs of the phase: wx, the run's tag, the
// phase letter and a number, 18 characters as a real AppID.
func (b *bench) appIDs(phase byte, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("wx%s%c%09d", b.tag, phase, i)
	}
	return ids
}

// kinds is the mix of account kinds: app i is kinds[i%3].
var kinds = [...]struct {
	fake wechattest.Kind
	cfg  config.AppKind
}{
	{wechattest.KindOfficialAccount, config.OfficialAccount},
	{wechattest.KindMiniProgram, config.MiniProgram},
	{wechattest.KindMiniGame, config.MiniGame},
}

func secretOf(id string) string { return "secret-of-" + id }

// config returns the configuration of a server keeping ids, fetching from
// apiBase, each app refreshing refreshBefore ahead of expiry.
func (b *bench) config(phase byte, ids []string, apiBase string, refreshBefore time.Duration) (config.Config, error) {
	cfg := config.Default()
	cfg.APIBase = apiBase
	cfg.AdminKey = adminKey
	if b.o.Store == "redis" {
		cfg.Store = b.redisURL
	} else {
		d := filepath.Join(b.dir, "store-"+string(phase))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return cfg, err
		}
		cfg.Store = d + "/"
	}
	apps := make([]config.App, len(ids))
	for i, id := range ids {
		apps[i] = config.App{Name: id, Kind: kinds[i%3].cfg, AppID: id, Secret: config.Secret(secretOf(id)),
			TokenAPI: "token", RefreshBefore: refreshBefore}
	}
	return cfg.WithApps(apps...), nil
}

// fakeOptions registers ids with the fake, in the kind mix.
func fakeOptions(ids []string, extra ...wechattest.Option) []wechattest.Option {
	opts := make([]wechattest.Option, 0, len(ids)+len(extra))
	for i, id := range ids {
		opts = append(opts, wechattest.WithAppKind(id, secretOf(id), kinds[i%3].fake))
	}
	return append(opts, extra...)
}

// fleetPhase runs a fleet of n apps from an empty store: the time to the
// first tokens, memory at rest, and, for the largest fleet (full), the
// idle CPU and the throughput.
func (b *bench) fleetPhase(ctx context.Context, rep *Report, phase byte, n int, full bool) (MemPoint, error) {
	ids := b.appIDs(phase, n)
	fk, err := startFake(b.o.FakeIdle, fakeOptions(ids)...)
	if err != nil {
		return MemPoint{}, err
	}
	defer fk.Close()
	cfg, err := b.config(phase, ids, fk.URL, 5*time.Minute)
	if err != nil {
		return MemPoint{}, err
	}
	cl := newClient(max(b.o.Pool, b.o.Clients))
	defer cl.CloseIdleConnections()

	t0 := time.Now()
	srv, err := serve(ctx, cfg, nil, b.o.Logger)
	if err != nil {
		return MemPoint{}, err
	}
	defer srv.stop()
	retries, err := firstTokens(ctx, cl, srv.admin, ids, b.o.Pool)
	if err != nil {
		return MemPoint{}, err
	}
	ttft := time.Since(t0)
	st := fk.Stats()
	b.say("%d apps on %s: every first token after %v (%d tokens issued, %d asked again)", n, b.o.Store, ttft.Round(time.Millisecond), st.Fetches[wechattest.PathToken], retries)
	if full {
		rep.FirstToken = FirstToken{Apps: n, Time: Duration(ttft.Round(time.Millisecond)), Retries: retries,
			Fetches: st.Fetches[wechattest.PathToken], Attempts: st.Attempts[wechattest.PathToken]}
	}

	cl.CloseIdleConnections()
	p := MemPoint{Apps: n, UpstreamConns: fk.conns.Load()}
	m := memNow()
	p.AfterStart = m.HeapInuse + m.StackInuse
	// At rest: the keep-alive connections to the fake have closed.
	if err := fk.waitNoConns(2*b.o.FakeIdle + 5*time.Second); err != nil {
		return p, err
	}
	m = memNow()
	p.HeapInuse, p.StackInuse, p.Sys, p.Goroutines, p.RSS = m.HeapInuse, m.StackInuse, m.Sys, runtime.NumGoroutine(), rss()
	b.say("%d apps: heap %s, stacks %s, sys %s, %d goroutines (right after the first tokens: %s with %d upstream connections)",
		n, mib(p.HeapInuse), mib(p.StackInuse), mib(p.Sys), p.Goroutines, mib(p.AfterStart), p.UpstreamConns)

	if full && b.o.MemProfile != "" {
		if err := writeHeapProfile(b.o.MemProfile); err != nil {
			return p, err
		}
	}
	if full {
		idle, err := b.idle(ctx, fk)
		if err != nil {
			return p, err
		}
		rep.Idle = idle
		b.say("idle %v: CPU %v (%.3f%% of a core), %d fetches", idle.Window, idle.CPU, idle.Percent, idle.Fetches)
		tp, err := b.throughput(ctx, ids, srv.admin)
		if err != nil {
			return p, err
		}
		rep.Throughput = tp
		b.say("throughput: per-app route %.0f req/s, single-app route %.0f req/s", tp.PerApp, tp.Single)
	}

	if err := srv.stop(); err != nil {
		return p, err
	}
	fk.Close()
	after := memNow()
	p.ServerHeap = int64(p.HeapInuse) - int64(after.HeapInuse)
	p.ServerStack = int64(p.StackInuse) - int64(after.StackInuse)
	p.ServerGoroutines = p.Goroutines - runtime.NumGoroutine()
	runtime.KeepAlive(fk.Platform) // its tokens count in both figures
	return p, nil
}

// idle measures the process's CPU over the idle window.
func (b *bench) idle(ctx context.Context, fk *fakeServer) (Idle, error) {
	out := Idle{Window: Duration(b.o.Idle)}
	before := fk.Stats().Fetches[wechattest.PathToken]
	var rs0 redisStats
	if b.rc != nil {
		rs0 = b.redisInfo(ctx)
	}
	c0, err := cpuTime()
	if err != nil {
		return out, err
	}
	t0 := time.Now()
	select {
	case <-time.After(b.o.Idle):
	case <-ctx.Done():
		return out, ctx.Err()
	}
	c1, err := cpuTime()
	if err != nil {
		return out, err
	}
	wall := time.Since(t0)
	out.CPU = Duration(c1 - c0)
	out.Percent = 100 * float64(c1-c0) / float64(wall)
	out.Fetches = fk.Stats().Fetches[wechattest.PathToken] - before
	if b.rc != nil {
		rs1 := b.redisInfo(ctx)
		out.RedisCommands = rs1.commands - rs0.commands - 1 // the INFO itself
		out.RedisCPU = Duration(rs1.cpu - rs0.cpu)
	}
	return out, nil
}

// throughput loads GET /v1/apps/{app_id}/token on the fleet at admin
// (random apps) and GET /v1/token on a second server of one app, taking
// turns Options.Rounds times so that a change in the machine's load hits
// both alike, and reports the medians.
func (b *bench) throughput(ctx context.Context, ids []string, admin string) (Throughput, error) {
	out := Throughput{Clients: b.o.Clients, Duration: Duration(b.o.Load), Rounds: b.o.Rounds}
	urls := make([]string, len(ids))
	for i, id := range ids {
		urls[i] = admin + "/v1/apps/" + id + "/token"
	}
	one := b.appIDs('y', 1)
	fk, err := startFake(b.o.FakeIdle, fakeOptions(one)...)
	if err != nil {
		return out, err
	}
	defer fk.Close()
	cfg, err := b.config('y', one, fk.URL, 5*time.Minute)
	if err != nil {
		return out, err
	}
	srv, err := serve(ctx, cfg, nil, b.o.Logger)
	if err != nil {
		return out, err
	}
	defer srv.stop()
	cl := newClient(1)
	defer cl.CloseIdleConnections()
	if _, err := firstTokens(ctx, cl, srv.admin, one, 1); err != nil {
		return out, err
	}
	single := []string{srv.admin + "/v1/token"}
	var many, alone []float64
	for range b.o.Rounds {
		rps, failed := load(urls, b.o.Clients, b.o.Load)
		many, out.Failed = append(many, rps), out.Failed+failed
		rps, failed = load(single, b.o.Clients, b.o.Load)
		alone, out.Failed = append(alone, rps), out.Failed+failed
	}
	out.PerApp, out.Single = median(many), median(alone)
	out.PerAppRounds, out.SingleRounds = many, alone
	if out.Single > 0 {
		out.Ratio = out.PerApp / out.Single
	}
	return out, srv.stop()
}

// median returns the median of xs.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// A served is a running server.Serve.
type served struct {
	admin string // the admin API's base URL
	once  sync.Once
	stopF func() error
	err   error
}

// stop shuts the server down and returns Serve's error; later calls
// return the same.
func (s *served) stop() error {
	s.once.Do(func() { s.err = s.stopF() })
	return s.err
}

// serve runs server.Serve on cfg with listeners on loopback, and returns
// once it is ready.
func serve(ctx context.Context, cfg config.Config, clock util.Clock, logger *slog.Logger) (*served, error) {
	pub, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	adm, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pub.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	ready := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- server.Serve(ctx, cfg, server.Options{
			Logger: logger, PublicListener: pub, AdminListener: adm, Clock: clock,
			ShutdownTimeout: 10 * time.Second,
			Ready:           func(_, admin net.Addr) { ready <- admin },
		})
	}()
	select {
	case a := <-ready:
		return &served{admin: "http://" + a.String(), stopF: func() error { cancel(); return <-errc }}, nil
	case err := <-errc:
		cancel()
		if err == nil {
			err = errors.New("manyapps: Serve returned before it was ready")
		}
		return nil, err
	}
}

// newClient returns a keep-alive client for up to conns connections.
func newClient(conns int) *http.Client {
	return &http.Client{Timeout: 60 * time.Second,
		Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
}

// get sends GET url with the admin key and returns the status.
func get(ctx context.Context, cl *http.Client, url string, body any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if body != nil && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(body)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// firstTokens asks every app's token, pool at a time, until each has
// answered 200, and returns how many answers were not 200.
func firstTokens(ctx context.Context, cl *http.Client, admin string, ids []string, pool int) (retries int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	next := make(chan string)
	for range min(pool, len(ids)) {
		wg.Go(func() {
			for id := range next {
				for {
					code, err := get(ctx, cl, admin+"/v1/apps/"+id+"/token", nil)
					if code == http.StatusOK {
						break
					}
					mu.Lock()
					retries++
					mu.Unlock()
					if ctx.Err() != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("manyapps: app %s: no token (HTTP %d, %v)", id, code, err))
						mu.Unlock()
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	return retries, errors.Join(errs...)
}

// load sends GET to random URLs of urls from conns keep-alive clients for
// d, and returns the 200 answers per second and the other outcomes.
func load(urls []string, conns int, d time.Duration) (rps float64, failed int64) {
	cl := newClient(conns)
	defer cl.CloseIdleConnections()
	var n, bad atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodGet, urls[mrand.IntN(len(urls))], nil)
				req.Header.Set("Authorization", "Bearer "+adminKey)
				resp, err := cl.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					n.Add(1)
				} else {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds(), bad.Load()
}

// An appState is one app of GET /v1/apps.
type appState struct {
	AppID     string `json:"app_id"`
	State     string `json:"state"`
	RefreshAt string `json:"refresh_at"`
}

// listApps returns GET /v1/apps by AppID, with each refresh_at parsed
// (zero when there is none).
func listApps(ctx context.Context, cl *http.Client, admin string) (map[string]time.Time, map[string]string, error) {
	var body struct{ Apps []appState }
	code, err := get(ctx, cl, admin+"/v1/apps", &body)
	if err != nil || code != http.StatusOK {
		return nil, nil, fmt.Errorf("manyapps: GET /v1/apps: HTTP %d, %v", code, err)
	}
	at := make(map[string]time.Time, len(body.Apps))
	state := make(map[string]string, len(body.Apps))
	for _, a := range body.Apps {
		var t time.Time
		if a.RefreshAt != "" {
			if t, err = time.Parse(time.RFC3339, a.RefreshAt); err != nil {
				return nil, nil, fmt.Errorf("manyapps: GET /v1/apps: refresh_at %q: %w", a.RefreshAt, err)
			}
		}
		at[a.AppID], state[a.AppID] = t, a.State
	}
	return at, state, nil
}

// simStart is where the fake's clock starts in the simulated stretch: a
// Beijing midnight, so that a quota day lies ahead.
var simStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))

// A simApp is one app of the simulated stretch: when it turns stale, when
// the bench asks its token (the same instant, or later by Run's jitter),
// and the token it holds.
type simApp struct {
	id      string
	spread  time.Duration // the SpreadRefresh share of its window
	staleAt time.Time
	due     time.Time
	token   string
}

// simQueue orders apps by due.
type simQueue []*simApp

func (q simQueue) Len() int           { return len(q) }
func (q simQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q simQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)        { *q = append(*q, x.(*simApp)) }
func (q *simQueue) Pop() any {
	old := *q
	a := old[len(old)-1]
	*q = old[:len(old)-1]
	return a
}

// spreadOf is the instant by which wechat.Options.SpreadRefresh holds an
// app's token fresh beyond the start of its window w: the fraction in
// [0, 0.5) of w that a hash of the AppID and the credential kind gives
// (wechat's spreadFraction). The bench checks its result against every
// app's refresh_at in GET /v1/apps, so a change in the server's rule is
// an error, not a wrong figure.
func spreadOf(appID string, w time.Duration) time.Duration {
	sum := sha256.Sum256([]byte(appID + "\x00" + "access_token"))
	frac := float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53) * 0.5
	return time.Duration(frac * float64(w))
}

// simulate runs n apps on the fake's frozen clock, with tokens of life
// Options.Life refreshed Options.Refresh ahead, through Options.Sim of fake
// time, and counts the fake's token calls in each fake second.
//
// The keepers' Run loops sleep on real timers (util.Clock has none), so on
// a fake clock they would notice a token turning stale only at their next
// real wake (at most SyncInterval, 30 s, later). So the bench is the
// traffic that notices: it moves the fake clock from one app's stale
// instant to the next, exactly, asks that app's token (GET
// /v1/apps/{app_id}/token, which starts its background refresh), and waits
// until the app holds the new token before it moves on. Each fetch thus
// lands at the very instant its app turned stale: the spread the server
// gives, without the jitter of up to RefreshBefore/10 that Run adds on an
// idle server (Options.RunJitter adds it), so the maximum is the one under
// steady traffic. Seconds without a stale app are jumped over.
func (b *bench) simulate(ctx context.Context, phase byte, n int) (*Day, error) {
	started := time.Now()
	o := b.o
	ids := b.appIDs(phase, n)
	fk, err := startFake(o.FakeIdle, fakeOptions(ids, wechattest.WithClock(simStart), wechattest.WithTokenLifetime(o.Life))...)
	if err != nil {
		return nil, err
	}
	defer fk.Close()
	cfg, err := b.config(phase, ids, fk.URL, o.Refresh)
	if err != nil {
		return nil, err
	}
	window := min(o.Refresh, o.Life/2)
	day := &Day{Apps: n, Simulated: Duration(o.Sim), Life: Duration(o.Life), RefreshBefore: Duration(o.Refresh),
		Cycles:         float64(o.Sim) / float64(o.Life-window*3/4),
		FirstCycleMean: float64(n) / (0.5 * window.Seconds()), RunJitter: o.RunJitter, perSecond: map[int]int{}}
	srv, err := serve(ctx, cfg, fk.Platform, b.o.Logger)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	cl := newClient(o.Pool)
	defer cl.CloseIdleConnections()

	// The cold start, all at simStart.
	apps := make([]*simApp, n)
	for i, id := range ids {
		apps[i] = &simApp{id: id, spread: spreadOf(id, window)}
	}
	if err := b.each(apps, func(a *simApp) error {
		tok, err := b.token(ctx, cl, srv.admin, a.id)
		a.token = tok
		return err
	}); err != nil {
		return nil, err
	}
	day.ColdStart = int(fk.tokenCalls.Load())
	now := simStart
	q := make(simQueue, 0, n)
	for _, a := range apps {
		b.schedule(a, now, window)
		q = append(q, a)
	}
	heap.Init(&q)
	if err := b.checkModel(ctx, cl, srv.admin, apps); err != nil {
		return nil, err
	}
	b.say("simulating %v of fake time: %d apps, token life %v, refresh_before %v", o.Sim, n, o.Life, o.Refresh)

	end := simStart.Add(o.Sim)
	prev := fk.tokenCalls.Load()
	var batch []*simApp
	var bad simCounts
	for q.Len() > 0 && q[0].due.Before(end) {
		next := q[0].due
		fk.Advance(next.Sub(now))
		now = next
		batch = batch[:0]
		for q.Len() > 0 && !q[0].due.After(now) {
			batch = append(batch, heap.Pop(&q).(*simApp))
		}
		if err := b.each(batch, func(a *simApp) error { return b.refreshed(ctx, cl, srv.admin, a, &bad) }); err != nil {
			return nil, err
		}
		calls := fk.tokenCalls.Load()
		if d := int(calls - prev); d > 0 {
			day.perSecond[int(now.Sub(simStart)/time.Second)] += d
			day.Fetches += d
		}
		prev = calls
		for _, a := range batch {
			b.schedule(a, now, window)
			heap.Push(&q, a)
		}
	}
	day.Invalid, day.Late = int(bad.invalid.Load()), int(bad.late.Load())
	if err := b.checkModel(ctx, cl, srv.admin, apps); err != nil {
		return nil, err
	}
	if st := fk.Stats(); st.Fetches[wechattest.PathToken] != int(fk.tokenCalls.Load()) {
		day.Late++ // a call that issued no token: counted, and flagged
		b.say("simulated: %d token calls but %d tokens issued", fk.tokenCalls.Load(), st.Fetches[wechattest.PathToken])
	}
	for sec, k := range day.perSecond {
		if sec == 0 {
			continue
		}
		at := Duration(time.Duration(sec) * time.Second)
		if k > day.MaxPerSecond || k == day.MaxPerSecond && at < day.MaxAt {
			day.MaxPerSecond, day.MaxAt = k, at
		}
		if time.Duration(at) >= 2*o.Life {
			day.LaterMax = max(day.LaterMax, k)
		}
		day.BusySeconds++
	}
	day.Histogram = histogram(day.perSecond)
	day.Wall = Duration(time.Since(started).Round(time.Millisecond))
	b.say("simulated %v in %v: %d fetches after the cold start, at most %d in one second (at +%v)",
		o.Sim, day.Wall, day.Fetches, day.MaxPerSecond, day.MaxAt)
	return day, srv.stop()
}

// schedule sets a's stale instant for a token fetched at now (the fake's
// expires_in is the life in whole seconds), and when the bench asks for
// it: then, or later by a jitter as Run's.
func (b *bench) schedule(a *simApp, now time.Time, window time.Duration) {
	a.staleAt = now.Add(b.o.Life - window + a.spread)
	a.due = a.staleAt
	if b.o.RunJitter {
		a.due = a.due.Add(mrand.N(b.o.Refresh/10 + 1))
	}
}

// checkModel checks the bench's stale instants against refresh_at of GET
// /v1/apps (whole seconds, and the store's milliseconds).
func (b *bench) checkModel(ctx context.Context, cl *http.Client, admin string, apps []*simApp) error {
	at, _, err := listApps(ctx, cl, admin)
	if err != nil {
		return err
	}
	var bad []string
	for _, a := range apps {
		// A keeper that adopts its own token back from the store holds
		// it at the store's millisecond precision.
		got, want := at[a.id], a.staleAt.Truncate(time.Second)
		if !got.Equal(want) && !got.Equal(a.staleAt.Add(-time.Millisecond).Truncate(time.Second)) {
			bad = append(bad, fmt.Sprintf("%s: refresh_at %v, the bench expects %v", a.id, got.UTC().Format(time.RFC3339), want.UTC().Format(time.RFC3339)))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("manyapps: the server's refresh instants differ from the bench's model of SpreadRefresh (%d of %d apps), e.g. %s",
			len(bad), len(apps), bad[0])
	}
	return nil
}

// refreshed asks a's token, stale now, which starts its background
// refresh, then asks again until the new token is served.
func (b *bench) refreshed(ctx context.Context, cl *http.Client, admin string, a *simApp, bad *simCounts) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		tok, err := b.token(ctx, cl, admin, a.id)
		if err != nil {
			bad.invalid.Add(1)
			return err
		}
		if tok != a.token {
			a.token = tok
			return nil
		}
		if time.Now().After(deadline) {
			bad.late.Add(1)
			return nil
		}
		select {
		case <-time.After(200 * time.Microsecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// token returns the token GET /v1/apps/{id}/token answers.
func (b *bench) token(ctx context.Context, cl *http.Client, admin, id string) (string, error) {
	var body struct {
		AccessToken string `json:"access_token"`
	}
	code, err := get(ctx, cl, admin+"/v1/apps/"+id+"/token", &body)
	if err != nil || code != http.StatusOK || body.AccessToken == "" {
		return "", fmt.Errorf("manyapps: app %s: GET token: HTTP %d, %v", id, code, err)
	}
	return body.AccessToken, nil
}

// each runs fn on every app of apps, b.o.Pool at a time, and returns
// their errors.
func (b *bench) each(apps []*simApp, fn func(*simApp) error) error {
	if len(apps) == 1 {
		return fn(apps[0])
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	next := make(chan *simApp)
	for range min(b.o.Pool, len(apps)) {
		wg.Go(func() {
			for a := range next {
				if err := fn(a); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, a := range apps {
		next <- a
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// histogram buckets the busy seconds other than the first (the cold
// start) by their fetches.
func histogram(perSecond map[int]int) []Bucket {
	bounds := [][2]int{{1, 1}, {2, 2}, {3, 5}, {6, 10}, {11, 20}, {21, 50}, {51, 100}, {101, math.MaxInt}}
	out := make([]Bucket, len(bounds))
	for i, bd := range bounds {
		out[i] = Bucket{Min: bd[0], Max: bd[1]}
	}
	for sec, k := range perSecond {
		if sec == 0 || k == 0 {
			continue
		}
		for i := range out {
			if k >= out[i].Min && k <= out[i].Max {
				out[i].Seconds++
			}
		}
	}
	for len(out) > 0 && out[len(out)-1].Seconds == 0 {
		out = out[:len(out)-1]
	}
	return out
}

// A fakeServer is a wechattest.Platform on its own loopback HTTP server,
// whose open connections it counts.
type fakeServer struct {
	*wechattest.Platform
	URL   string
	srv   *http.Server
	conns atomic.Int64
	once  sync.Once
	// tokenCalls counts the calls of /cgi-bin/token answered.
	tokenCalls atomic.Int64
}

// startFake serves a Platform of opts; idle keep-alive connections close
// after idle.
func startFake(idle time.Duration, opts ...wechattest.Option) (*fakeServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &fakeServer{Platform: wechattest.NewPlatform(opts...), URL: "http://" + l.Addr().String()}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.Platform.ServeHTTP(w, r)
		if r.URL.Path == wechattest.PathToken {
			f.tokenCalls.Add(1)
		}
	})
	f.srv = &http.Server{Handler: h, IdleTimeout: idle, ReadHeaderTimeout: 5 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				f.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				f.conns.Add(-1)
			}
		}}
	go f.srv.Serve(l)
	return f, nil
}

// Close closes the server and its connections; the Platform stays.
func (f *fakeServer) Close() { f.once.Do(func() { f.srv.Close() }) }

// waitNoConns waits until no connection to the fake is open.
func (f *fakeServer) waitNoConns(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for f.conns.Load() > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("manyapps: %d connections to the fake still open after %v", f.conns.Load(), limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// writeHeapProfile writes the heap profile to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rss returns the resident set size of this process (VmRSS), or 0 where
// /proc does not tell it.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// memNow returns the memory statistics after two collections.
func memNow() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// A redisServer is a redis-server this process started.
type redisServer struct {
	cmd *exec.Cmd
	url string
}

// startRedis starts redis-server from PATH on a free loopback port, with
// dir as its working directory and no persistence.
func startRedis(ctx context.Context, dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("manyapps: -store redis without -redis needs redis-server on PATH: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("manyapps: redis-server: %w", err)
	}
	rs := &redisServer{cmd: cmd, url: "redis://127.0.0.1:" + port}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	defer c.Close()
	for i := 0; ; i++ {
		if err := c.Ping(ctx).Err(); err == nil {
			return rs, nil
		} else if i == 100 {
			rs.stop()
			return nil, fmt.Errorf("manyapps: redis-server on port %s does not answer: %w", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the redis-server.
func (r *redisServer) stop() {
	r.cmd.Process.Kill()
	r.cmd.Wait()
}

// redisStats are a Redis server's counters.
type redisStats struct {
	commands int64
	cpu      time.Duration // of the process this run started
}

// redisInfo reads the commands processed, and the CPU of the redis-server
// this run started.
func (b *bench) redisInfo(ctx context.Context) redisStats {
	var s redisStats
	info, err := b.rc.Info(ctx, "stats").Result()
	if err == nil {
		for line := range strings.SplitSeq(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
				s.commands, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	if b.redis != nil {
		s.cpu, _ = processCPU(b.redis.cmd.Process.Pid)
	}
	return s
}

// cleanRedis deletes the keys of the run's apps.
func (b *bench) cleanRedis(ctx context.Context) {
	if b.redis != nil {
		return // the server goes away with its data
	}
	iter := b.rc.Scan(ctx, 0, "*{wx"+b.tag+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	for batch := range slices.Chunk(keys, 500) {
		b.rc.Del(ctx, batch...)
	}
}

// randomHex returns 2n random hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }

// Print writes the report as a compact table.
func (r *Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "wxcentral manyapps: %d apps, %s store, GOMAXPROCS %d, load average %s, wall %v\n",
		r.Apps, r.Store, r.GoMaxProcs, cmp.Or(r.LoadAvg, "?"), r.Wall)
	fmt.Fprintln(tw, "\nmemory at rest (after GC)\tapps\tserver heap+stack\tgoroutines\tprocess heap+stack\tprocess sys\tprocess RSS\tafter first tokens (upstream conns)")
	for _, p := range r.Memory {
		fmt.Fprintf(tw, "\t%d\t%s\t%d\t%s\t%s\t%s\t%s (%d)\n", p.Apps, mib(uint64(max(0, p.ServerHeap+p.ServerStack))),
			p.ServerGoroutines, mib(p.HeapInuse+p.StackInuse), mib(p.Sys), mib(p.RSS), mib(p.AfterStart), p.UpstreamConns)
	}
	fmt.Fprintf(tw, "per app\t\t%s\t%.2f\n", kib(r.PerApp.Bytes), r.PerApp.Goroutines)
	fmt.Fprintf(tw, "\nidle CPU over %v\t%v\t%.3f%% of a core\t%d fetches", r.Idle.Window, r.Idle.CPU, r.Idle.Percent, r.Idle.Fetches)
	if r.Store == "redis" {
		fmt.Fprintf(tw, "\t%d Redis commands (%.1f/s)", r.Idle.RedisCommands, float64(r.Idle.RedisCommands)/time.Duration(r.Idle.Window).Seconds())
		if r.Idle.RedisCPU > 0 {
			fmt.Fprintf(tw, ", redis-server CPU %v", r.Idle.RedisCPU)
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "first token, all %d apps, cold store\t%v\t%d tokens issued\t%d answers not 200\n",
		r.FirstToken.Apps, r.FirstToken.Time, r.FirstToken.Fetches, r.FirstToken.Retries)
	d := r.Day
	fmt.Fprintf(tw, "\nsimulated %v (%.1f cycles)\tlife %v, refresh_before %v\t%d apps\twall %v\n", d.Simulated, d.Cycles, d.Life, d.RefreshBefore, d.Apps, d.Wall)
	fmt.Fprintf(tw, "  cold start\t%d fetches in the first second\n", d.ColdStart)
	fmt.Fprintf(tw, "  after it\t%d fetches in %d busy seconds\tmax %d/s at +%v\t(first-cycle mean to expect %.1f/s)\tmax after two lives %d/s\n",
		d.Fetches, d.BusySeconds, d.MaxPerSecond, d.MaxAt, d.FirstCycleMean, d.LaterMax)
	var hist []string
	for _, bk := range d.Histogram {
		rng := strconv.Itoa(bk.Min)
		if bk.Max != bk.Min {
			rng += "-" + strconv.Itoa(bk.Max)
			if bk.Max == math.MaxInt {
				rng = ">" + strconv.Itoa(bk.Min-1)
			}
		}
		hist = append(hist, fmt.Sprintf("%s:%d", rng, bk.Seconds))
	}
	fmt.Fprintf(tw, "  seconds by fetches\t%s\n", strings.Join(hist, "  "))
	if d.Invalid > 0 || d.Late > 0 {
		fmt.Fprintf(tw, "  problems\t%d app-seconds without a token, %d late refreshes\n", d.Invalid, d.Late)
	}
	t := r.Throughput
	fmt.Fprintf(tw, "\nthroughput, %d clients, median of %d × %v\tGET /v1/apps/{id}/token %.0f req/s\tGET /v1/token (1 app) %.0f req/s\tratio %.2f\tfailed %d\n",
		t.Clients, t.Rounds, t.Duration, t.PerApp, t.Single, t.Ratio, t.Failed)
	for _, n := range r.Notes {
		fmt.Fprintf(tw, "note\t%s\n", n)
	}
	tw.Flush()
}
