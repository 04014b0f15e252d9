// Package sqlstore keeps apps' WeChat credentials, their refresh locks and
// their daily fetch counts in a MySQL 8, MariaDB 10.11+ or PostgreSQL 13+
// database, so that the processes of many hosts share one token per app
// and take turns fetching it. A Store implements wechat.Store and
// wechat.TryLocker.
//
// One DB (Open, or New on a *sql.DB of your own) is one connection pool,
// shared by the stores of every app on it: DB.Store is cheap, and a
// thousand apps use the pool's few connections (DefaultMaxOpenConns), since
// every operation is one short statement or transaction.
//
//	db, err := sqlstore.Open(ctx, "postgres://wx:password@db.internal:5432/wxcentral")
//	…
//	defer db.Close()
//	store, err := db.Store("wx1234567890abcdef") // a wechat.Store
//
// # URLs
//
//	mysql://user:password@host[:port]/database[?options]     port 3306 by default
//	mariadb://…                                              the same
//	postgres://user:password@host[:port]/database[?options]  port 5432 by default
//	postgresql://…                                           the same
//
// The scheme is case-insensitive. Options of both: max_open_conns=N (the
// pool's size, default 10), table_prefix=name_ (the tables' prefix, as
// WithPrefix sets it, which wins over it) and dial_timeout=2s. MySQL also takes
// read_timeout=2s and write_timeout=2s (Go durations; the defaults are
// DefaultReadTimeout and DefaultWriteTimeout) and tls=true|false|skip-verify|preferred.
// PostgreSQL takes what pgx (libpq) takes: sslmode, sslrootcert,
// connect_timeout (seconds, default 2), application_name, …. Redact
// hides the password of a URL; no error of this package contains it.
//
// # Schema
//
// The first use of a DB (any method of any of its stores, or DB.Ping)
// creates or upgrades the tables, under a prefix (WithPrefix, default
// "wxcentral_"), and records the schema's version; Open and New do not
// contact the database. A DB migrates once: concurrent first uses share one
// attempt, and after a failed one the next use tries again. The migration
// may run on several hosts at once: every table is created with CREATE
// TABLE IF NOT EXISTS, the version is inserted with a statement that
// tolerates a duplicate (INSERT IGNORE; ON CONFLICT DO NOTHING), and a
// step that collides with another host's is run again. On PostgreSQL the tables and
// their version are created in one transaction. A DBA may create the tables
// beforehand instead, as below (MySQL types in brackets; MySQL tables are
// InnoDB, utf8mb4 with the binary collation utf8mb4_bin, so that kinds and
// app IDs compare exactly), and record version 1 in the schema table; the
// store then needs only SELECT, INSERT, UPDATE and DELETE on them.
//
//	wxcentral_schema       the versions of the schema applied
//	  version     integer [INT]              PRIMARY KEY; this package writes 1
//	  applied_at  timestamptz [DATETIME(6), UTC]
//
//	wxcentral_credentials  one row per app and credential kind
//	  app_id      varchar(64)                PRIMARY KEY (app_id, kind)
//	  kind        varchar(191)               "access_token", "jsapi_ticket", "fetch_cooldown", …
//	  value       text                       the token or ticket (a secret)
//	  expires_at  bigint                     Unix time in µs; 0 for none
//	  fetched_at  bigint                     Unix time in µs: orders saves (the fence)
//	  updated_at  timestamptz [DATETIME(6), UTC]  when the row was last written
//
//	wxcentral_locks        one row per app: the refresh lock's lease
//	  app_id      varchar(64)                PRIMARY KEY
//	  owner       varchar(64)                random id of the holder; '' when released
//	  expires_at  timestamptz [DATETIME(6), UTC]  end of the lease, by the database's clock
//
//	wxcentral_counts       fetches per app, Beijing day and bucket
//	  app_id      varchar(64)                PRIMARY KEY (app_id, day, bucket)
//	  day         char(10)                   the Beijing day, 2006-01-02
//	  bucket      varchar(64)                the API ("token"), or API@hour ("token@13")
//	  n           bigint                     the count
//
// A kind may be any text of up to 191 characters, an app ID up to 64.
// Credential times are integers (microseconds since 1970 UTC) so that they
// round-trip exactly, whatever the session's time zone; in SQL,
// to_timestamp(expires_at / 1e6) (PostgreSQL) or
// FROM_UNIXTIME(expires_at / 1000000) (MySQL) shows them. A store deletes
// its app's counts of days more than a week before the latest day it
// counted.
//
// # Lock
//
// The lock is the app's row in the locks table: a holder's random owner id
// and the lease's end, expires_at, which the database computes from its own
// clock (clock_timestamp() on PostgreSQL, UTC_TIMESTAMP(6) on MySQL), so
// the hosts' clocks do not matter. Lock and TryLock take it with one
// conditional write, which succeeds only if the row is missing, released
// or expired: on PostgreSQL an INSERT … ON CONFLICT DO UPDATE … WHERE, on
// MySQL an UPDATE … WHERE expires_at <= UTC_TIMESTAMP(6) and, for an app's
// first lock, an INSERT that a concurrent one's duplicate key refuses. No
// GET_LOCK or advisory lock is used, so the lock survives a reconnect and
// works through connection poolers.
//
// While the caller holds the lock a goroutine renews the lease every third
// of the lock TTL (WithLockTTL, DefaultLockTTL = 10 s) with an UPDATE that
// matches the owner, so only the holder extends it, and a refresh may take
// as long as it needs; a holder that dies or loses the database stops
// renewing and the lock frees within one TTL. Renewal stops at unlock, at
// DB.Close, when the lease turns out to be lost (logged: another host may
// be fetching) and after two minutes without an unlock. Unlock releases
// the row only if it still holds the caller's owner id. A waiter polls the
// row with backoff, from a few milliseconds to 150 ms, and honours its
// context. Store.String names the lock for log lines, as in
// "postgres lock wxcentral_locks[wx1234]".
//
// # Fenced saves and counts
//
// Save writes a credential only if the stored one of its kind was fetched
// no later (fetched_at), in one atomic step: an upsert with a WHERE on
// PostgreSQL, a transaction that locks the row (SELECT … FOR UPDATE) on
// MySQL. A slow host that finishes its fetch after a faster one cannot
// overwrite the newer token: it gets wechat.ErrSuperseded. AddCount is one
// atomic upsert (n = n + k) that returns the new count, so counts are exact
// across hosts even without the lock.
//
// On MySQL, saves and count updates run in READ COMMITTED transactions,
// which MySQL refuses when binlog_format is STATEMENT (error 1665: InnoDB
// logs such transactions by row only), so that every Save and AddCount
// fails. ROW and MIXED, the defaults of MySQL and MariaDB, are fine.
//
// # Outages
//
// Open and New do not contact the database, so a server started while its
// database is down starts, and serves what it can (its health check says
// the store fails) until the database is back; a program that would rather
// not start then calls DB.Ping after Open. Every method returns an error
// promptly when the database cannot be reached: pools built by Open dial for at most 2 s (and on MySQL read and
// write for at most 2 s), and every operation is bounded by OpTimeout;
// none of them waits for the database to come back. A method that finds
// the tables not yet prepared prepares them first (see Schema); while the
// database is down that fails, as op "migrate", and the next call tries
// again. Each failure is
// logged, counted (Store.Errors, and DB.Errors for all of a DB's stores;
// both satisfy the ErrorCounter of package wechat/central) and passed to
// the hook set with WithErrorHook. The same DB works again as soon as the
// database is back: database/sql replaces broken connections by itself.
//
// The keeper (package wechat) follows the policy described for package
// redisstore while the store fails: it keeps serving the token it holds
// while that is valid, makes no fetch without the lock (so fetches stop
// during an outage, and none escapes the daily count), and uses the store
// again on its next refresh. TestMultiHostOutage checks it with three
// keeper processes and a database that is stopped and restarted.
package sqlstore
