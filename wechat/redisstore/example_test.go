package redisstore_test

import (
	"context"
	"errors"
	"log"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/redisstore"
)

// Open a store from a URL, as WECHAT_STORE gives it, and do one refresh the
// way the keeper does: lock, re-read, fetch only if needed, save, unlock.
func Example() {
	store, err := redisstore.Open("redis://:password@127.0.0.1:6379/0", "wx1234567890abcdef")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	unlock, err := store.Lock(ctx)
	if err != nil {
		log.Fatal(err) // Redis down or ctx done: keep serving the token held
	}
	defer unlock()
	cur, err := store.Load(ctx, wechat.KindAccessToken)
	if err != nil {
		log.Fatal(err)
	}
	if cur.ValidAt(time.Now().Add(5 * time.Minute)) {
		return // another host refreshed already: adopt its token
	}
	fetched := time.Now()
	tok := wechat.Credential{Value: "token-from-wechat", FetchedAt: fetched, ExpiresAt: fetched.Add(7200 * time.Second)}
	if err := store.Save(ctx, wechat.KindAccessToken, tok); errors.Is(err, wechat.ErrSuperseded) {
		log.Print("a newer token is stored; use it")
	} else if err != nil {
		log.Fatal(err)
	}
}

// Sentinel and Cluster deployments are named by URL too.
func ExampleOpen() {
	for _, u := range []string{
		"redis+sentinel://:password@10.0.0.1:26379,10.0.0.2:26379/mymaster/0",
		"redis+cluster://:password@10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000?read_timeout=500ms",
	} {
		store, err := redisstore.Open(u, "wx1234567890abcdef", redisstore.WithPrefix("prod:"))
		if err != nil {
			log.Fatal(err)
		}
		store.Close()
	}
}

// New uses a client the application already has, and exposes failures to
// a metrics counter.
func ExampleNew() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DialTimeout: 2 * time.Second, ReadTimeout: time.Second})
	defer client.Close()
	var failures atomic.Int64 // stands in for a Prometheus counter
	store, err := redisstore.New(client, "wx1234567890abcdef",
		redisstore.WithLockTTL(20*time.Second),
		redisstore.WithErrorHook(func(op string, err error) { failures.Add(1) }),
	)
	if err != nil {
		log.Fatal(err)
	}
	_ = store
}
