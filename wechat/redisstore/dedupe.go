package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxcentral/wxcentral/middleware/dedupe"
)

// DefaultDedupePrefix is the key prefix Dedupe uses when none is set.
const DefaultDedupePrefix = "wxcentral:dedupe:"

// DefaultDedupePollInterval is how often a waiting Dedupe re-delivery looks for
// the reply when no interval is set.
const DefaultDedupePollInterval = 50 * time.Millisecond

// dedupePending marks a claim without a reply. A stored reply is JSON and
// always starts with '{'.
const dedupePending = "\x00pending"

// dedupeFinishScript stores the reply only over this claim's pending marker, and
// keeps the claim's expiry: SET … XX KEEPTTL would also overwrite a
// finished reply.
var dedupeFinishScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
	return 1
end
return 0`)

// dedupeAbandonScript deletes the key only while it is pending.
var dedupeAbandonScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0`)

// Dedupe is a dedupe.Store on Redis (it was dedupe.Redis), shared by every process and host that uses the
// same server (single node, Sentinel or Cluster: each operation touches one
// key). A claim is SET key NX PX ttl; Finish swaps in the reply, keeping
// the claim's expiry (Redis 6 or later, for KEEPTTL); Abandon deletes an
// unfinished claim.
//
// A waiting re-delivery polls the key every PollInterval rather than
// subscribing: waits are rare (only WeChat's retries of slow replies), last
// a few seconds at most, and polling needs no connection of its own, where
// each go-redis subscription holds one.
//
// A process that dies holding a claim leaves it pending until the TTL ends;
// re-deliveries meanwhile wait until their own request context ends.
type Dedupe struct {
	Client       redis.UniversalClient
	Prefix       string        // "" means DefaultPrefix
	PollInterval time.Duration // 0 means DefaultPollInterval
}

// NewDedupe returns a Dedupe store on c with the default prefix and poll
// interval.
func NewDedupe(c redis.UniversalClient) *Dedupe {
	return &Dedupe{Client: c}
}

func (s *Dedupe) key(k string) string {
	if s.Prefix == "" {
		return DefaultDedupePrefix + k
	}
	return s.Prefix + k
}

// Begin implements dedupe.Store.
func (s *Dedupe) Begin(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		ttl = dedupe.DefaultTTL
	}
	ok, err := s.Client.SetNX(ctx, s.key(key), dedupePending, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redisstore: dedupe claim: %w", err)
	}
	return ok, nil
}

type storedReply struct {
	Status      int    `json:"s,omitempty"`
	ContentType string `json:"c,omitempty"`
	Body        []byte `json:"b"`
}

// Finish implements dedupe.Store.
func (s *Dedupe) Finish(ctx context.Context, key string, r dedupe.Reply) error {
	v, err := json.Marshal(storedReply(r))
	if err != nil {
		return fmt.Errorf("redisstore: dedupe: encoding the reply: %w", err)
	}
	// WeChat may have hung up: the reply is stored all the same.
	ctx = context.WithoutCancel(ctx)
	if err := dedupeFinishScript.Run(ctx, s.Client, []string{s.key(key)}, dedupePending, v).Err(); err != nil {
		return fmt.Errorf("redisstore: dedupe finish: %w", err)
	}
	return nil
}

// Abandon implements dedupe.Store.
func (s *Dedupe) Abandon(ctx context.Context, key string) error {
	ctx = context.WithoutCancel(ctx) // as in Finish
	if err := dedupeAbandonScript.Run(ctx, s.Client, []string{s.key(key)}, dedupePending).Err(); err != nil {
		return fmt.Errorf("redisstore: dedupe abandon: %w", err)
	}
	return nil
}

// Wait implements dedupe.Store.
func (s *Dedupe) Wait(ctx context.Context, key string) (dedupe.Reply, error) {
	interval := s.PollInterval
	if interval <= 0 {
		interval = DefaultDedupePollInterval
	}
	var t *time.Timer
	for {
		v, err := s.Client.Get(ctx, s.key(key)).Result()
		switch {
		case errors.Is(err, redis.Nil):
			return dedupe.Reply{}, dedupe.ErrAbandoned
		case err != nil:
			if ctx.Err() != nil {
				return dedupe.Reply{}, ctx.Err()
			}
			return dedupe.Reply{}, fmt.Errorf("redisstore: dedupe wait: %w", err)
		case v != dedupePending:
			var r storedReply
			if err := json.Unmarshal([]byte(v), &r); err != nil {
				return dedupe.Reply{}, fmt.Errorf("redisstore: dedupe: the stored reply of %q is corrupt: %w", key, err)
			}
			return dedupe.Reply(r), nil
		}
		if t == nil {
			t = time.NewTimer(interval)
			defer t.Stop()
		} else {
			t.Reset(interval)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return dedupe.Reply{}, ctx.Err()
		}
	}
}
