package config_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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

// A central server for two accounts reads them from a config file; their
// secrets stay in the environment. Each app gets its own token store.
func ExampleLoad_configFile() {
	dir, err := os.MkdirTemp("", "wxcentral")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "wxcentral.toml")
	err = os.WriteFile(path, []byte(`store = "tokens/"
token_api = "stable"

[[app]]
name = "main"
app_id = "wx0123456789abcdef"
secret_env = "WX_MAIN_SECRET"
callback_path = "/wechat/main"
callback_token_env = "WX_MAIN_CALLBACK_TOKEN"

[[app]]
kind = "mini_program"
app_id = "wx1111111111111111"
secret_env = "WX_MINI_SECRET"
`), 0o600)
	if err != nil {
		fmt.Println(err)
		return
	}
	environ := map[string]string{
		"WECHAT_CONFIG":          path,
		"WX_MAIN_SECRET":         "main-secret",
		"WX_MAIN_CALLBACK_TOKEN": "callback-token",
	}
	lookup := func(k string) (string, bool) { v, ok := environ[k]; return v, ok }

	cfg, err := config.Load(lookup, nil)
	err = errors.Join(err, cfg.Validate(config.NeedCallback|config.NeedKeeper))
	fmt.Println(strings.ReplaceAll(fmt.Sprint(err), dir+string(filepath.Separator), ""))
	for _, app := range cfg.AppList() {
		fmt.Println(app.Name, app.Kind, app.TokenAPI, app.Secret, filepath.ToSlash(cfg.StoreFor(app.AppID)), app.CallbackPath)
	}
	// Output:
	// wxcentral.toml:14: [[app]] "wx1111111111111111": secret_env: WX_MINI_SECRET is not set
	// main official_account stable [redacted] tokens/wx0123456789abcdef.txt /wechat/main
	// wx1111111111111111 mini_program stable  tokens/wx1111111111111111.txt
}
