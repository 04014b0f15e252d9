package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/sqlstore"
)

// Open one pool on the database WECHAT_STORE names, take the store of an
// app and do one refresh the way the keeper does: lock, re-read, fetch
// only if needed, save, unlock.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sqlstore.Open(ctx, "postgres://wx:password@127.0.0.1:5432/wxcentral?sslmode=disable")
	if err != nil {
		log.Fatal(err) // the password is not in err
	}
	defer db.Close()
	store, err := db.Store("wx1234567890abcdef")
	if err != nil {
		log.Fatal(err)
	}

	unlock, err := store.Lock(ctx)
	if err != nil {
		log.Fatal(err) // database down or ctx done: keep serving the token held
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

// Many apps share one DB, and so one connection pool.
func ExampleDB_Store() {
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, "mysql://wx:password@10.0.0.5:3306/wxcentral?max_open_conns=20",
		sqlstore.WithPrefix("prod_wx_"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	stores := map[string]wechat.Store{}
	for _, appID := range []string{"wx1111111111111111", "wx2222222222222222"} {
		s, err := db.Store(appID)
		if err != nil {
			log.Fatal(err)
		}
		stores[appID] = s
	}
	_ = stores
}

// New uses a pool the application already has, and exposes failures to a
// metrics counter.
func ExampleNew() {
	// "pgx" is the driver of github.com/jackc/pgx/v5/stdlib, which
	// sqlstore imports; "mysql" is go-sql-driver's.
	pool, err := sql.Open("pgx", "postgres://wx@127.0.0.1/wxcentral?connect_timeout=2")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	var failures atomic.Int64 // stands in for a Prometheus counter
	db, err := sqlstore.New(context.Background(), pool, sqlstore.Postgres,
		sqlstore.WithLockTTL(20*time.Second),
		sqlstore.WithErrorHook(func(op string, err error) { failures.Add(1) }),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
}

// Open does not contact the database: a program that must not start
// without it pings it after Open, which also prepares the tables.
func ExampleDB_Ping() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sqlstore.Open(ctx, "mysql://wx:password@10.0.0.5:3306/wxcentral")
	if err != nil {
		log.Fatal(err) // a URL or an option it cannot use
	}
	defer db.Close()
	if err := db.Ping(ctx); err != nil {
		log.Fatal(err) // the database is down, or the tables cannot be created
	}
}

// Redact a URL before printing it.
func ExampleRedact() {
	u := "mysql://wx:s3cret@db.internal:3306/wxcentral"
	if sqlstore.IsURL(u) {
		fmt.Println(sqlstore.Redact(u))
	}
	// Output: mysql://wx:xxxxx@db.internal:3306/wxcentral
}
