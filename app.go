// Command wxcentral is the central control server (中控服务器) of a WeChat
// Official Account: it alone fetches and refreshes the access token, hands
// it to business servers over an admin API, and answers WeChat's callbacks.
//
//	wxcentral [serve] [flags]   run the server (the default command)
//	wxcentral demo              run it against an in-process fake WeChat
//	wxcentral fake-wechat       run the fake WeChat platform alone
//	wxcentral simulate          act as WeChat towards a callback URL
//	wxcentral help              list the commands
//
// Settings come from the environment (WECHAT_*) and flags of the same
// meaning; run "wxcentral serve -h" for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/wechat/server"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

const usage = `usage: wxcentral <command> [flags]

commands:
  serve        run the central control server: WeChat callbacks on WECHAT_LISTEN,
               the admin API on WECHAT_ADMIN_LISTEN (the default command)
  demo         run the server against a fake WeChat in-process, no account needed
  fake-wechat  run the fake WeChat platform alone [-listen 127.0.0.1:3200]
               [-app ID:SECRET[:KIND]]… [-lifetime 7200s] [-grace 5m] [-quota 2000]
               [-clock RFC3339] [-control-key KEY]; its control plane is under /_fake/
  simulate     act as WeChat towards a callback URL: -url URL -token TOKEN [-message TEXT]
               [-aes-key KEY -appid ID] for safe mode [-format json] for JSON pushes
  help         show this text

Run "wxcentral <command> -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command in args and returns the exit status: 0 success,
// 1 failure, 2 bad usage or configuration.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || isHelp(args[0])) {
		cmd, args = args[0], args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if isHelp(cmd) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stderr)
	case "demo":
		return demo(ctx, args, stdout, stderr)
	case "fake-wechat":
		return fakeWechat(ctx, args, stdout, stderr)
	case "simulate":
		return simulate(ctx, args, stdout, stderr)
	}
	fmt.Fprintf(stderr, "wxcentral: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// isHelp reports whether arg asks for the command list: help or one of its
// dash forms. It is the one list run consults, both to take a leading dash
// argument as the command (other flags before a command belong to serve)
// and to answer it. The run's commands never start with a dash, so a form
// the list names cannot reach serve.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help", "--h", "-?":
		return true
	}
	return false
}

// parse parses a command's flags; it returns -1 to go on, or an exit status.
func parse(fs *flag.FlagSet, args []string) int {
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		return 2
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "wxcentral %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2
	}
	return -1
}

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fl := config.NewFlags(fs)
	if code := parse(fs, args); code >= 0 {
		return code
	}
	cfg, err := config.Load(os.LookupEnv, fl)
	if err = errors.Join(err, cfg.Validate(server.Needs(cfg))); err != nil {
		fmt.Fprintf(stderr, "wxcentral serve: configuration:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 2
	}
	// SIGHUP re-reads the config file (WECHAT_CONFIG), as POST
	// /v1/reload does, with the same environment and flags.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := func() (config.Config, error) {
		c, err := config.Load(os.LookupEnv, fl)
		return c, errors.Join(err, c.Validate(server.Needs(c)))
	}
	if err := server.Serve(ctx, cfg, server.Options{Logger: cfg.NewLogger(stderr), Reload: reload, ReloadOn: hup}); err != nil {
		fmt.Fprintf(stderr, "wxcentral serve: %v\n", err)
		var ve *config.VarError
		if errors.As(err, &ve) {
			return 2
		}
		return 1
	}
	return 0
}

func demo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:3100", "the callback listener, or a free port if taken")
	admin := fs.String("admin-listen", "127.0.0.1:3101", "the admin listener, or a free port if taken")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	err := server.Demo(ctx, server.DemoOptions{Out: stdout, Logger: slog.New(slog.NewTextHandler(stderr, nil)),
		Listen: *listen, AdminListen: *admin})
	if err != nil {
		fmt.Fprintf(stderr, "wxcentral demo: %v\n", err)
		return 1
	}
	return 0
}

func fakeWechat(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fake-wechat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ff := wechattest.NewFlags(fs)
	if code := parse(fs, args); code >= 0 {
		return code
	}
	opts, err := ff.Options(wechattest.App{ID: server.DemoAppID, Secret: server.DemoAppSecret})
	if err != nil {
		fmt.Fprintf(stderr, "wxcentral fake-wechat: %v\n", err)
		return 2
	}
	l, err := net.Listen("tcp", ff.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "wxcentral fake-wechat: %v\n", err)
		return 1
	}
	err = server.FakeWechat(ctx, server.FakeOptions{Listener: l, Platform: opts, Apps: ff.Apps.String(),
		Out: stdout, Logger: slog.New(slog.NewTextHandler(stderr, nil))})
	if err != nil {
		fmt.Fprintf(stderr, "wxcentral fake-wechat: %v\n", err)
		return 1
	}
	return 0
}

func simulate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	u := fs.String("url", "", "the callback URL, e.g. http://127.0.0.1:3100/")
	// No default shown: the token is a secret, read from the environment
	// after parsing.
	token := fs.String("token", "", "the callback token (default $WECHAT_TOKEN)")
	msg := fs.String("message", "", "the text the simulated user sends")
	aesKey := fs.String("aes-key", "", "the EncodingAESKey: send safe-mode (encrypted) messages; needs -appid")
	appID := fs.String("appid", "", "the AppID sealed into safe-mode messages (with -aes-key)")
	compat := fs.Bool("compat", false, "compatible mode: plaintext fields and Encrypt in one body (with -aes-key)")
	format := fs.String("format", "xml", "the push format: xml, or json as a Mini Program or Mini Game may choose")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	pushFormat, err := wechattest.ParseFormat(*format)
	if err != nil {
		fmt.Fprintf(stderr, "wxcentral simulate: -format: %v\n", err)
		return 2
	}
	if *token == "" {
		*token = os.Getenv("WECHAT_TOKEN")
	}
	if *u == "" || *token == "" {
		fmt.Fprintln(stderr, "wxcentral simulate: -url and -token are required")
		fs.Usage()
		return 2
	}
	if wechattest.Simulate(ctx, stdout, wechattest.SimulateConfig{URL: *u, Token: *token, Message: *msg,
		AESKey: *aesKey, AppID: *appID, Compatible: *compat, Format: pushFormat}) {
		return 0
	}
	return 1
}
