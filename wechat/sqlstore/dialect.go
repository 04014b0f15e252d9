package sqlstore

import (
	"errors"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// A Dialect is the SQL a database speaks.
type Dialect string

// The dialects of this package.
const (
	MySQL    Dialect = "mysql"    // MySQL 8 and MariaDB 10.11+, with github.com/go-sql-driver/mysql
	Postgres Dialect = "postgres" // PostgreSQL 13+, with github.com/jackc/pgx/v5/stdlib
)

// statements are one dialect's statements on one table prefix.
type statements struct {
	// schema is the migration to version 1, one statement each.
	schema []string
	// version reads the schema's versions; markVersion records one,
	// tolerating a duplicate (another host migrated at the same time).
	version, markVersion string

	load string // app, kind → value, expires_at, fetched_at
	// Postgres: saveUpsert is app, kind, value, expires, fetched → 1 row if stored.
	saveUpsert string
	// MySQL: a transaction of saveLock (app, kind → fetched_at, FOR UPDATE),
	// then saveUpdate (value, expires, fetched, app, kind) or saveInsert
	// (app, kind, value, expires, fetched).
	saveLock, saveUpdate, saveInsert string

	count string // app, day, bucket → n
	// Postgres: addCount is app, day, bucket, n → the new n.
	// MySQL: addCount is app, day, bucket, n, n, and the new n is read by
	// count in the same transaction.
	addCount   string
	pruneCount string // app, day: deletes the counts of days before it

	// lockTake takes the lease for owner: Postgres app, owner, ttl µs;
	// MySQL owner, ttl µs, app, owner (an UPDATE), and lockInsert app,
	// owner, ttl µs when there is no row yet. One row affected: taken.
	lockTake, lockInsert string
	lockRenew            string // ttl µs, app, owner
	lockRelease          string // app, owner
}

func newStatements(d Dialect, prefix string) *statements {
	var s *statements
	if d == Postgres {
		s = postgresStatements()
	} else {
		s = mysqlStatements()
	}
	r := strings.NewReplacer("{p}", prefix)
	for i, q := range s.schema {
		s.schema[i] = r.Replace(q)
	}
	for _, q := range []*string{&s.version, &s.markVersion, &s.load, &s.saveUpsert, &s.saveLock, &s.saveUpdate,
		&s.saveInsert, &s.count, &s.addCount, &s.pruneCount, &s.lockTake, &s.lockInsert, &s.lockRenew, &s.lockRelease} {
		*q = r.Replace(*q)
	}
	return s
}

func postgresStatements() *statements {
	return &statements{
		schema: []string{
			`CREATE TABLE IF NOT EXISTS {p}schema (
	version    integer     PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`,
			`CREATE TABLE IF NOT EXISTS {p}credentials (
	app_id     varchar(64)  NOT NULL,
	kind       varchar(191) NOT NULL,
	value      text         NOT NULL,
	expires_at bigint       NOT NULL,
	fetched_at bigint       NOT NULL,
	updated_at timestamptz  NOT NULL DEFAULT now(),
	PRIMARY KEY (app_id, kind)
)`,
			`CREATE TABLE IF NOT EXISTS {p}locks (
	app_id     varchar(64) PRIMARY KEY,
	owner      varchar(64) NOT NULL,
	expires_at timestamptz NOT NULL
)`,
			`CREATE TABLE IF NOT EXISTS {p}counts (
	app_id varchar(64) NOT NULL,
	day    char(10)    NOT NULL,
	bucket varchar(64) NOT NULL,
	n      bigint      NOT NULL,
	PRIMARY KEY (app_id, day, bucket)
)`,
		},
		version:     `SELECT version FROM {p}schema`,
		markVersion: `INSERT INTO {p}schema (version) VALUES ($1) ON CONFLICT (version) DO NOTHING`,

		load: `SELECT value, expires_at, fetched_at FROM {p}credentials WHERE app_id = $1 AND kind = $2`,
		saveUpsert: `INSERT INTO {p}credentials AS c (app_id, kind, value, expires_at, fetched_at, updated_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (app_id, kind) DO UPDATE
SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at, fetched_at = EXCLUDED.fetched_at, updated_at = now()
WHERE c.fetched_at <= EXCLUDED.fetched_at`,

		count: `SELECT n FROM {p}counts WHERE app_id = $1 AND day = $2 AND bucket = $3`,
		addCount: `INSERT INTO {p}counts AS c (app_id, day, bucket, n) VALUES ($1, $2, $3, $4)
ON CONFLICT (app_id, day, bucket) DO UPDATE SET n = c.n + EXCLUDED.n
RETURNING n`,
		pruneCount: `DELETE FROM {p}counts WHERE app_id = $1 AND day < $2`,

		// clock_timestamp, not now(): the time of the statement, not of
		// its transaction.
		lockTake: `INSERT INTO {p}locks AS l (app_id, owner, expires_at)
VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 microsecond')
ON CONFLICT (app_id) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
WHERE l.expires_at <= clock_timestamp() OR l.owner = EXCLUDED.owner`,
		lockRenew: `UPDATE {p}locks SET expires_at = clock_timestamp() + $1::bigint * interval '1 microsecond'
WHERE app_id = $2 AND owner = $3`,
		lockRelease: `UPDATE {p}locks SET owner = '', expires_at = clock_timestamp() WHERE app_id = $1 AND owner = $2`,
	}
}

func mysqlStatements() *statements {
	const table = ` ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`
	return &statements{
		schema: []string{
			`CREATE TABLE IF NOT EXISTS {p}schema (
	version    INT         NOT NULL PRIMARY KEY,
	applied_at DATETIME(6) NOT NULL
)` + table,
			`CREATE TABLE IF NOT EXISTS {p}credentials (
	app_id     VARCHAR(64)  NOT NULL,
	kind       VARCHAR(191) NOT NULL,
	value      TEXT         NOT NULL,
	expires_at BIGINT       NOT NULL,
	fetched_at BIGINT       NOT NULL,
	updated_at DATETIME(6)  NOT NULL,
	PRIMARY KEY (app_id, kind)
)` + table,
			`CREATE TABLE IF NOT EXISTS {p}locks (
	app_id     VARCHAR(64) NOT NULL PRIMARY KEY,
	owner      VARCHAR(64) NOT NULL,
	expires_at DATETIME(6) NOT NULL
)` + table,
			`CREATE TABLE IF NOT EXISTS {p}counts (
	app_id VARCHAR(64) NOT NULL,
	day    CHAR(10)    NOT NULL,
	bucket VARCHAR(64) NOT NULL,
	n      BIGINT      NOT NULL,
	PRIMARY KEY (app_id, day, bucket)
)` + table,
		},
		version:     `SELECT version FROM {p}schema`,
		markVersion: `INSERT IGNORE INTO {p}schema (version, applied_at) VALUES (?, UTC_TIMESTAMP(6))`,

		load:       `SELECT value, expires_at, fetched_at FROM {p}credentials WHERE app_id = ? AND kind = ?`,
		saveLock:   `SELECT fetched_at FROM {p}credentials WHERE app_id = ? AND kind = ? FOR UPDATE`,
		saveUpdate: `UPDATE {p}credentials SET value = ?, expires_at = ?, fetched_at = ?, updated_at = UTC_TIMESTAMP(6) WHERE app_id = ? AND kind = ?`,
		saveInsert: `INSERT INTO {p}credentials (app_id, kind, value, expires_at, fetched_at, updated_at) VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6))`,

		count:      `SELECT n FROM {p}counts WHERE app_id = ? AND day = ? AND bucket = ?`,
		addCount:   `INSERT INTO {p}counts (app_id, day, bucket, n) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE n = n + ?`,
		pruneCount: `DELETE FROM {p}counts WHERE app_id = ? AND day < ?`,

		// UTC_TIMESTAMP, not NOW(): DATETIME has no zone, and sessions
		// may differ in time_zone.
		lockTake: `UPDATE {p}locks SET owner = ?, expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
WHERE app_id = ? AND (expires_at <= UTC_TIMESTAMP(6) OR owner = ?)`,
		lockInsert:  `INSERT INTO {p}locks (app_id, owner, expires_at) VALUES (?, ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)`,
		lockRenew:   `UPDATE {p}locks SET expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND WHERE app_id = ? AND owner = ?`,
		lockRelease: `UPDATE {p}locks SET owner = '', expires_at = UTC_TIMESTAMP(6) WHERE app_id = ? AND owner = ?`,
	}
}

// isDuplicate reports whether err is a duplicate-key error.
func isDuplicate(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// isRetryable reports whether err ended a transaction that may simply be
// run again: a deadlock, a duplicate key of a concurrent insert, or (on
// PostgreSQL) a concurrent CREATE TABLE of the same table, which reports
// a duplicate key, table or type.
func isRetryable(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062 || me.Number == 1213 || me.Number == 1205
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "40P01" || pe.Code == "42P07" || pe.Code == "42710")
}
