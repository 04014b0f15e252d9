package config_test

import (
	"errors"
	"flag"
	"fmt"

	"github.com/wxcentral/wxcentral/config"
)

// A sub-command reads its configuration: the environment (os.LookupEnv in
// a real program), overridden by its own flags, then checked for what the
// command does. Every problem is reported at once.
func ExampleLoad() {
	environ := map[string]string{
		"WECHAT_TOKEN":            "callback-token",
		"WECHAT_TIMESTAMP_WINDOW": "2m",
		"WECHAT_STORE":            "redis://:hunter2@localhost:6379/0",
	}
	lookup := func(k string) (string, bool) { v, ok := environ[k]; return v, ok }

	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl := config.NewFlags(fs)
	_ = fs.Parse([]string{"-listen", ":8080", "-admin-listen", ":3101"})

	cfg, err := config.Load(lookup, fl)
	err = errors.Join(err, cfg.Validate(config.NeedCallback|config.NeedKeeper|config.NeedAdmin))
	fmt.Println(err)
	fmt.Println(cfg.Listen, cfg.TimestampWindow, cfg.Token, cfg.RedactedStore())
	// Output:
	// WECHAT_APP_ID (-app-id): missing: the token keeper needs the official account's AppID
	// WECHAT_APP_SECRET (-app-secret): missing: the token keeper needs the account's AppSecret
	// WECHAT_ADMIN_KEY (-admin-key): missing: the admin listener ":3101" is reachable beyond this host, so it needs a key (or listen on 127.0.0.1)
	// :8080 2m0s [redacted] redis://:xxxxx@localhost:6379/0
}
