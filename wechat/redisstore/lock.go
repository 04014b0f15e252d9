package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// acquireScript takes the lock for ARGV[1] for ARGV[2] ms. It also answers
// yes if ARGV[1] holds it already, which happens when a SET succeeded but
// its reply was lost and the client retried.
var acquireScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// releaseScript deletes the lock only if ARGV[1] still holds it, and tells
// the waiters on channel ARGV[2].
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], '1')
  return 1
end
return 0
`)

// renewScript extends the lock by ARGV[2] ms only if ARGV[1] still holds
// it: a holder whose lock expired and was taken by another never extends
// the other's lock.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// Lock takes the app's lock, waiting until it is free or ctx is done.
//
// The lock is a lease of the lock TTL, renewed every third of it while the
// caller holds it, so a long refresh keeps it and a holder that dies (or
// loses Redis) frees it within one TTL. Renewal stops at unlock, at Close,
// when the lock turns out to be lost, and after maxLockHold: a holder that
// never unlocks cannot keep the other hosts out for good. unlock may be
// called more than once; it releases the lock only if this caller still
// holds it, and never waits for a renewal in flight.
//
// Lock returns an error at once if Redis fails, rather than waiting for it
// to come back.
func (s *Store) Lock(ctx context.Context) (unlock func(), err error) {
	owner, err := newOwner()
	if err != nil {
		return nil, s.fail("lock", err)
	}
	sent, ok, err := s.tryLock(ctx, owner)
	if err != nil {
		return nil, err
	}
	if !ok {
		if sent, err = s.wait(ctx, owner); err != nil {
			return nil, err
		}
	}
	return s.hold(owner, sent), nil
}

// TryLock takes the app's lock if it is free, at once, with one attempt
// (one round trip): ok is false when another host, Store value or caller
// holds it (see wechat.TryLocker). A lock taken is held and renewed as
// Lock's is.
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

// hold starts renewing owner's lock, taken by the attempt sent then, and
// returns its unlock function (see Lock).
func (s *Store) hold(owner string, sent time.Time) (unlock func()) {
	renewing, stop := context.WithCancel(context.Background())
	go s.renew(renewing, owner, sent)
	var once sync.Once
	return func() {
		once.Do(func() {
			// A renewal in flight is abandoned, not awaited: after the
			// release below it finds the lock gone (or another's) and
			// changes nothing.
			stop()
			s.unlock(owner)
		})
	}
}

// renew extends owner's lock every third of the TTL until ctx is done (at
// unlock) or s.closed is closed, the lock is lost or it has been held for
// s.maxHold. start is when the attempt that took the lock was sent: the
// lease runs from then, not from its reply. Every renewal runs under ctx,
// so unlock cancels one in flight.
func (s *Store) renew(ctx context.Context, owner string, start time.Time) {
	every := s.lockTTL / 3
	tick := time.NewTicker(every)
	defer tick.Stop()
	held := start.Add(s.lockTTL) // until when the lock is ours for sure
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.closed:
			return
		case <-tick.C:
		}
		if time.Since(start) >= s.maxHold {
			s.logger.Error("redis store: lock held too long without unlock; no longer renewing it, it expires by itself",
				"held", time.Since(start).Round(time.Millisecond), "limit", s.maxHold, "lock_ttl", s.lockTTL)
			return
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, every)
		n, err := renewScript.Run(rctx, s.client, []string{s.lockKey}, owner, s.lockTTL.Milliseconds()).Int()
		cancel()
		if ctx.Err() != nil {
			// Unlocked meanwhile: the lock is gone because it was released.
			return
		}
		switch {
		case err == nil && n == 1:
			held = sent.Add(s.lockTTL)
		case err == nil:
			s.logger.Error("redis store: the lock was lost while held (it expired or was deleted); another host may fetch at the same time",
				"lock_ttl", s.lockTTL)
			return
		default:
			s.fail("renew", fmt.Errorf("redisstore: renew the lock of app %s: %w", s.appID, err))
			if time.Now().After(held) {
				s.logger.Error("redis store: could not renew the lock before it expired; another host may fetch at the same time",
					"lock_ttl", s.lockTTL)
				return
			}
		}
	}
}

// tryLock makes one attempt, and returns when it was sent: a lock taken is
// ours for one TTL from then, as its reply may come late.
func (s *Store) tryLock(ctx context.Context, owner string) (sent time.Time, ok bool, err error) {
	sent = time.Now()
	n, err := acquireScript.Run(ctx, s.client, []string{s.lockKey}, owner, s.lockTTL.Milliseconds()).Int()
	if err != nil {
		if ctx.Err() != nil {
			return sent, false, fmt.Errorf("redisstore: waiting for the lock of app %s: %w", s.appID, ctx.Err())
		}
		return sent, false, s.fail("lock", fmt.Errorf("redisstore: take the lock of app %s: %w", s.appID, err))
	}
	return sent, n == 1, nil
}

// wait retries until the lock is taken, and returns when the attempt that
// took it was sent. It listens for releases on the unlock channel and
// polls with backoff too, since an expired lock publishes nothing and a
// pub/sub message can be lost.
func (s *Store) wait(ctx context.Context, owner string) (time.Time, error) {
	var released <-chan *redis.Message
	sub := s.client.Subscribe(ctx, s.unlockChan)
	defer sub.Close()
	// Subscribe before the next attempt, so that a release between the two
	// is not missed. Without a subscription, polling alone still works.
	if _, err := sub.Receive(ctx); err == nil {
		released = sub.Channel()
	} else if ctx.Err() == nil {
		s.logger.Debug("redis store: no unlock notifications, polling", "err", err)
	}

	delay := s.pollMin
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		sent, ok, err := s.tryLock(ctx, owner)
		if err != nil || ok {
			return sent, err
		}
		timer.Reset(delay) // since Go 1.23 Reset drops a stale tick
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("redisstore: waiting for the lock of app %s: %w", s.appID, ctx.Err())
		case <-released:
			delay = s.pollMin
		case <-timer.C:
			delay = min(2*delay, s.pollMax)
		}
	}
}

// unlock releases the lock if owner still holds it.
func (s *Store) unlock(owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	n, err := releaseScript.Run(ctx, s.client, []string{s.lockKey}, owner, s.unlockChan).Int()
	if err != nil {
		s.fail("unlock", fmt.Errorf("redisstore: release the lock of app %s (it expires by itself after %v): %w", s.appID, s.lockTTL, err))
		return
	}
	if n == 0 {
		s.logger.Warn("redis store: the lock was lost before it was released (a renewal failed, or it was held too long)",
			"lock_ttl", s.lockTTL)
	}
}

func newOwner() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("redisstore: lock owner: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
