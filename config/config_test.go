package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/config"
)

// env is a fake environment for Load.
type env map[string]string

func (e env) lookup(k string) (string, bool) { v, ok := e[k]; return v, ok }

const aesKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG" // wechat-platform.md §10.1, vector A

func TestLoadDefaults(t *testing.T) {
	c, err := config.Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c != config.Default() {
		t.Errorf("Load(nil, nil) = %v, want Default() = %v", c, config.Default())
	}
	c, err = config.Load(env{}.lookup, config.NewFlags(flag.NewFlagSet("x", flag.ContinueOnError)))
	if err != nil || c != config.Default() {
		t.Errorf("empty environment and no flags: %v, %v", c, err)
	}
	if c.APIBase != "https://api.weixin.qq.com" || c.Store != "wechat.txt" || c.Listen != ":3100" ||
		c.CallbackPath != "/" || c.AdminListen != "127.0.0.1:3101" || c.TokenAPI != "token" ||
		c.TimestampWindow != 5*time.Minute || c.LogFormat != "text" || c.LogLevel != slog.LevelInfo {
		t.Errorf("defaults differ from DESIGN.md: %v", c)
	}
	if err := c.Validate(0); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
}

func TestLoadEnvironment(t *testing.T) {
	e := env{
		"WECHAT_APP_ID":                    "wxba5fad812f8e6fb9",
		"WECHAT_APP_SECRET":                "app-secret-value",
		"WECHAT_TOKEN":                     "AAAAA",
		"WECHAT_PREVIOUS_TOKEN":            "BBBBB",
		"WECHAT_ENCODING_AES_KEY":          aesKey,
		"WECHAT_PREVIOUS_ENCODING_AES_KEY": strings.Repeat("A", 43),
		"WECHAT_TIMESTAMP_WINDOW":          "0",
		"WECHAT_API_BASE":                  "http://127.0.0.1:8080",
		"WECHAT_STORE":                     "redis://:pw@localhost:6379/2",
		"WECHAT_TOKEN_API":                 "stable",
		"WECHAT_REFRESH_BEFORE":            "10m",
		"WECHAT_LISTEN":                    "0.0.0.0:80",
		"WECHAT_CALLBACK_PATH":             "/wechat",
		"WECHAT_ADMIN_LISTEN":              "[::1]:9000",
		"WECHAT_ADMIN_KEY":                 "0123456789abcdef0123",
		"WECHAT_LOG_FORMAT":                "json",
		"WECHAT_LOG_LEVEL":                 "debug",
		"UNRELATED":                        "ignored",
	}
	want := config.Config{
		AppID:                  "wxba5fad812f8e6fb9",
		AppSecret:              "app-secret-value",
		Token:                  "AAAAA",
		PreviousToken:          "BBBBB",
		EncodingAESKey:         aesKey,
		PreviousEncodingAESKey: config.Secret(strings.Repeat("A", 43)),
		TimestampWindow:        0,
		APIBase:                "http://127.0.0.1:8080",
		Store:                  "redis://:pw@localhost:6379/2",
		TokenAPI:               "stable",
		RefreshBefore:          10 * time.Minute,
		Listen:                 "0.0.0.0:80",
		CallbackPath:           "/wechat",
		AdminListen:            "[::1]:9000",
		AdminKey:               "0123456789abcdef0123",
		LogFormat:              "json",
		LogLevel:               slog.LevelDebug,
	}
	got, err := config.Load(e.lookup, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Load =\n%#v\nwant\n%#v", got, want)
	}
	if err := got.Validate(config.NeedCallback | config.NeedKeeper | config.NeedAdmin); err != nil {
		t.Errorf("a complete configuration does not validate: %v", err)
	}
}

func TestFlagsOverride(t *testing.T) {
	e := env{"WECHAT_LISTEN": ":1", "WECHAT_TOKEN": "from-env", "WECHAT_STORE": "env.txt", "WECHAT_TIMESTAMP_WINDOW": "1m"}
	tests := []struct {
		name string
		args []string
		want func(c config.Config) bool
	}{
		{"no flags: the environment", nil, func(c config.Config) bool {
			return c.Listen == ":1" && c.Token == "from-env" && c.Store == "env.txt" && c.TimestampWindow == time.Minute
		}},
		{"flags win", []string{"-listen", ":2", "-token=from-flag", "-timestamp-window", "0"}, func(c config.Config) bool {
			return c.Listen == ":2" && c.Token == "from-flag" && c.Store == "env.txt" && c.TimestampWindow == 0
		}},
		{"a flag over a default", []string{"-admin-listen", "127.0.0.1:9"}, func(c config.Config) bool {
			return c.AdminListen == "127.0.0.1:9" && c.Listen == ":1"
		}},
		{"an empty flag is a value", []string{"-store="}, func(c config.Config) bool { return c.Store == "" }},
		{"the last flag wins", []string{"-listen=:3", "-listen=:4"}, func(c config.Config) bool { return c.Listen == ":4" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Two sub-commands, each with its own FlagSet: they must not share state.
			other := flag.NewFlagSet("other", flag.ContinueOnError)
			otherFlags := config.NewFlags(other)
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fl := config.NewFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c, err := config.Load(e.lookup, fl)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(c) {
				t.Errorf("got %v", c)
			}
			if c2, _ := config.Load(e.lookup, otherFlags); c2.Listen != ":1" {
				t.Errorf("flags of one FlagSet leaked into another: %v", c2)
			}
		})
	}
}

// varNames returns the variables an error names, sorted.
func varNames(err error) []string {
	var names []string
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var ve *config.VarError
		if errors.As(err, &ve) {
			names = append(names, ve.Var)
		} else if err != nil {
			names = append(names, "not a VarError: "+err.Error())
		}
	}
	walk(err)
	slices.Sort(names)
	return names
}

func TestLoadParseErrors(t *testing.T) {
	e := env{
		"WECHAT_TIMESTAMP_WINDOW": "300", // no unit
		"WECHAT_REFRESH_BEFORE":   "soon",
		"WECHAT_LOG_LEVEL":        "loud",
		"WECHAT_LISTEN":           ":3100", // fine
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl := config.NewFlags(fs)
	if err := fs.Parse([]string{"-timestamp-window", "5x", "-listen", ":9"}); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(e.lookup, fl)
	got := varNames(err)
	want := []string{"WECHAT_LOG_LEVEL", "WECHAT_REFRESH_BEFORE", "WECHAT_TIMESTAMP_WINDOW", "WECHAT_TIMESTAMP_WINDOW"}
	if !slices.Equal(got, want) {
		t.Errorf("errors name %q, want %q; error:\n%v", got, want, err)
	}
	msg := err.Error()
	for _, s := range []string{"WECHAT_TIMESTAMP_WINDOW (-timestamp-window): \"300\" has no unit: write e.g. 300s", "flag -timestamp-window: \"5x\" is not a duration", "\"loud\" is not a level"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error lacks %q:\n%s", s, msg)
		}
	}
	if c.Listen != ":9" || c.TimestampWindow != config.DefaultTimestampWindow {
		t.Errorf("good values not kept, bad ones not left at default: %v", c)
	}
}

// valid is a configuration every role accepts.
func valid() config.Config {
	c := config.Default()
	c.AppID, c.AppSecret, c.Token, c.AdminKey = "wx1234567890abcdef", "s3cret", "tok3n", "k3y-0123456789abcdef"
	return c
}

func TestValidate(t *testing.T) {
	all := config.NeedCallback | config.NeedKeeper | config.NeedAdmin
	tests := []struct {
		name   string
		needs  config.Need
		change func(c *config.Config)
		want   []string // variables named, sorted
	}{
		{"valid", all, func(c *config.Config) {}, nil},
		{"callback needs the token", config.NeedCallback, func(c *config.Config) { c.Token = "" }, []string{"WECHAT_TOKEN"}},
		{"keeper does not need the token", config.NeedKeeper, func(c *config.Config) { c.Token = "" }, nil},
		{"keeper needs id and secret", config.NeedKeeper, func(c *config.Config) { c.AppID, c.AppSecret = "", "" }, []string{"WECHAT_APP_ID", "WECHAT_APP_SECRET"}},
		{"callback does not need the secret", config.NeedCallback, func(c *config.Config) { c.AppID, c.AppSecret = "", "" }, nil},
		{"safe mode needs the app id", config.NeedCallback, func(c *config.Config) { c.AppID, c.EncodingAESKey = "", aesKey }, []string{"WECHAT_APP_ID"}},
		{"aes key too short", 0, func(c *config.Config) { c.EncodingAESKey = config.Secret(aesKey[:42]) }, []string{"WECHAT_ENCODING_AES_KEY"}},
		{"aes key bad character", 0, func(c *config.Config) { c.EncodingAESKey = config.Secret(aesKey[:42] + "+") }, []string{"WECHAT_ENCODING_AES_KEY"}},
		{"previous aes key alone", 0, func(c *config.Config) { c.PreviousEncodingAESKey = aesKey }, []string{"WECHAT_PREVIOUS_ENCODING_AES_KEY"}},
		{"previous aes key malformed", 0, func(c *config.Config) { c.EncodingAESKey, c.PreviousEncodingAESKey = aesKey, "short" }, []string{"WECHAT_PREVIOUS_ENCODING_AES_KEY"}},
		{"previous token alone", 0, func(c *config.Config) { c.Token, c.PreviousToken = "", "old" }, []string{"WECHAT_PREVIOUS_TOKEN"}},
		{"token with a newline", 0, func(c *config.Config) { c.Token = "tok3n\n" }, []string{"WECHAT_TOKEN"}},
		{"secret with a space", 0, func(c *config.Config) { c.AppSecret = " s3cret" }, []string{"WECHAT_APP_SECRET"}},
		{"app id with a space", 0, func(c *config.Config) { c.AppID = "wx12 34" }, []string{"WECHAT_APP_ID"}},
		{"admin on all interfaces without key", config.NeedAdmin, func(c *config.Config) { c.AdminListen, c.AdminKey = ":3101", "" }, []string{"WECHAT_ADMIN_KEY"}},
		{"admin on a public address without key", config.NeedAdmin, func(c *config.Config) { c.AdminListen, c.AdminKey = "10.0.0.5:3101", "" }, []string{"WECHAT_ADMIN_KEY"}},
		{"admin on a hostname without key", config.NeedAdmin, func(c *config.Config) { c.AdminListen, c.AdminKey = "admin.internal:3101", "" }, []string{"WECHAT_ADMIN_KEY"}},
		{"admin on loopback without key", config.NeedAdmin, func(c *config.Config) { c.AdminKey = "" }, nil},
		{"admin on ::1 without key", config.NeedAdmin, func(c *config.Config) { c.AdminListen, c.AdminKey = "[::1]:3101", "" }, nil},
		{"admin on localhost without key", config.NeedAdmin, func(c *config.Config) { c.AdminListen, c.AdminKey = "localhost:3101", "" }, nil},
		{"public admin not needed", config.NeedCallback, func(c *config.Config) { c.AdminListen, c.AdminKey = ":3101", "" }, nil},
		{"admin key too short", config.NeedAdmin, func(c *config.Config) { c.AdminKey = "k9Qz7" }, []string{"WECHAT_ADMIN_KEY"}},
		{"negative window", 0, func(c *config.Config) { c.TimestampWindow = -time.Second }, []string{"WECHAT_TIMESTAMP_WINDOW"}},
		{"negative refresh", 0, func(c *config.Config) { c.RefreshBefore = -time.Second }, []string{"WECHAT_REFRESH_BEFORE"}},
		{"refresh beyond a token's life", 0, func(c *config.Config) { c.RefreshBefore = 2 * time.Hour }, []string{"WECHAT_REFRESH_BEFORE"}},
		{"api base not a URL", 0, func(c *config.Config) { c.APIBase = "api.weixin.qq.com" }, []string{"WECHAT_API_BASE"}},
		{"api base ftp", 0, func(c *config.Config) { c.APIBase = "ftp://api.weixin.qq.com" }, []string{"WECHAT_API_BASE"}},
		{"api base with query", 0, func(c *config.Config) { c.APIBase = "https://h/?x=1" }, []string{"WECHAT_API_BASE"}},
		{"api base with a path prefix", 0, func(c *config.Config) { c.APIBase = "http://127.0.0.1:8080/wx" }, nil},
		{"store empty", 0, func(c *config.Config) { c.Store = "" }, []string{"WECHAT_STORE"}},
		{"store path", 0, func(c *config.Config) { c.Store = "/var/lib/wxcentral/wechat.txt" }, nil},
		{"store redis", 0, func(c *config.Config) { c.Store = "rediss://user:p%40ss@redis.example:6380/1?dial_timeout=3s" }, nil},
		{"store sentinel", 0, func(c *config.Config) { c.Store = "redis+sentinel://:pw@s1:26379,s2:26379/mymaster/0" }, nil},
		{"store unknown scheme", 0, func(c *config.Config) { c.Store = "memcached://localhost:11211" }, []string{"WECHAT_STORE"}},
		{"store without host", 0, func(c *config.Config) { c.Store = "redis://:pw@/0" }, []string{"WECHAT_STORE"}},
		{"store missing slashes", 0, func(c *config.Config) { c.Store = "redis:localhost:6379" }, []string{"WECHAT_STORE"}},
		{"database store without host", 0, func(c *config.Config) { c.Store = "postgres://wx:pw@/wxcentral" }, []string{"WECHAT_STORE"}},
		{"token api", 0, func(c *config.Config) { c.TokenAPI = "classic" }, []string{"WECHAT_TOKEN_API"}},
		{"listen without port", 0, func(c *config.Config) { c.Listen = "localhost" }, []string{"WECHAT_LISTEN"}},
		{"listen port out of range", 0, func(c *config.Config) { c.Listen = ":70000" }, []string{"WECHAT_LISTEN"}},
		{"admin listen garbage", 0, func(c *config.Config) { c.AdminListen = "127.0.0.1" }, []string{"WECHAT_ADMIN_LISTEN"}},
		{"callback path relative", 0, func(c *config.Config) { c.CallbackPath = "wechat" }, []string{"WECHAT_CALLBACK_PATH"}},
		{"callback path with query", 0, func(c *config.Config) { c.CallbackPath = "/wechat?x" }, []string{"WECHAT_CALLBACK_PATH"}},
		{"log format", 0, func(c *config.Config) { c.LogFormat = "xml" }, []string{"WECHAT_LOG_FORMAT"}},
		{"everything at once", all, func(c *config.Config) {
			*c = config.Config{}
			c.EncodingAESKey = "bad"
			c.TimestampWindow = -1
		}, []string{
			"WECHAT_ADMIN_KEY", "WECHAT_ADMIN_LISTEN", "WECHAT_API_BASE", "WECHAT_APP_ID", "WECHAT_APP_ID", "WECHAT_APP_SECRET",
			"WECHAT_CALLBACK_PATH", "WECHAT_ENCODING_AES_KEY", "WECHAT_LISTEN", "WECHAT_LOG_FORMAT", "WECHAT_STORE",
			"WECHAT_TIMESTAMP_WINDOW", "WECHAT_TOKEN", "WECHAT_TOKEN_API",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			err := c.Validate(tt.needs)
			if got := varNames(err); !slices.Equal(got, tt.want) {
				t.Errorf("errors name %q, want %q; error:\n%v", got, tt.want, err)
			}
			if err == nil {
				return
			}
			for _, secret := range []config.Secret{c.AppSecret, c.Token, c.PreviousToken, c.EncodingAESKey, c.PreviousEncodingAESKey, c.AdminKey} {
				if s := strings.TrimSpace(string(secret)); len(s) > 2 && strings.Contains(err.Error(), s) {
					t.Errorf("error repeats a secret: %v", err)
				}
			}
			if strings.Contains(err.Error(), "p%40ss") || strings.Contains(err.Error(), ":pw@") {
				t.Errorf("error repeats a store password: %v", err)
			}
		})
	}
}

func TestRedaction(t *testing.T) {
	c := valid()
	c.AppSecret = "APPSECRET-9f8e7d"
	c.Token = "TOKEN-1a2b3c"
	c.PreviousToken = "PREVTOKEN-4d5e6f"
	c.EncodingAESKey = aesKey
	c.PreviousEncodingAESKey = config.Secret(strings.Repeat("Z", 43))
	c.AdminKey = "ADMINKEY-0123456789"
	c.Store = "redis+sentinel://user:STOREPASS@s1:26379,s2:26379/master/0?sentinel_password=SENTPASS&dial_timeout=2s"
	secrets := []string{"APPSECRET-9f8e7d", "TOKEN-1a2b3c", "PREVTOKEN-4d5e6f", aesKey, strings.Repeat("Z", 43), "ADMINKEY-0123456789", "STOREPASS", "SENTPASS"}

	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("config", "cfg", c)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("config", "cfg", c, "ptr", &c)
	marshalled, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"String":    c.String(),
		"%v":        fmt.Sprintf("%v", c),
		"%+v":       fmt.Sprintf("%+v", c),
		"%#v":       fmt.Sprintf("%#v", c),
		"%s":        fmt.Sprintf("%s", c),
		"%v ptr":    fmt.Sprintf("%v", &c),
		"%+v outer": fmt.Sprintf("%+v", struct{ Cfg config.Config }{c}),
		"%#v outer": fmt.Sprintf("%#v", struct{ Cfg config.Config }{c}),
		"%v secret": fmt.Sprintf("%v %s %q %#v", c.Token, c.Token, c.Token, c.Token),
		"slog text": text.String(),
		"slog json": js.String(),
		"json":      string(marshalled),
	}
	for name, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows secret %q: %s", name, s, out)
			}
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s does not say [redacted]: %s", name, out)
		}
	}
	for _, name := range []string{"String", "%+v", "%#v", "slog text", "slog json", "json"} {
		out := outputs[name]
		if !strings.Contains(out, "wx1234567890abcdef") || !strings.Contains(out, "s1:26379") {
			t.Errorf("%s hides what is not secret: %s", name, out)
		}
	}
	// An unset secret shows as empty, so a printout tells what is missing.
	if s := (config.Config{}).String(); strings.Contains(s, "[redacted]") || !strings.Contains(s, "Token: ") {
		t.Errorf("an empty config shows secrets as set: %s", s)
	}
}

func TestFlagUsageHidesSecrets(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	config.NewFlags(fs)
	if err := fs.Parse([]string{"-token", "FLAGTOKEN", "-app-secret", "FLAGSECRET"}); err != nil {
		t.Fatal(err)
	}
	fs.PrintDefaults()
	out := usage.String()
	for _, name := range []string{"-token", "WECHAT_TOKEN", "-timestamp-window", "WECHAT_TIMESTAMP_WINDOW", "-listen", "-admin-key"} {
		if !strings.Contains(out, name) {
			t.Errorf("usage lacks %s:\n%s", name, out)
		}
	}
	if strings.Contains(out, "FLAGTOKEN") || strings.Contains(out, "FLAGSECRET") {
		t.Errorf("usage shows a secret:\n%s", out)
	}
}

func TestNewLogger(t *testing.T) {
	for _, tt := range []struct {
		format string
		level  slog.Level
		prefix string
	}{
		{"json", slog.LevelInfo, `{"time":`},
		{"text", slog.LevelWarn, "time="},
	} {
		var buf bytes.Buffer
		c := config.Default()
		c.LogFormat, c.LogLevel = tt.format, tt.level
		l := c.NewLogger(&buf)
		l.Debug("hidden")
		l.Warn("shown")
		if out := buf.String(); !strings.HasPrefix(out, tt.prefix) || strings.Contains(out, "hidden") || !strings.Contains(out, "shown") {
			t.Errorf("%s logger wrote %q", tt.format, out)
		}
	}
}

func TestRedactedStore(t *testing.T) {
	tests := []struct{ store, want string }{
		{"wechat.txt", "wechat.txt"},
		{"/var/lib/a@b:c/wechat.txt", "/var/lib/a@b:c/wechat.txt"},
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://:pw@localhost:6379/0", "redis://:xxxxx@localhost:6379/0"},
		{"rediss://user:p%40ss@h:6380", "rediss://user:xxxxx@h:6380"},
		{"redis://onlypassword@h", "redis://xxxxx@h"},
		{"redis://u:a@b@h/1", "redis://u:xxxxx@h/1"},
		{"redis+sentinel://s1,s2/m?sentinel_password=pw&dial_timeout=1s", "redis+sentinel://s1,s2/m?sentinel_password=xxxxx&dial_timeout=1s"},
		{"redis://h?password=pw", "redis://h?password=xxxxx"},
	}
	for _, tt := range tests {
		c := config.Config{Store: tt.store}
		if got := c.RedactedStore(); got != tt.want {
			t.Errorf("RedactedStore(%q) = %q, want %q", tt.store, got, tt.want)
		}
	}
}

// A database URL names a database store, and passes Validate, password
// and all; IsRedisStore and IsSQLStore never both hold.
func TestIsSQLStore(t *testing.T) {
	for _, tt := range []struct {
		store string
		want  bool
	}{
		{"mysql://wx:pw@db:3306/wxcentral", true},
		{"MariaDB://db/wxcentral", true},
		{"postgres://wx:pw@db/wxcentral?sslmode=require&table_prefix=acme_", true},
		{"postgresql://db/wxcentral", true},
		{"redis://db:6379", false},
		{"wechat.txt", false},
		{"mysql:db", false},
	} {
		if got := config.IsSQLStore(tt.store); got != tt.want {
			t.Errorf("IsSQLStore(%q) = %v, want %v", tt.store, got, tt.want)
		}
		if config.IsSQLStore(tt.store) && config.IsRedisStore(tt.store) {
			t.Errorf("%q is both a Redis and a database store", tt.store)
		}
		if tt.want {
			c := config.Default()
			c.Store = tt.store
			if err := c.Validate(0); err != nil {
				t.Errorf("Validate with store %q: %v", c.RedactedStore(), err)
			}
			if strings.Contains(c.RedactedStore(), ":pw@") {
				t.Errorf("RedactedStore(%q) shows the password", tt.store)
			}
		}
	}
}

func TestIsRedisStore(t *testing.T) {
	for _, tt := range []struct {
		store string
		want  bool
	}{
		{"redis://localhost:6379/0", true},
		{"REDISS://h:6380", true},
		{"redis+sentinel://h:26379/0?master=m", true},
		{"rediss+cluster://a:7000,b:7001", true},
		{"wechat.txt", false},
		{"/var/lib/wxcentral/wechat.txt", false},
		{"redis:localhost", false},
		{"redisx://h", false},
		{"https://h/", false},
	} {
		if got := config.IsRedisStore(tt.store); got != tt.want {
			t.Errorf("IsRedisStore(%q) = %v, want %v", tt.store, got, tt.want)
		}
	}
}

func TestGatewaySetting(t *testing.T) {
	for v, off := range map[string]bool{"off": true, "OFF": true, "false": true, "on": false, "true": false, "": false} {
		c, err := config.Load(env{"WECHAT_GATEWAY": v}.lookup, nil)
		if err != nil || c.GatewayOff != off {
			t.Errorf("WECHAT_GATEWAY=%q: GatewayOff %v, err %v; want %v", v, c.GatewayOff, err, off)
		}
	}
	if _, err := config.Load(env{"WECHAT_GATEWAY": "maybe"}.lookup, nil); err == nil || !strings.Contains(err.Error(), "neither on nor off") {
		t.Errorf("WECHAT_GATEWAY=maybe: err %v; want it refused", err)
	}
}

func TestAPIBases(t *testing.T) {
	c, err := config.Load(env{"WECHAT_API_BASE": "https://api.weixin.qq.com, https://api2.weixin.qq.com"}.lookup, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.APIBases(); len(got) != 2 || got[1] != "https://api2.weixin.qq.com" {
		t.Errorf("APIBases() = %q", got)
	}
	c.APIBase = "https://api.weixin.qq.com,ftp://x"
	if err := c.Validate(config.NeedKeeper); err == nil || !strings.Contains(err.Error(), "ftp://x") {
		t.Errorf("Validate with a bad second base: %v", err)
	}
}
