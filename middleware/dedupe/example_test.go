package dedupe_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxcentral/wxcentral/middleware/dedupe"
	"github.com/wxcentral/wxcentral/wechat/redisstore"
)

// The middleware sits between the callback middleware (which puts the
// parsed message in the context) and the application's handler.
func ExampleMiddleware() {
	var app http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("success"))
	})
	// One process: memory. Many processes or hosts: Redis.
	var store dedupe.Store = &dedupe.Memory{}
	if false {
		store = redisstore.NewDedupe(redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"}))
	}
	http.Handle("/wechat", dedupe.Middleware(store, dedupe.WithTTL(30*time.Second))(app))
}

func ExampleDo() {
	var store dedupe.Memory
	handle := func(ctx context.Context) (dedupe.Reply, error) {
		return dedupe.Reply{Body: []byte("handled")}, nil
	}
	for range 3 { // WeChat delivers the same MsgId three times
		r, shared, err := dedupe.Do(context.Background(), &store, "gh_1|msg|42", 0, handle)
		fmt.Println(string(r.Body), shared, err)
	}
	// Output:
	// handled false <nil>
	// handled true <nil>
	// handled true <nil>
}
