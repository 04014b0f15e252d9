// Package redisstore keeps an app's WeChat credentials, its refresh lock and
// its daily fetch counts in Redis, so that the processes of many hosts share
// one token and take turns fetching it. It implements wechat.Store.
//
// # Keys
//
// Every key of one app shares the hash tag {appID}, so on a Redis Cluster all
// of them sit in one slot and the Lua scripts below may touch them together.
// With the default prefix "wxcentral:" and the app wx1234:
//
//	wxcentral:{wx1234}:cred:access_token      hash: value, expires_at, fetched_at (Unix µs)
//	wxcentral:{wx1234}:lock                   string: random owner, PX = lock lease (renewed)
//	wxcentral:{wx1234}:unlocked               pub/sub channel, published on release
//	wxcentral:{wx1234}:fetches:token:2026-11-05  integer, EXPIREAT shortly after that day
//
// Credentials are stored without a Redis TTL: their expiry is data the
// keeper reads, and a keeper running on a test clock must not see them
// vanish by the server's clock.
//
// # Lock
//
// Lock is SET NX PX with a random owner value and a short lease
// (WithLockTTL, DefaultLockTTL = 10 s). While the caller holds the lock a
// goroutine renews the lease every third of it with a Lua
// compare-and-PEXPIRE, so only the owner extends it and a refresh may take
// as long as it needs (the keeper's RefreshTimeout, 30 s by default); a
// holder that dies or loses Redis stops renewing and its lock frees within
// one lease, not after the longest refresh. The lease runs from when the
// winning SET was sent, not from its reply, so a slow reply never makes a
// holder count on the lock for longer than Redis keeps it. Renewal stops
// at unlock (which abandons a renewal in flight rather than wait for it),
// at Close, when the lock turns out to be lost (logged: another host may
// be fetching), and after two minutes without an unlock. Store.String
// names the lock key for log lines. The lock is released
// by a Lua compare-and-delete, so a holder whose lock expired can never
// delete the next holder's lock. A waiter subscribes to the release channel
// (unlock publishes on it) and also polls with backoff, so it returns
// promptly when the holder unlocks and at the latest shortly after an
// abandoned lock expires.
//
// # Fenced saves
//
// Save compares FetchedAt with the stored credential's in a Lua script and
// refuses an older one with wechat.ErrSuperseded: a slow host that finishes
// its fetch after a faster one cannot overwrite the newer token.
//
// # Outages
//
// Every method returns an error promptly when Redis cannot be reached
// (clients built by Open dial for at most 2 s and read for at most 1 s, with
// one retry); none of them waits for Redis to come back. Each failure is
// logged, counted (Store.Errors) and passed to the hook set with
// WithErrorHook, so the metrics layer can expose it.
//
// The policy the keeper (package wechat) follows while the store fails, and
// which TestMultiHostRedisOutage checks with four keeper processes:
//
//   - Keep serving the token held in memory while it is valid; a failed
//     Load or Lock is not a reason to drop it.
//   - Make no fetch without the lock: a refresh whose Lock fails fails, and
//     is retried with backoff. Fetches during an outage are therefore zero,
//     and every fetch is still counted against the daily quota in Redis. The
//     price is that an outage longer than the held token's remaining life
//     leaves the keeper without a token (wechat.ErrNoToken) until Redis is
//     back; a fallback that fetches without the lock would have to bound
//     itself to one fetch per token lifetime per process, since every fetch
//     kills the tokens the other hosts hold.
//   - Retry the store on the next refresh; the same Store (and its client)
//     works again as soon as Redis is back, it need not be rebuilt. A Redis
//     restarted empty costs one fetch, made under the lock.
//
// # Logging
//
// The store logs its failures to the logger of WithLogger. go-redis writes
// lines of its own (a failed dial, a sentinel failover, a pool giving up)
// through a logger global to the program, unstructured on stderr by
// default; the first New or Open given WithLogger routes them to that
// logger as WARN records with component=go-redis, so that
// WECHAT_LOG_FORMAT=json stays JSON. It is set once per program: later
// stores, with other loggers, do not change it.
//
// # URLs
//
// Open and NewClient accept these forms (the rediss variants use TLS):
//
//	redis://[[user]:password@]host[:port][/db][?options]
//	rediss://[[user]:password@]host[:port][/db][?options]
//	redis+sentinel://[[user]:password@]host:port[,host:port…]/master[/db][?options]
//	rediss+sentinel://…
//	redis+cluster://[[user]:password@]host:port[,host:port…][?options]
//	rediss+cluster://…
//
// The user and password authenticate to the Redis data nodes. The default
// port is 6379, or 26379 for a sentinel. The options are:
//
//	dial_timeout=2s, read_timeout=1s, write_timeout=1s   Go durations
//	pool_size=N, max_retries=N                           integers (max_retries=-1: none)
//	sentinel_username=…, sentinel_password=…             credentials of the sentinels
//	skip_verify=true                                     TLS without certificate checks (tests only)
//
// Errors never contain the password.
package redisstore
