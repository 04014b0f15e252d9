package server_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/wechat/server"
)

// Embedding the whole server in a program of your own: the configuration
// from the environment (WECHAT_*), your handler behind the callback
// middleware, and a graceful shutdown on Ctrl-C.
func ExampleServe() {
	cfg, err := config.Load(os.LookupEnv, nil)
	if err == nil {
		err = cfg.Validate(server.Needs(cfg))
	}
	if err != nil {
		log.Fatal(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m, ok := message.FromContext(r.Context()); ok {
			log.Printf("a %s from %s", m.MsgType, m.FromUserName)
		}
		io.WriteString(w, "success")
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := server.Serve(ctx, cfg, server.Options{Handler: handler}); err != nil {
		log.Fatal(err)
	}
}
