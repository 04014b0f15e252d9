package dedupe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is the key prefix Redis uses when none is set.
const DefaultPrefix = "wxcentral:dedupe:"

// DefaultPollInterval is how often a waiting Redis re-delivery looks for
// the reply when no interval is set.
const DefaultPollInterval = 50 * time.Millisecond

// pendingValue marks a claim without a reply. A stored reply is JSON and
// always starts with '{'.
const pendingValue = "\x00pending"

// finishScript stores the reply only over this claim's pending marker, and
// keeps the claim's expiry: SET … XX KEEPTTL would also overwrite a
// finished reply.
var finishScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
	return 1
end
return 0`)

// abandonScript deletes the key only while it is pending.
var abandonScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0`)

// Redis is a Store on Redis, shared by every process and host that uses the
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
type Redis struct {
	Client       redis.UniversalClient
	Prefix       string        // "" means DefaultPrefix
	PollInterval time.Duration // 0 means DefaultPollInterval
}

// NewRedis returns a Redis store on c with the default prefix and poll
// interval.
func NewRedis(c redis.UniversalClient) *Redis {
	return &Redis{Client: c}
}

func (s *Redis) key(k string) string {
	if s.Prefix == "" {
		return DefaultPrefix + k
	}
	return s.Prefix + k
}

// Begin implements Store.
func (s *Redis) Begin(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	ok, err := s.Client.SetNX(ctx, s.key(key), pendingValue, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("dedupe: redis claim: %w", err)
	}
	return ok, nil
}

type storedReply struct {
	Status      int    `json:"s,omitempty"`
	ContentType string `json:"c,omitempty"`
	Body        []byte `json:"b"`
}

// Finish implements Store.
func (s *Redis) Finish(ctx context.Context, key string, r Reply) error {
	v, err := json.Marshal(storedReply(r))
	if err != nil {
		return fmt.Errorf("dedupe: encoding the reply: %w", err)
	}
	if err := finishScript.Run(ctx, s.Client, []string{s.key(key)}, pendingValue, v).Err(); err != nil {
		return fmt.Errorf("dedupe: redis finish: %w", err)
	}
	return nil
}

// Abandon implements Store.
func (s *Redis) Abandon(ctx context.Context, key string) error {
	if err := abandonScript.Run(ctx, s.Client, []string{s.key(key)}, pendingValue).Err(); err != nil {
		return fmt.Errorf("dedupe: redis abandon: %w", err)
	}
	return nil
}

// Wait implements Store.
func (s *Redis) Wait(ctx context.Context, key string) (Reply, error) {
	interval := s.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	var t *time.Timer
	for {
		v, err := s.Client.Get(ctx, s.key(key)).Result()
		switch {
		case errors.Is(err, redis.Nil):
			return Reply{}, ErrAbandoned
		case err != nil:
			if ctx.Err() != nil {
				return Reply{}, ctx.Err()
			}
			return Reply{}, fmt.Errorf("dedupe: redis wait: %w", err)
		case v != pendingValue:
			var r storedReply
			if err := json.Unmarshal([]byte(v), &r); err != nil {
				return Reply{}, fmt.Errorf("dedupe: the stored reply of %q is corrupt: %w", key, err)
			}
			return Reply(r), nil
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
			return Reply{}, ctx.Err()
		}
	}
}
