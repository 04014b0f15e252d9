// Package demo holds what the framework examples share and is not the
// point of any of them: the message router they mount, and their command
// line. Each example's main.go shows the mounting itself.
package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/middleware/msgcrypt"
)

// Path is the callback path every example serves: the server URL to enter
// on the server configuration page (服务器配置) is http://host:port/wechat.
const Path = "/wechat"

// Messages returns the router every example mounts behind
// middleware.Verify: a text is answered with what the user said, a follow
// with a welcome, anything else with no reply.
func Messages() *message.Router {
	r := new(message.Router)
	r.HandleFunc(message.TypeText, func(_ context.Context, m *message.Message) (message.Reply, error) {
		return message.Text{Content: "you said: " + m.Content}, nil
	})
	r.HandleEventFunc(message.EventSubscribe, func(context.Context, *message.Message) (message.Reply, error) {
		return message.Text{Content: "welcome"}, nil
	})
	r.HandleDefaultFunc(func(context.Context, *message.Message) (message.Reply, error) {
		return message.NoReply, nil
	})
	return r
}

// Config is what an example's command line sets.
type Config struct {
	Addr    string              // -addr, the address to listen on
	Token   string              // -token, the callback token
	Options []middleware.Option // for middleware.Verify: the logger, and safe mode if asked for
}

// ParseFlags parses an example's command line: -addr (default
// 127.0.0.1:3100), -token (default "dev"), and -appid with -aes-key for
// safe mode (安全模式). Verify logs to logger.
func ParseFlags(name string, args []string, stderr io.Writer, logger *slog.Logger) (Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:3100", "the address to listen on")
	token := fs.String("token", "dev", "the callback token (Token on the server configuration page)")
	appID := fs.String("appid", "", "the AppID, for safe mode (with -aes-key)")
	aesKey := fs.String("aes-key", "", "the EncodingAESKey: safe mode (with -appid)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	cfg := Config{Addr: *addr, Token: *token, Options: []middleware.Option{middleware.WithLogger(logger)}}
	switch {
	case *token == "":
		return Config{}, errors.New("-token is empty: anyone could sign a callback")
	case (*appID == "") != (*aesKey == ""):
		return Config{}, errors.New("safe mode needs both -appid and -aes-key, plain mode neither")
	case *aesKey != "":
		key, err := msgcrypt.ParseKey(*aesKey)
		if err != nil {
			return Config{}, fmt.Errorf("-aes-key: %w", err)
		}
		cfg.Options = append(cfg.Options, middleware.WithAESKeys(*appID, key, nil))
	}
	return cfg, nil
}

// Main runs an example: it parses the command line, builds the handler
// with newHandler(token, options) and serves it on -addr until the process
// is stopped. It does not return.
func Main(name string, newHandler func(token string, opts ...middleware.Option) http.Handler) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(logger) // the router's errors, and the example's own lines
	cfg, err := ParseFlags(name, os.Args[1:], os.Stderr, logger)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	srv := &http.Server{
		Addr:              cfg.Addr,
		Handler:           newHandler(cfg.Token, cfg.Options...),
		ReadHeaderTimeout: 10 * time.Second,
	}
	logger.Info("listening", "example", name, "callback", "http://"+cfg.Addr+Path)
	if err := srv.ListenAndServe(); err != nil {
		logger.Error("serve", "err", err)
		os.Exit(1)
	}
}
