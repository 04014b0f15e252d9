package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/wxcentral/wxcentral/wechat"
)

// Defaults and limits of the options.
const (
	DefaultPrefix = "wxcentral_"
	// DefaultLockTTL is the lease of a lock: its holder renews it every
	// third of it while it holds the lock, so a refresh may take longer,
	// and a holder that dies frees the lock within this time.
	DefaultLockTTL = 10 * time.Second
	// MinLockTTL is the shortest lock TTL WithLockTTL accepts: a renewal
	// must have time to reach the database within a third of it.
	MinLockTTL = 100 * time.Millisecond

	// OpTimeout bounds each statement (or short transaction) of the store
	// whose context has no earlier deadline, so that a database that does
	// not answer fails an operation promptly.
	OpTimeout = 3 * time.Second

	// maxLockHold bounds how long a lock is renewed without an unlock; a
	// refresh takes at most the keeper's RefreshTimeout (30 s by default).
	maxLockHold = 2 * time.Minute
	// pollMin and pollMax bound the backoff of a waiter polling the lock.
	pollMin = 5 * time.Millisecond
	pollMax = 150 * time.Millisecond
	// keepDays is how many days before the latest counted one a store
	// keeps its app's counts.
	keepDays = 7
	// Limits of the columns (in characters).
	maxAppID, maxKind, maxBucket = 64, 191, 64
	// maxPrefix keeps the longest table name, prefix + "credentials",
	// within PostgreSQL's 63 bytes and MySQL's 64.
	maxPrefix = 40
)

var validPrefix = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// A DB is a connection pool to one database holding the credentials,
// locks and counts of any number of apps: build it once with Open or New,
// then take a Store for each app. It is safe for concurrent use.
type DB struct {
	db      *sql.DB
	ownDB   bool
	dialect Dialect
	prefix  string
	stmt    *statements
	lockTTL time.Duration
	logger  *slog.Logger
	onError func(op string, err error)

	name string // the redacted URL of a DB built by Open, for errors

	mig  migration
	life context.Context // the migration's context, canceled by Close
	stop context.CancelFunc

	errors atomic.Uint64

	closed    chan struct{} // closed by Close: held locks stop renewing
	closeOnce sync.Once
}

// An Option configures a DB.
type Option func(*config)

type config struct {
	prefix  string
	lockTTL time.Duration
	logger  *slog.Logger
	onError func(op string, err error)
}

// WithPrefix sets the prefix of the table names (default DefaultPrefix),
// so that several deployments can share one database. It must have 1 to
// 40 of a–z, 0–9 and _, and start with no digit: the names are used
// unquoted, and a prefix keeps them from being SQL keywords.
func WithPrefix(prefix string) Option {
	return func(c *config) { c.prefix = prefix }
}

// WithLockTTL sets the lease of a lock (default DefaultLockTTL, at least
// MinLockTTL): how long a lock outlives a holder that died or lost the
// database. A live holder renews it every third of the TTL, so it need not
// outlive a refresh; it must outlive a few round trips to the database.
func WithLockTTL(d time.Duration) Option {
	return func(c *config) { c.lockTTL = d }
}

// WithLogger sets the logger of store failures (default slog.Default()).
//
// The MySQL driver writes lines of its own (a connection found broken); on
// a pool built by Open they go to this logger too, at level WARN with
// component=go-sql-driver, so that a JSON log stays JSON.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithErrorHook sets a function called with every failure of the DB and
// its stores: op is "migrate" (preparing the tables, see DB.Ping),
// "ping", "load", "save", "lock", "renew", "unlock", "count" or
// "add_count". It is meant for a metrics counter; it must be quick and safe
// for concurrent use.
func WithErrorHook(f func(op string, err error)) Option {
	return func(c *config) { c.onError = f }
}

// Open returns a DB on the database named by rawURL (see the package doc
// for the forms) that owns its connection pool: call Close when done. It
// does not contact the database, so a server whose database is down still
// starts, and its stores fail until the database is back (see Outages);
// the first use of a store creates or upgrades the tables (see Schema),
// and DB.Ping does it at once for a caller that wants to fail fast. Open
// fails only on a URL or an option it cannot use, and its errors (as all
// of the DB's) never contain the password. ctx is not used, as no I/O is
// done.
func Open(ctx context.Context, rawURL string, opts ...Option) (*DB, error) {
	c, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	var db *sql.DB
	if c.dialect == MySQL {
		if l := buildConfig(opts).logger; l != nil {
			c.mysql.Logger = driverLogger{l}
		}
		conn, err := mysql.NewConnector(c.mysql)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: database URL %s: %v", Redact(rawURL), scrub(err, rawURL))
		}
		db = sql.OpenDB(conn)
	} else {
		db = stdlib.OpenDB(*c.pgx)
	}
	db.SetMaxOpenConns(c.maxOpenConns)
	db.SetMaxIdleConns(c.maxOpenConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if c.tablePrefix != "" {
		opts = append([]Option{WithPrefix(c.tablePrefix)}, opts...) // an explicit WithPrefix wins
	}
	d, err := New(ctx, db, c.dialect, opts...)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%w (database %s)", err, Redact(rawURL))
	}
	d.ownDB = true
	d.name = Redact(rawURL)
	return d, nil
}

// New returns a DB on db, which the caller keeps: Close does not close it.
// Like Open it does not contact the database: the first use of a store,
// or DB.Ping, creates or upgrades the tables. ctx is not used. db should
// time out its
// connections promptly (as Open's do, see DefaultDialTimeout), or an
// unreachable database makes each operation wait for OpTimeout.
func New(ctx context.Context, db *sql.DB, dialect Dialect, opts ...Option) (*DB, error) {
	if db == nil {
		return nil, errors.New("sqlstore: nil *sql.DB")
	}
	if dialect != MySQL && dialect != Postgres {
		return nil, fmt.Errorf("sqlstore: unknown dialect %q: want %q or %q", dialect, MySQL, Postgres)
	}
	c := buildConfig(opts)
	if err := checkPrefix(c.prefix); err != nil {
		return nil, fmt.Errorf("sqlstore: table prefix: %v", err)
	}
	if c.lockTTL < MinLockTTL {
		return nil, fmt.Errorf("sqlstore: lock TTL %v is too short: it must be at least %v, to be renewed in time", c.lockTTL, MinLockTTL)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	d := &DB{
		db:      db,
		dialect: dialect,
		prefix:  c.prefix,
		stmt:    newStatements(dialect, c.prefix),
		lockTTL: c.lockTTL,
		logger:  c.logger.With("store", string(dialect)),
		onError: c.onError,
		closed:  make(chan struct{}),
	}
	d.life, d.stop = context.WithCancel(context.Background())
	return d, nil
}

// checkPrefix checks a table name prefix.
func checkPrefix(p string) error {
	if !validPrefix.MatchString(p) || len(p) > maxPrefix {
		return fmt.Errorf("%q: want 1 to %d of a-z, 0-9 and _, not starting with a digit", p, maxPrefix)
	}
	return nil
}

func buildConfig(opts []Option) config {
	c := config{prefix: DefaultPrefix, lockTTL: DefaultLockTTL}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// driverLogger is the MySQL driver's logging interface on a *slog.Logger.
type driverLogger struct{ l *slog.Logger }

// Print logs one driver line as a WARN record: the driver logs only what
// went wrong.
func (p driverLogger) Print(v ...any) {
	p.l.Warn("go-sql-driver: "+strings.TrimSpace(fmt.Sprint(v...)), "component", "go-sql-driver")
}

// Close stops renewing the locks held through the DB's stores (they expire
// within the lock TTL), ends a migration in flight, and closes the
// connection pool if the DB was built by Open; a *sql.DB given to New
// stays open.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		close(d.closed)
		d.stop()
	})
	if !d.ownDB {
		return nil
	}
	return d.db.Close()
}

// Errors returns how many operations of the DB and its stores have failed
// since it was built. A metrics layer can export it as a counter.
func (d *DB) Errors() uint64 { return d.errors.Load() }

// Ping prepares the tables, if no use of the DB has done so yet, and
// checks that the database answers. Open and New do not contact the
// database, so a program that would rather not start while its database
// is down (or lacks the privilege to create the tables) calls Ping after
// Open and stops on its error; one that serves anyway, as the central
// server does, need not call it, and may call it from a health check. A
// failure is counted and passed to the error hook, as op "migrate" or
// "ping", unless ctx ended first.
func (d *DB) Ping(ctx context.Context) error {
	if !d.mig.done.Load() {
		if err := d.ready(ctx); err != nil {
			if ctx.Err() != nil {
				return err
			}
			return d.fail(d.logger, "migrate", err)
		}
		return nil // the migration just talked to the database
	}
	octx, cancel := opContext(ctx)
	defer cancel()
	if err := d.db.PingContext(octx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("sqlstore: ping: %w", ctxErr(ctx))
		}
		return d.fail(d.logger, "ping", fmt.Errorf("sqlstore: ping the database: %w", err))
	}
	return nil
}

// fail counts err as a failure of the DB, logs it and passes it to the
// hook.
func (d *DB) fail(logger *slog.Logger, op string, err error) error {
	d.errors.Add(1)
	logger.Warn("sql store failed", "op", op, "err", err)
	if d.onError != nil {
		d.onError(op, err)
	}
	return err
}

// SQL returns the connection pool the DB uses.
func (d *DB) SQL() *sql.DB { return d.db }

// Dialect returns the DB's dialect.
func (d *DB) Dialect() Dialect { return d.dialect }

// Store returns the store of app appID on the DB. It is cheap: every store
// shares the DB's connection pool, and two stores of one app share its
// data and its lock, as two hosts do.
func (d *DB) Store(appID string) (*Store, error) {
	switch {
	case appID == "":
		return nil, errors.New("sqlstore: empty app ID: set WECHAT_APP_ID")
	case utf8.RuneCountInString(appID) > maxAppID || !utf8.ValidString(appID):
		return nil, fmt.Errorf("sqlstore: app ID %q: want valid UTF-8 of at most %d characters", appID, maxAppID)
	}
	return &Store{
		d:      d,
		appID:  appID,
		logger: d.logger.With("app_id", appID),
		name:   fmt.Sprintf("%s lock %slocks[%s]", d.dialect, d.prefix, appID),
	}, nil
}

// Store is one app's wechat.Store and wechat.TryLocker on a DB. Build it
// with DB.Store. It is safe for concurrent use by multiple goroutines.
type Store struct {
	d      *DB
	appID  string
	logger *slog.Logger
	name   string

	errors atomic.Uint64
	// pruned is the latest day whose older counts the store deleted.
	pruned atomic.Value // string
}

var (
	_ wechat.Store     = (*Store)(nil)
	_ wechat.TryLocker = (*Store)(nil)
)

// String names the store's lock, as in "postgres lock
// wxcentral_locks[wx1234]", for log lines such as the keeper's about a long
// wait for it. It holds no address, user or password.
func (s *Store) String() string { return s.name }

// Errors returns how many operations of the store have failed since it was
// built (DB.Errors counts those of all the DB's stores).
func (s *Store) Errors() uint64 { return s.errors.Load() }

// fail counts, logs and returns err.
func (s *Store) fail(op string, err error) error {
	s.errors.Add(1)
	return s.d.fail(s.logger, op, err)
}

// ready prepares the tables on the store's first use (see DB.ready). Its
// error is counted as op "migrate", unless ctx ended first.
func (s *Store) ready(ctx context.Context) error {
	if s.d.mig.done.Load() {
		return nil
	}
	err := s.d.ready(ctx)
	if err == nil || ctx.Err() != nil {
		return err
	}
	return s.fail("migrate", err)
}

// opContext bounds ctx by OpTimeout.
func opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, OpTimeout)
}

// ctxErr is the error of a failed operation: ctx's, if it ended, so that
// a caller's cancellation is not counted as a store failure.
func ctxErr(ctx context.Context) error { return context.Cause(ctx) }

func checkKind(kind wechat.Kind) error {
	if kind == "" || utf8.RuneCountInString(string(kind)) > maxKind || !utf8.ValidString(string(kind)) {
		return fmt.Errorf("sqlstore: kind %q: want valid UTF-8 of 1 to %d characters", kind, maxKind)
	}
	return nil
}

// Load returns the stored credential of kind, or the zero Credential if
// there is none.
func (s *Store) Load(ctx context.Context, kind wechat.Kind) (wechat.Credential, error) {
	if err := checkKind(kind); err != nil {
		return wechat.Credential{}, err
	}
	if err := s.ready(ctx); err != nil {
		return wechat.Credential{}, err
	}
	octx, cancel := opContext(ctx)
	defer cancel()
	var (
		value            string
		expires, fetched int64
	)
	err := s.d.db.QueryRowContext(octx, s.d.stmt.load, s.appID, string(kind)).Scan(&value, &expires, &fetched)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return wechat.Credential{}, nil
	case err != nil:
		if ctx.Err() != nil {
			return wechat.Credential{}, fmt.Errorf("sqlstore: load %s of app %s: %w", kind, s.appID, ctxErr(ctx))
		}
		return wechat.Credential{}, s.fail("load", fmt.Errorf("sqlstore: load %s of app %s: %w", kind, s.appID, err))
	}
	if value == "" {
		return wechat.Credential{}, nil // an empty entry is none
	}
	return wechat.Credential{Value: value, ExpiresAt: fromMicros(expires), FetchedAt: fromMicros(fetched)}, nil
}

// Save stores c as the credential of kind, unless the store holds one
// fetched later: then it stores nothing and returns wechat.ErrSuperseded.
// The comparison and the write are one atomic step in the database, so
// Save is exact across hosts even without the lock. Times are kept to the
// microsecond.
func (s *Store) Save(ctx context.Context, kind wechat.Kind, c wechat.Credential) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	octx, cancel := opContext(ctx)
	defer cancel()
	var stored bool
	var err error
	if s.d.dialect == Postgres {
		stored, err = s.savePostgres(octx, kind, c)
	} else {
		stored, err = s.saveMySQL(octx, kind, c)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("sqlstore: save %s of app %s: %w", kind, s.appID, ctxErr(ctx))
		}
		return s.fail("save", fmt.Errorf("sqlstore: save %s of app %s: %w", kind, s.appID, err))
	}
	if !stored {
		return fmt.Errorf("sqlstore: save %s of app %s fetched at %s: %w",
			kind, s.appID, c.FetchedAt.Format(time.RFC3339Nano), wechat.ErrSuperseded)
	}
	return nil
}

func (s *Store) savePostgres(ctx context.Context, kind wechat.Kind, c wechat.Credential) (bool, error) {
	res, err := s.d.db.ExecContext(ctx, s.d.stmt.saveUpsert, s.appID, string(kind), c.Value, toMicros(c.ExpiresAt), toMicros(c.FetchedAt))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// saveMySQL saves in a transaction that locks the credential's row (or,
// for a new one, inserts it), since MySQL has no conditional upsert whose
// result tells a refused write from an unchanged one.
func (s *Store) saveMySQL(ctx context.Context, kind wechat.Kind, c wechat.Credential) (stored bool, err error) {
	err = s.d.inTx(ctx, func(tx *sql.Tx) error {
		var cur int64
		err := tx.QueryRowContext(ctx, s.d.stmt.saveLock, s.appID, string(kind)).Scan(&cur)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, s.d.stmt.saveInsert, s.appID, string(kind), c.Value, toMicros(c.ExpiresAt), toMicros(c.FetchedAt))
			stored = err == nil
			return err // a duplicate (a concurrent insert) is retried
		case err != nil:
			return err
		case cur > toMicros(c.FetchedAt):
			stored = false
			return nil
		}
		_, err = tx.ExecContext(ctx, s.d.stmt.saveUpdate, c.Value, toMicros(c.ExpiresAt), toMicros(c.FetchedAt), s.appID, string(kind))
		stored = err == nil
		return err
	})
	return stored, err
}

// inTx runs f in a READ COMMITTED transaction, committing if f returns nil,
// and runs it again (up to three times in all) after a deadlock or a
// concurrent insert of the same key.
func (d *DB) inTx(ctx context.Context, f func(*sql.Tx) error) error {
	var err error
	for range 3 {
		var tx *sql.Tx
		tx, err = d.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
		if err != nil {
			return err
		}
		if err = f(tx); err == nil {
			if err = tx.Commit(); err == nil {
				return nil
			}
		} else {
			tx.Rollback()
		}
		if !isRetryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// Count returns the count c names.
func (s *Store) Count(ctx context.Context, c wechat.Counter) (int, error) {
	bucket, err := checkCounter(c)
	if err != nil {
		return 0, err
	}
	if err := s.ready(ctx); err != nil {
		return 0, err
	}
	octx, cancel := opContext(ctx)
	defer cancel()
	var n int
	err = s.d.db.QueryRowContext(octx, s.d.stmt.count, s.appID, c.Day, bucket).Scan(&n)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		if ctx.Err() != nil {
			return 0, fmt.Errorf("sqlstore: read the count of %v for app %s: %w", c, s.appID, ctxErr(ctx))
		}
		return 0, s.fail("count", fmt.Errorf("sqlstore: read the count of %v for app %s: %w", c, s.appID, err))
	}
	return n, nil
}

// AddCount adds n (> 0) to the count c names, atomically, and returns the
// new count. A store keeps its app's counts of the seven days before the
// latest day it counted.
func (s *Store) AddCount(ctx context.Context, c wechat.Counter, n int) (int, error) {
	if n <= 0 {
		return 0, fmt.Errorf("sqlstore: add %d to %v: n must be positive", n, c)
	}
	bucket, err := checkCounter(c)
	if err != nil {
		return 0, err
	}
	if err := s.ready(ctx); err != nil {
		return 0, err
	}
	octx, cancel := opContext(ctx)
	defer cancel()
	var v int
	if s.d.dialect == Postgres {
		err = s.d.db.QueryRowContext(octx, s.d.stmt.addCount, s.appID, c.Day, bucket, n).Scan(&v)
	} else {
		err = s.d.inTx(octx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(octx, s.d.stmt.addCount, s.appID, c.Day, bucket, n, n); err != nil {
				return err
			}
			// The row is locked by this transaction: the count read is
			// the one just written.
			return tx.QueryRowContext(octx, s.d.stmt.count, s.appID, c.Day, bucket).Scan(&v)
		})
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("sqlstore: add to the count of %v for app %s: %w", c, s.appID, ctxErr(ctx))
		}
		return 0, s.fail("add_count", fmt.Errorf("sqlstore: add to the count of %v for app %s: %w", c, s.appID, err))
	}
	s.prune(octx, c.Day)
	return v, nil
}

// prune deletes the app's counts of days more than keepDays before day,
// once per day counted; a failure is only logged, the next day retries.
func (s *Store) prune(ctx context.Context, day string) {
	if last, _ := s.pruned.Load().(string); last >= day {
		return
	}
	s.pruned.Store(day)
	t, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return
	}
	before := t.AddDate(0, 0, -keepDays).Format(time.DateOnly)
	if _, err := s.d.db.ExecContext(ctx, s.d.stmt.pruneCount, s.appID, before); err != nil {
		s.logger.Warn("sql store: could not delete old fetch counts", "before", before, "err", err)
	}
}

// checkCounter checks c and returns its bucket.
func checkCounter(c wechat.Counter) (string, error) {
	if err := c.Check(); err != nil {
		return "", fmt.Errorf("sqlstore: %w", err)
	}
	b := c.Bucket()
	if utf8.RuneCountInString(b) > maxBucket {
		return "", fmt.Errorf("sqlstore: counter %v: the API name is longer than %d characters", c, maxBucket-3)
	}
	return b, nil
}

func toMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us)
}
