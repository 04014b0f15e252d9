package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxcentral/wxcentral/wechat"
)

// Defaults of the options.
const (
	DefaultPrefix = "wxcentral:"
	// DefaultLockTTL is the lease of a lock: its holder renews it every
	// third of it while it holds the lock, so a refresh may take longer,
	// and a holder that dies frees the lock within this time.
	DefaultLockTTL = 10 * time.Second
	// MinLockTTL is the shortest lock TTL WithLockTTL accepts: a renewal
	// must have time to reach Redis within a third of it.
	MinLockTTL = 30 * time.Millisecond

	// maxLockHold bounds how long a lock is renewed without an unlock; a
	// refresh takes at most the keeper's RefreshTimeout (30 s by default).
	maxLockHold = 2 * time.Minute

	// countGrace is how long a day's fetch count outlives the day.
	countGrace = time.Hour
	// unlockTimeout bounds the release of a lock, which has no context.
	unlockTimeout = 3 * time.Second
	// pollMin and pollMax bound the backoff of a waiter polling the lock.
	pollMin = 5 * time.Millisecond
	pollMax = 250 * time.Millisecond
)

// Store is a wechat.Store on Redis: a single node, a Sentinel-managed
// master or a Cluster. Build it with New (on a client you own) or Open (on
// a URL). It is safe for concurrent use by multiple goroutines.
type Store struct {
	client    redis.UniversalClient
	ownClient bool
	appID     string
	logger    *slog.Logger
	lockTTL   time.Duration
	maxHold   time.Duration // how long a lock is renewed without an unlock
	pollMin   time.Duration // first wait between two polls of a held lock
	pollMax   time.Duration // longest wait between two polls of a held lock
	onError   func(op string, err error)

	// keys, all sharing the hash tag {appID}
	lockKey     string
	unlockChan  string
	credPrefix  string
	countPrefix string

	errors atomic.Uint64

	closed    chan struct{} // closed by Close: held locks stop renewing
	closeOnce sync.Once
}

var (
	_ wechat.Store = (*Store)(nil)
	_ fmt.Stringer = (*Store)(nil)
)

// An Option configures a Store.
type Option func(*config)

type config struct {
	prefix  string
	lockTTL time.Duration
	logger  *slog.Logger
	onError func(op string, err error)
}

// WithPrefix sets the prefix of every key (default DefaultPrefix), so that
// several deployments can share one Redis database.
func WithPrefix(prefix string) Option {
	return func(c *config) { c.prefix = prefix }
}

// WithLockTTL sets the lease of a lock (default DefaultLockTTL, at least
// MinLockTTL): how long a lock outlives a holder that died or lost Redis.
// A live holder renews it every third of the TTL, so it need not outlive a
// refresh; it must outlive a few round trips to Redis (Open's clients time
// out a read after 1 s), or a slow renewal lets a second host in.
func WithLockTTL(d time.Duration) Option {
	return func(c *config) { c.lockTTL = d }
}

// WithLogger sets the logger of store failures (default slog.Default()).
//
// go-redis writes its own lines (a failed dial, a sentinel failover)
// through one logger global to the program, by default unstructured to
// stderr. The first New or Open given a logger routes those lines to that
// logger too, at level WARN with component=go-redis, so that a JSON log
// stays JSON; later stores do not change it.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithErrorHook sets a function called with every failure of the store:
// op is "load", "save", "lock", "renew", "unlock", "count" or "add_count". It is meant for a
// metrics counter; it must be quick and safe for concurrent use.
func WithErrorHook(f func(op string, err error)) Option {
	return func(c *config) { c.onError = f }
}

// New returns a Store of app appID on client. The caller keeps ownership of
// client: Store.Close does not close it.
func New(client redis.UniversalClient, appID string, opts ...Option) (*Store, error) {
	if client == nil {
		return nil, errors.New("redisstore: nil redis client")
	}
	if appID == "" {
		return nil, errors.New("redisstore: empty app ID: set WECHAT_APP_ID")
	}
	if strings.ContainsAny(appID, "{}") {
		return nil, fmt.Errorf("redisstore: app ID %q contains a brace, which would break the key hash tag", appID)
	}
	c := config{prefix: DefaultPrefix, lockTTL: DefaultLockTTL}
	for _, o := range opts {
		o(&c)
	}
	if c.lockTTL < MinLockTTL {
		return nil, fmt.Errorf("redisstore: lock TTL %v is too short: it must be at least %v, to be renewed in time", c.lockTTL, MinLockTTL)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	} else {
		routeLibraryLogs(c.logger)
	}
	base := c.prefix + "{" + appID + "}:"
	return &Store{
		client:      client,
		appID:       appID,
		logger:      c.logger.With("store", "redis", "app_id", appID),
		lockTTL:     c.lockTTL,
		maxHold:     maxLockHold,
		closed:      make(chan struct{}),
		pollMin:     pollMin,
		pollMax:     pollMax,
		onError:     c.onError,
		lockKey:     base + "lock",
		unlockChan:  base + "unlocked",
		credPrefix:  base + "cred:",
		countPrefix: base + "fetches:",
	}, nil
}

// Open connects to the Redis named by rawURL (see the package doc for the
// forms) and returns a Store of app appID that owns the connection: call
// Close when done. It does not contact Redis; the first call does.
func Open(rawURL, appID string, opts ...Option) (*Store, error) {
	client, err := NewClient(rawURL)
	if err != nil {
		return nil, err
	}
	s, err := New(client, appID, opts...)
	if err != nil {
		client.Close()
		return nil, err
	}
	s.ownClient = true
	return s, nil
}

// String names the store's lock, as in "redis lock wxcentral:{appid}:lock",
// for log lines such as the keeper's about a long wait for it. It holds
// no address, user or password.
func (s *Store) String() string { return "redis lock " + s.lockKey }

// Client returns the Redis client the store uses.
func (s *Store) Client() redis.UniversalClient { return s.client }

// Close stops renewing the locks held through s (they expire within the
// lock TTL), and closes the Redis client if the store was built by Open;
// a client given to New stays open.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	if !s.ownClient {
		return nil
	}
	return s.client.Close()
}

// Errors returns how many operations of the store have failed since it was
// built. A metrics layer can export it as a counter.
func (s *Store) Errors() uint64 { return s.errors.Load() }

// fail counts, logs and returns err.
func (s *Store) fail(op string, err error) error {
	s.errors.Add(1)
	s.logger.Warn("redis store failed", "op", op, "err", err)
	if s.onError != nil {
		s.onError(op, err)
	}
	return err
}

func (s *Store) credKey(kind wechat.Kind) string { return s.credPrefix + string(kind) }

// Load returns the stored credential of kind, or the zero Credential if
// there is none. An entry that cannot be parsed is logged and reported as
// none.
func (s *Store) Load(ctx context.Context, kind wechat.Kind) (wechat.Credential, error) {
	vals, err := s.client.HMGet(ctx, s.credKey(kind), "value", "expires_at", "fetched_at").Result()
	if err != nil {
		if isWrongType(err) {
			s.logger.Error("redis store: corrupt credential ignored", "kind", kind, "err", err)
			return wechat.Credential{}, nil
		}
		return wechat.Credential{}, s.fail("load", fmt.Errorf("redisstore: load %s of app %s: %w", kind, s.appID, err))
	}
	value, _ := vals[0].(string)
	if value == "" {
		return wechat.Credential{}, nil
	}
	exp, err1 := parseMicros(vals[1])
	fetched, err2 := parseMicros(vals[2])
	if err := errors.Join(err1, err2); err != nil {
		s.logger.Error("redis store: corrupt credential ignored", "kind", kind, "err", err)
		return wechat.Credential{}, nil
	}
	return wechat.Credential{Value: value, ExpiresAt: exp, FetchedAt: fetched}, nil
}

// saveScript stores a credential unless the stored one was fetched later.
// KEYS[1] credential hash; ARGV: fetched_at, expires_at, value.
var saveScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'fetched_at')
if cur then
  local c = tonumber(cur)
  if c and c > tonumber(ARGV[1]) then return 0 end
end
redis.call('HSET', KEYS[1], 'value', ARGV[3], 'expires_at', ARGV[2], 'fetched_at', ARGV[1])
return 1
`)

// Save stores c as the credential of kind, unless the store holds one
// fetched later: then it stores nothing and returns wechat.ErrSuperseded.
// Times are kept to the microsecond.
func (s *Store) Save(ctx context.Context, kind wechat.Kind, c wechat.Credential) error {
	ok, err := saveScript.Run(ctx, s.client, []string{s.credKey(kind)},
		formatMicros(c.FetchedAt), formatMicros(c.ExpiresAt), c.Value).Int()
	if err != nil {
		return s.fail("save", fmt.Errorf("redisstore: save %s of app %s: %w", kind, s.appID, err))
	}
	if ok == 0 {
		return fmt.Errorf("redisstore: save %s of app %s fetched at %s: %w",
			kind, s.appID, c.FetchedAt.Format(time.RFC3339Nano), wechat.ErrSuperseded)
	}
	return nil
}

// addScript adds to a day's count and makes it expire after the day.
// KEYS[1] counter; ARGV: n, expire-at (Unix seconds).
var addScript = redis.NewScript(`
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return v
`)

// Count returns the count c names.
func (s *Store) Count(ctx context.Context, c wechat.Counter) (int, error) {
	key, _, err := s.countKey(c)
	if err != nil {
		return 0, err
	}
	v, err := s.client.Get(ctx, key).Int()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, s.fail("count", fmt.Errorf("redisstore: read the count of %v for app %s: %w", c, s.appID, err))
	}
	return v, nil
}

// AddCount adds n (> 0) to the count c names, atomically, and returns the
// new count. The count expires an hour after its day ends.
func (s *Store) AddCount(ctx context.Context, c wechat.Counter, n int) (int, error) {
	if n <= 0 {
		return 0, fmt.Errorf("redisstore: add %d to %v: n must be positive", n, c)
	}
	key, start, err := s.countKey(c)
	if err != nil {
		return 0, err
	}
	// The day names a Beijing day; its end is NextQuotaDay of any instant
	// within it, such as 00:00 UTC (08:00 in Beijing). A day already over
	// by this host's clock (a test clock, a skewed host) still keeps its
	// count a while.
	at := wechat.NextQuotaDay(start).Add(countGrace)
	if floor := time.Now().Add(countGrace); at.Before(floor) {
		at = floor
	}
	v, err := addScript.Run(ctx, s.client, []string{key}, n, at.Unix()).Int()
	if err != nil {
		return 0, s.fail("add_count", fmt.Errorf("redisstore: add to the count of %v for app %s: %w", c, s.appID, err))
	}
	return v, nil
}

// countKey is the Redis key of c (the layout of every earlier version:
// prefix, bucket, day) and the start of its day.
func (s *Store) countKey(c wechat.Counter) (key string, day time.Time, err error) {
	if err := c.Check(); err != nil {
		return "", time.Time{}, fmt.Errorf("redisstore: %w", err)
	}
	day, _ = time.ParseInLocation(time.DateOnly, c.Day, time.UTC) // Check parsed it
	return s.countPrefix + c.Bucket() + ":" + c.Day, day, nil
}

func formatMicros(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

func parseMicros(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("time field missing")
	}
	us, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time field %q: %w", s, err)
	}
	if us == 0 {
		return time.Time{}, nil
	}
	return time.UnixMicro(us), nil
}

func isWrongType(err error) bool {
	return strings.HasPrefix(err.Error(), "WRONGTYPE")
}
