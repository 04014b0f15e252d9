package sqlstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// schemaVersion is the version of the tables this package writes.
const schemaVersion = 1

// migrateTimeout bounds one attempt at the migration.
const migrateTimeout = 30 * time.Second

// migration is a DB's record of its migration: done once an attempt has
// succeeded, and the attempt in flight, if any.
type migration struct {
	done atomic.Bool

	mu      sync.Mutex
	running *migrateAttempt // nil when no attempt is in flight

	attempts atomic.Int64 // attempts started, for tests
}

// A migrateAttempt is one run of migrate; err is set before done closes.
type migrateAttempt struct {
	done chan struct{}
	err  error
}

// ready runs the migration unless an earlier call has run it: the first
// use of any store of the DB prepares the tables. Concurrent callers share
// one attempt, and each waits for it or for its own ctx. A failed attempt
// is not retried by itself: the next call makes a new one, so a database
// that is down costs one attempt per use, not a loop.
func (d *DB) ready(ctx context.Context) error {
	if d.mig.done.Load() {
		return nil
	}
	d.mig.mu.Lock()
	if d.mig.done.Load() {
		d.mig.mu.Unlock()
		return nil
	}
	a := d.mig.running
	if a == nil {
		a = &migrateAttempt{done: make(chan struct{})}
		d.mig.running = a
		d.mig.attempts.Add(1)
		go d.runMigration(a)
	}
	d.mig.mu.Unlock()
	select {
	case <-a.done:
		return a.err
	case <-ctx.Done():
		return fmt.Errorf("sqlstore: waiting for the tables %s* to be prepared: %w", d.prefix, ctxErr(ctx))
	}
}

// runMigration runs attempt a on a context of its own, which Close
// cancels: a caller that gives up waiting does not end the attempt that
// others wait for.
func (d *DB) runMigration(a *migrateAttempt) {
	err := d.migrate(d.life)
	if err != nil && d.name != "" {
		err = fmt.Errorf("%w (database %s)", err, d.name)
	}
	d.mig.mu.Lock()
	a.err = err
	if err == nil {
		d.mig.done.Store(true)
	}
	d.mig.running = nil
	d.mig.mu.Unlock()
	close(a.done)
}

// migrate creates the tables, or brings them to schemaVersion. Several
// hosts may run it at once: every table is created with IF NOT EXISTS,
// each version is recorded with an insert that tolerates a duplicate, and
// a step that collides with another host's (PostgreSQL reports a
// concurrent CREATE TABLE of one name as a duplicate key) is run again,
// then finding the tables there.
func (d *DB) migrate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	delay := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := d.migrateOnce(ctx)
		if err == nil {
			return nil
		}
		if !isRetryable(err) || attempt == 5 || ctx.Err() != nil {
			return fmt.Errorf("sqlstore: prepare the tables %s* (schema version %d): %w", d.prefix, schemaVersion, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sqlstore: prepare the tables %s*: %w", d.prefix, ctx.Err())
		case <-time.After(delay):
			delay *= 2
		}
	}
}

func (d *DB) migrateOnce(ctx context.Context) error {
	// Tables already at the version need no DDL, and no privilege for it.
	if have, err := d.versions(ctx); err == nil && have[schemaVersion] {
		return nil
	}
	// The first statement creates the schema table, the versions' record.
	if _, err := d.db.ExecContext(ctx, d.stmt.schema[0]); err != nil {
		return err
	}
	have, err := d.versions(ctx)
	if err != nil {
		return err
	}
	if have[schemaVersion] {
		return nil
	}
	steps := d.stmt.schema[1:]
	if d.dialect == Postgres {
		// PostgreSQL runs DDL in a transaction: the tables and their
		// version appear together.
		tx, err := d.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for _, q := range steps {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, d.stmt.markVersion, schemaVersion); err != nil {
			return err
		}
		return tx.Commit()
	}
	// MySQL commits each CREATE TABLE by itself; IF NOT EXISTS makes a
	// second run (after a crash, or by another host) do nothing.
	for _, q := range steps {
		if _, err := d.db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	_, err = d.db.ExecContext(ctx, d.stmt.markVersion, schemaVersion)
	return err
}

// versions returns the schema versions recorded.
func (d *DB) versions(ctx context.Context) (map[int]bool, error) {
	rows, err := d.db.QueryContext(ctx, d.stmt.version)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	have := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		have[v] = true
	}
	return have, rows.Err()
}
