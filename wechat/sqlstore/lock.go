package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// unlockTimeout bounds the release of a lock, which has no context.
const unlockTimeout = 3 * time.Second

// Lock takes the app's lock, waiting until it is free or ctx is done.
//
// The lock is a lease row (owner, expiry by the database's clock) of the
// lock TTL, renewed every third of it while the caller holds it, so a long
// refresh keeps it and a holder that dies (or loses the database) frees it
// within one TTL. Renewal stops at unlock, at DB.Close, when the lease
// turns out to be lost, and after two minutes without an unlock. unlock
// may be called more than once; it releases the lock only if this caller
// still holds it, and never waits for a renewal in flight.
//
// A waiter polls the row, a few milliseconds apart at first and up to
// 150 ms apart later. Lock returns an error at once if the database
// fails, rather than waiting for it to come back.
func (s *Store) Lock(ctx context.Context) (unlock func(), err error) {
	owner, err := newOwner()
	if err != nil {
		return nil, s.fail("lock", err)
	}
	delay := pollMin
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sqlstore: waiting for the lock of app %s: %w", s.appID, ctxErr(ctx))
		case <-timer.C:
		}
		sent, ok, err := s.tryLock(ctx, owner)
		if err != nil {
			return nil, err
		}
		if ok {
			return s.hold(owner, sent), nil
		}
		timer.Reset(delay)
		delay = min(2*delay, pollMax)
	}
}

// TryLock takes the app's lock if it is free, at once, with one attempt:
// ok is false when another host, Store value or caller holds it (see
// wechat.TryLocker). A lock taken is held and renewed as Lock's is.
func (s *Store) TryLock(ctx context.Context) (unlock func(), ok bool, err error) {
	owner, err := newOwner()
	if err != nil {
		return nil, false, s.fail("lock", err)
	}
	sent, ok, err := s.tryLock(ctx, owner)
	if err != nil || !ok {
		return nil, false, err
	}
	return s.hold(owner, sent), true, nil
}

// tryLock makes one attempt, and returns when it was sent: a lock taken is
// ours for one TTL from then, as its reply may come late.
//
// On PostgreSQL the attempt is one upsert that takes the row if it is
// missing, expired or already ours. On MySQL it is an UPDATE of an expired
// (or our own) row, and, if the row does not exist yet, an INSERT that a
// concurrent one's duplicate key refuses.
func (s *Store) tryLock(ctx context.Context, owner string) (sent time.Time, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, fmt.Errorf("sqlstore: waiting for the lock of app %s: %w", s.appID, ctxErr(ctx))
	}
	if err := s.ready(ctx); err != nil {
		return time.Now(), false, err
	}
	octx, cancel := opContext(ctx)
	defer cancel()
	ttl := s.d.lockTTL.Microseconds()
	st := s.d.stmt
	sent = time.Now()
	var n int64
	if s.d.dialect == Postgres {
		n, err = s.exec(octx, st.lockTake, s.appID, owner, ttl)
	} else {
		n, err = s.exec(octx, st.lockTake, owner, ttl, s.appID, owner)
		if err == nil && n == 0 {
			n, err = s.exec(octx, st.lockInsert, s.appID, owner, ttl)
			if isDuplicate(err) {
				n, err = 0, nil // the row exists: held by another
			}
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return sent, false, fmt.Errorf("sqlstore: waiting for the lock of app %s: %w", s.appID, ctxErr(ctx))
		}
		return sent, false, s.fail("lock", fmt.Errorf("sqlstore: take the lock of app %s: %w", s.appID, err))
	}
	return sent, n == 1, nil
}

// exec runs one statement and returns how many rows it changed.
func (s *Store) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.d.db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// hold starts renewing owner's lock, taken by the attempt sent then, and
// returns its unlock function (see Lock).
func (s *Store) hold(owner string, sent time.Time) (unlock func()) {
	renewing, stop := context.WithCancel(context.Background())
	go s.renew(renewing, owner, sent)
	var once sync.Once
	return func() {
		once.Do(func() {
			// A renewal in flight is abandoned, not awaited: after the
			// release below it finds the lease another's (or free) and
			// changes nothing.
			stop()
			s.unlock(owner)
		})
	}
}

// renew extends owner's lease every third of the TTL until ctx is done (at
// unlock) or the DB is closed, the lease is lost or it has been held for
// maxLockHold. start is when the attempt that took the lock was sent.
func (s *Store) renew(ctx context.Context, owner string, start time.Time) {
	ttl := s.d.lockTTL
	every := ttl / 3
	tick := time.NewTicker(every)
	defer tick.Stop()
	held := start.Add(ttl) // until when the lock is ours for sure
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.d.closed:
			return
		case <-tick.C:
		}
		if time.Since(start) >= maxLockHold {
			s.logger.Error("sql store: lock held too long without unlock; no longer renewing it, it expires by itself",
				"held", time.Since(start).Round(time.Millisecond), "limit", maxLockHold, "lock_ttl", ttl)
			return
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, every)
		n, err := s.exec(rctx, s.d.stmt.lockRenew, ttl.Microseconds(), s.appID, owner)
		cancel()
		if ctx.Err() != nil {
			return // unlocked meanwhile
		}
		switch {
		case err == nil && n == 1:
			held = sent.Add(ttl)
		case err == nil:
			s.logger.Error("sql store: the lock was lost while held (its lease expired and another took it); another host may fetch at the same time",
				"lock_ttl", ttl)
			return
		default:
			s.fail("renew", fmt.Errorf("sqlstore: renew the lock of app %s: %w", s.appID, err))
			if time.Now().After(held) {
				s.logger.Error("sql store: could not renew the lock before its lease expired; another host may fetch at the same time",
					"lock_ttl", ttl)
				return
			}
		}
	}
}

// unlock releases the lease if owner still holds it.
func (s *Store) unlock(owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	n, err := s.exec(ctx, s.d.stmt.lockRelease, s.appID, owner)
	if err != nil {
		s.fail("unlock", fmt.Errorf("sqlstore: release the lock of app %s (it expires by itself after %v): %w", s.appID, s.d.lockTTL, err))
		return
	}
	if n == 0 {
		s.logger.Warn("sql store: the lock was lost before it was released (a renewal failed, or it was held too long)",
			"lock_ttl", s.d.lockTTL)
	}
}

func newOwner() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("sqlstore: lock owner: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
