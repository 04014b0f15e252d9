// Package config reads wxcentral's configuration from the environment, from
// command-line flags of the same meaning and from an optional TOML config
// file, checks it, and prints it with the secrets redacted.
//
// Every setting has an environment variable (WECHAT_TOKEN) and a flag
// (-token). A value comes from, in rising order of precedence: the default,
// the environment, a flag given on the command line. Load parses; Validate
// checks what a command needs and reports every problem at once, each
// naming its variable and flag:
//
//	fs := flag.NewFlagSet("serve", flag.ExitOnError)
//	fl := config.NewFlags(fs)
//	fs.Parse(os.Args[2:])
//	cfg, err := config.Load(os.LookupEnv, fl)
//	err = errors.Join(err, cfg.Validate(config.NeedCallback|config.NeedKeeper|config.NeedAdmin))
//
// Secrets have the type Secret, which prints as "[redacted]".
//
// # The config file
//
// WECHAT_CONFIG (-config) names a TOML file that holds global settings and
// the accounts, one [[app]] table each, of a server that keeps the tokens
// of several:
//
//	# Global settings: those of the environment but the per-app ones, keyed
//	# by the flag name with '-' as '_'. The environment and flags win.
//	store = "tokens/"   # a directory: one file per app (or "wechat-{app_id}.txt", or a redis:// URL)
//	token_api = "stable"
//
//	[[app]]
//	name = "main"                  # the label in logs, metrics and the status page (default: the app_id)
//	kind = "official_account"      # or mini_program, mini_game
//	app_id = "wx0123456789abcdef"
//	secret_env = "WX_MAIN_SECRET"  # or secret_file = "/run/secrets/main"
//	refresh_before = "10m"         # default: the global refresh_before; token_api likewise
//	callback_path = "/wechat/main" # optional: this account's callbacks
//	callback_token_env = "WX_MAIN_CALLBACK_TOKEN"
//	encoding_aes_key_env = "WX_MAIN_AES_KEY"  # optional: safe mode
//
// A value comes from, in rising order of precedence: the default, the
// file, the environment, a flag. Every secret X (the app's secret,
// callback_token, previous_callback_token, encoding_aes_key,
// previous_encoding_aes_key; admin_key at the top level) is given by
// exactly one of X_env, the name of an environment variable holding it;
// X_file, a file holding it (one trailing newline removed; a relative path
// starts at the config file's directory); or X, the value itself, which
// only a config file no one but its owner can read (chmod 600) may hold.
// The per-app settings of the environment (WECHAT_APP_ID, WECHAT_TOKEN, …)
// have no place at the file's top level, and a file with [[app]] tables
// replaces them. A file without any holds global settings only.
//
// Every problem in the file is reported at once, each a *FileError that
// names its line and key:
//
//	wxcentral.toml:12: [[app]] "main": secret_env: WX_MAIN_SECRET is not set
package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/util"
)

// Defaults of the settings that have one.
const (
	DefaultAPIBase         = "https://api.weixin.qq.com"
	DefaultStore           = "wechat.txt"
	DefaultListen          = ":3100"
	DefaultCallbackPath    = "/"
	DefaultAdminListen     = "127.0.0.1:3101"
	DefaultTokenAPI        = "token"
	DefaultTimestampWindow = 5 * time.Minute
	DefaultLogFormat       = "text"
)

// MinAdminKeyLen is the shortest admin key Validate accepts: the key guards
// the access_token, so it must not be guessable.
const MinAdminKeyLen = 16

// Config is wxcentral's whole configuration. The zero Config has no
// defaults; start from Default or Load.
type Config struct {
	// ConfigFile is the TOML config file (WECHAT_CONFIG, -config); ""
	// for none. Load reads it; see the package doc for its keys.
	ConfigFile string

	// AppID is the official account's AppID (WECHAT_APP_ID, -app-id).
	AppID string
	// AppSecret is the account's AppSecret (WECHAT_APP_SECRET, -app-secret).
	AppSecret Secret

	// Token is the callback token set on the official account platform
	// (WECHAT_TOKEN, -token).
	Token Secret
	// PreviousToken is also accepted on callbacks while the token is being
	// rotated (WECHAT_PREVIOUS_TOKEN, -previous-token).
	PreviousToken Secret
	// EncodingAESKey is the 43-character key of safe mode
	// (WECHAT_ENCODING_AES_KEY, -encoding-aes-key); empty for plaintext mode.
	EncodingAESKey Secret
	// PreviousEncodingAESKey is also tried when decrypting, while the key
	// is being rotated (WECHAT_PREVIOUS_ENCODING_AES_KEY,
	// -previous-encoding-aes-key).
	PreviousEncodingAESKey Secret
	// TimestampWindow is how far a callback's timestamp may be from the
	// clock; 0 turns the check off (WECHAT_TIMESTAMP_WINDOW,
	// -timestamp-window). Default 5m.
	TimestampWindow time.Duration

	// APIBase is the WeChat API's scheme and host (WECHAT_API_BASE,
	// -api-base), or several, comma-separated, in order of preference:
	// calls fail over to the next when one cannot be reached (see
	// APIBases). Default https://api.weixin.qq.com.
	APIBase string
	// GatewayOff turns off the gateway, WeChat's own API on the admin
	// listener (WECHAT_GATEWAY=off, -gateway off). Default: on.
	GatewayOff bool
	// Store is where the token is kept: a file path, a Redis URL
	// (redis://, rediss://, redis+sentinel://, redis+cluster:// and their
	// rediss+ forms), or a database URL (mysql://, mariadb://,
	// postgres://, postgresql://) (WECHAT_STORE, -store). Default
	// wechat.txt. A password in the URL is redacted when the Config is
	// printed. With several apps a file store is a directory or a path
	// with {app_id} (see StoreFor).
	Store string
	// TokenAPI is "token" (GET /cgi-bin/token) or "stable" (POST
	// /cgi-bin/stable_token) (WECHAT_TOKEN_API, -token-api). Default token.
	TokenAPI string
	// RefreshBefore is how long before its expiry a token is refreshed
	// (WECHAT_REFRESH_BEFORE, -refresh-before). Zero means the token
	// keeper's default.
	RefreshBefore time.Duration

	// Listen is the public listener's address, where WeChat calls
	// (WECHAT_LISTEN, -listen). Default :3100.
	Listen string
	// CallbackPath is the path of the callback URL (WECHAT_CALLBACK_PATH,
	// -callback-path). Default /.
	CallbackPath string
	// AdminListen is the admin API's address (WECHAT_ADMIN_LISTEN,
	// -admin-listen). Default 127.0.0.1:3101.
	AdminListen string
	// AdminKey is the bearer key of the admin API (WECHAT_ADMIN_KEY,
	// -admin-key); required when AdminListen is not a loopback address.
	AdminKey Secret
	// AdminHosts lists, comma-separated, the Host names besides localhost
	// and loopback addresses that the admin API answers when it has no
	// AdminKey (WECHAT_ADMIN_HOSTS, -admin-hosts). Without a key any other
	// Host is refused, so that a web page cannot read the token through a
	// DNS rebinding name. Empty by default; see AdminHostList.
	AdminHosts string

	// TrustedProxies lists, comma-separated, the addresses or CIDRs of the
	// reverse proxies in front of the listeners (WECHAT_TRUSTED_PROXIES,
	// -trusted-proxies). Only a request whose peer is one of them has its
	// client address taken from X-Forwarded-For or X-Real-IP, for the
	// logs. Empty by default: no proxy is trusted. See
	// TrustedProxyPrefixes.
	TrustedProxies string

	// LogFormat is "text" or "json" (WECHAT_LOG_FORMAT, -log-format).
	// Default text.
	LogFormat string
	// LogLevel is the least level logged: debug, info, warn or error
	// (WECHAT_LOG_LEVEL, -log-level). Default info.
	LogLevel slog.Level

	// apps holds the config file's [[app]] tables; nil for none. It is a
	// pointer so that Config stays comparable; see Apps and WithApps.
	apps *[]App
	// file is what Validate needs to know of the config file; nil without
	// one.
	file *fileSource
}

// Default returns the Config of an empty environment: every default set,
// no secrets.
func Default() Config {
	return Config{
		APIBase:         DefaultAPIBase,
		Store:           DefaultStore,
		Listen:          DefaultListen,
		CallbackPath:    DefaultCallbackPath,
		AdminListen:     DefaultAdminListen,
		TokenAPI:        DefaultTokenAPI,
		TimestampWindow: DefaultTimestampWindow,
		LogFormat:       DefaultLogFormat,
		LogLevel:        slog.LevelInfo,
	}
}

// A LookupFunc looks up an environment variable; os.LookupEnv is one. Tests
// pass their own so that they never touch the process environment.
type LookupFunc func(key string) (value string, ok bool)

// A VarError is a problem with one setting. Load and Validate return them
// joined with errors.Join; errors.As finds the first.
type VarError struct {
	Var  string // the environment variable, e.g. "WECHAT_TOKEN"
	Flag string // the flag of the same meaning, without the dash, e.g. "token"
	Err  error  // what is wrong; never contains a secret
}

// Error names the variable and its flag, then the problem.
func (e *VarError) Error() string {
	return e.Var + " (-" + e.Flag + "): " + e.Err.Error()
}

// Unwrap returns e.Err.
func (e *VarError) Unwrap() error { return e.Err }

// A setting ties a Config field to its variable and flag.
type setting struct {
	env, flag string
	usage     string
	secret    bool
	// set parses v into c. Its error never repeats a secret v.
	set func(c *Config, v string) error
}

// settings returns the table of every setting, in the order of the Config
// fields.
func settings() []setting {
	str := func(f func(*Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *f(c) = v; return nil }
	}
	sec := func(f func(*Config) *Secret) func(*Config, string) error {
		return func(c *Config, v string) error { *f(c) = Secret(v); return nil }
	}
	dur := func(f func(*Config) *time.Duration) func(*Config, string) error {
		return func(c *Config, v string) error {
			d, err := parseDuration(v)
			if err != nil {
				return err
			}
			*f(c) = d
			return nil
		}
	}
	return []setting{
		{"WECHAT_CONFIG", "config", "the TOML config file: global settings and the [[app]] tables of several accounts (the environment and flags win over it)", false,
			str(func(c *Config) *string { return &c.ConfigFile })},
		{"WECHAT_APP_ID", "app-id", "the official account's AppID", false,
			str(func(c *Config) *string { return &c.AppID })},
		{"WECHAT_APP_SECRET", "app-secret", "the account's AppSecret (prefer the environment: a command line is visible to other users)", true,
			sec(func(c *Config) *Secret { return &c.AppSecret })},
		{"WECHAT_TOKEN", "token", "the callback token set on the official account platform", true,
			sec(func(c *Config) *Secret { return &c.Token })},
		{"WECHAT_PREVIOUS_TOKEN", "previous-token", "the callback token being replaced, accepted during a rotation", true,
			sec(func(c *Config) *Secret { return &c.PreviousToken })},
		{"WECHAT_ENCODING_AES_KEY", "encoding-aes-key", "the safe-mode EncodingAESKey, 43 characters", true,
			sec(func(c *Config) *Secret { return &c.EncodingAESKey })},
		{"WECHAT_PREVIOUS_ENCODING_AES_KEY", "previous-encoding-aes-key", "the EncodingAESKey being replaced, tried during a rotation", true,
			sec(func(c *Config) *Secret { return &c.PreviousEncodingAESKey })},
		{"WECHAT_TIMESTAMP_WINDOW", "timestamp-window", "how far a callback's timestamp may be from the clock; 0 disables the check (default 5m)", false,
			dur(func(c *Config) *time.Duration { return &c.TimestampWindow })},
		{"WECHAT_API_BASE", "api-base", "the WeChat API's base URL, or several comma-separated to fail over in order (default " + DefaultAPIBase + ")", false,
			str(func(c *Config) *string { return &c.APIBase })},
		{"WECHAT_GATEWAY", "gateway", "on or off: WeChat's own API (/cgi-bin/…) on the admin listener, for any SDK (default on)", false,
			func(c *Config, v string) error {
				switch strings.ToLower(strings.TrimSpace(v)) {
				case "", "on", "true", "1", "yes":
					c.GatewayOff = false
				case "off", "false", "0", "no":
					c.GatewayOff = true
				default:
					return fmt.Errorf("%q is neither on nor off", v)
				}
				return nil
			}},
		{"WECHAT_STORE", "store", "the token store: a file path, a redis:// URL, or a mysql:// or postgres:// URL (default " + DefaultStore + ")", false,
			str(func(c *Config) *string { return &c.Store })},
		{"WECHAT_TOKEN_API", "token-api", "the token endpoint: token or stable (default " + DefaultTokenAPI + ")", false,
			str(func(c *Config) *string { return &c.TokenAPI })},
		{"WECHAT_REFRESH_BEFORE", "refresh-before", "how long before expiry a token is refreshed (default: the keeper's)", false,
			dur(func(c *Config) *time.Duration { return &c.RefreshBefore })},
		{"WECHAT_LISTEN", "listen", "the public listener's address, where WeChat calls (default " + DefaultListen + ")", false,
			str(func(c *Config) *string { return &c.Listen })},
		{"WECHAT_CALLBACK_PATH", "callback-path", "the callback URL's path (default " + DefaultCallbackPath + ")", false,
			str(func(c *Config) *string { return &c.CallbackPath })},
		{"WECHAT_ADMIN_LISTEN", "admin-listen", "the admin API's address (default " + DefaultAdminListen + ")", false,
			str(func(c *Config) *string { return &c.AdminListen })},
		{"WECHAT_ADMIN_KEY", "admin-key", "the admin API's bearer key; required off loopback (prefer the environment)", true,
			sec(func(c *Config) *Secret { return &c.AdminKey })},
		{"WECHAT_ADMIN_HOSTS", "admin-hosts", "Host names, comma-separated, the key-less admin API answers besides localhost and loopback addresses", false,
			func(c *Config, v string) error {
				if _, err := parseHosts(v); err != nil {
					return err
				}
				c.AdminHosts = v
				return nil
			}},
		{"WECHAT_TRUSTED_PROXIES", "trusted-proxies", "addresses or CIDRs, comma-separated, of the reverse proxies whose X-Forwarded-For is believed (default none)", false,
			func(c *Config, v string) error {
				if _, err := parsePrefixes(v); err != nil {
					return err
				}
				c.TrustedProxies = v
				return nil
			}},
		{"WECHAT_LOG_FORMAT", "log-format", "text or json (default " + DefaultLogFormat + ")", false,
			str(func(c *Config) *string { return &c.LogFormat })},
		{"WECHAT_LOG_LEVEL", "log-level", "debug, info, warn or error (default info)", false,
			func(c *Config, v string) error {
				var l slog.Level
				if err := l.UnmarshalText([]byte(v)); err != nil {
					return fmt.Errorf("%q is not a level: use debug, info, warn or error", v)
				}
				c.LogLevel = l
				return nil
			}},
	}
}

// parseHosts parses a comma-separated list of host names or addresses,
// without ports, into lower case. Empty entries are skipped.
func parseHosts(v string) ([]string, error) {
	var out []string
	for _, h := range strings.Split(v, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if strings.ContainsAny(h, "/@?# \t") || strings.Contains(h, "://") {
			return nil, fmt.Errorf("entry %q is not a host name: give names like wxcentral.internal, without scheme, port or path", h)
		}
		if _, _, err := net.SplitHostPort(h); err == nil {
			return nil, fmt.Errorf("entry %q has a port: give the host name alone (any port is accepted)", h)
		}
		out = append(out, NormalizeHost(h))
	}
	return out, nil
}

// NormalizeHost returns a host name or address, without port, in the form
// AdminHostList returns and the admin API compares Host headers in: lower
// case, without the brackets of an IPv6 literal or a trailing dot.
func NormalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}

// parsePrefixes parses a comma-separated list of addresses and CIDRs. An
// address is a prefix of its full length. Empty entries are skipped.
func parsePrefixes(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(e, "/") {
			var err error
			if p, err = netip.ParsePrefix(e); err != nil {
				return nil, fmt.Errorf("entry %q is not a CIDR such as 10.0.0.0/8 or fd00::/8", e)
			}
		} else {
			a, err := netip.ParseAddr(e)
			if err != nil {
				return nil, fmt.Errorf("entry %q is neither an address nor a CIDR such as 10.0.0.0/8", e)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		p = middleware.ProxyPrefix(p) // as the middleware will compare with it
		if p.Bits() == 0 {
			return nil, fmt.Errorf("entry %q trusts every address, so anyone could forge their client address: list the proxies' own addresses", e)
		}
		out = append(out, p)
	}
	return out, nil
}

// AdminHostList returns AdminHosts parsed: lower-case host names without
// ports. Entries Load would refuse are left out.
func (c Config) AdminHostList() []string {
	var out []string
	for _, h := range strings.Split(c.AdminHosts, ",") {
		if l, err := parseHosts(h); err == nil {
			out = append(out, l...)
		}
	}
	return out
}

// TrustedProxyPrefixes returns TrustedProxies parsed: one prefix per
// entry, an address as a prefix of its full length. Entries Load would
// refuse are left out.
func (c Config) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, e := range strings.Split(c.TrustedProxies, ",") {
		if l, err := parsePrefixes(e); err == nil {
			out = append(out, l...)
		}
	}
	return out
}

// parseDuration parses a Go duration ("90s", "5m", "0"), and says how to
// write one when it fails.
func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		if _, nerr := strconv.ParseFloat(strings.TrimSpace(v), 64); nerr == nil {
			return 0, fmt.Errorf("%q has no unit: write e.g. %ss or %sm", v, v, v)
		}
		return 0, fmt.Errorf("%q is not a duration: write e.g. 90s, 5m or 1h30m", v)
	}
	return d, nil
}

// Flags are command-line flags bound to every setting. Build them with
// NewFlags before parsing the FlagSet, then pass them to Load.
type Flags struct {
	fs  *flag.FlagSet
	got map[string]string // flag name → value, for the flags given
}

// NewFlags defines on fs one string flag per setting (-app-id, -token,
// -listen, …; see the Config fields) and returns them for Load. Each
// sub-command calls it on its own FlagSet. Only flags given on the command
// line override the environment; the usage text names the variable each
// one overrides and never shows a secret.
func NewFlags(fs *flag.FlagSet) *Flags {
	fl := &Flags{fs: fs, got: map[string]string{}}
	for _, s := range settings() {
		name := s.flag
		fs.Func(name, s.usage+" [$"+s.env+"]", func(v string) error {
			fl.got[name] = v
			return nil
		})
	}
	return fl
}

// Load returns Default overridden by the config file's global settings,
// then by the environment, as lookup reports it, and then by the flags
// given on the command line, with the file's [[app]] tables as Apps. The
// file is the one -config names, else WECHAT_CONFIG; none if both are unset
// or empty. lookup may be nil (no environment) and so may fl (no flags). It
// reports every value that cannot be read or parsed, as *FileError values
// for the file's (in the order of their lines) and *VarError values for the
// others, joined by errors.Join, and returns the Config with those settings
// left as they were; check the result with Validate.
//
// Load has no side effects beyond reading the file and the secret files it
// names: calling it again, to reload, gives the same result for the same
// files, environment and flags.
func Load(lookup LookupFunc, fl *Flags) (Config, error) {
	c := Default()
	var errs []error
	var f *file
	if path := configPath(lookup, fl); path != "" {
		var err error
		if f, err = readFile(path); err != nil {
			errs = append(errs, err)
		} else {
			c.file = &fileSource{path: path, globals: f.applyGlobals(&c, lookup)}
		}
	}
	for _, s := range settings() {
		if lookup != nil {
			if v, ok := lookup(s.env); ok {
				if err := s.set(&c, v); err != nil {
					errs = append(errs, &VarError{Var: s.env, Flag: s.flag, Err: err})
				} else if c.file != nil {
					delete(c.file.globals, s.flag) // no longer the file's value
				}
			}
		}
		if fl != nil {
			if v, ok := fl.got[s.flag]; ok {
				if err := s.set(&c, v); err != nil {
					errs = append(errs, &VarError{Var: s.env, Flag: s.flag, Err: fmt.Errorf("flag -%s: %w", s.flag, err)})
				} else if c.file != nil {
					delete(c.file.globals, s.flag)
				}
			}
		}
	}
	if f != nil {
		if apps := f.buildApps(c, lookup); len(apps) > 0 {
			c.apps = &apps
		}
		c.file.hasApps, c.file.envVars = f.hasApps, f.envVars
		// The file's problems first, in the order of their lines.
		slices.SortStableFunc(f.errs, func(a, b error) int { return a.(*FileError).Line - b.(*FileError).Line })
		errs = append(f.errs, errs...)
	}
	return c, errors.Join(errs...)
}

// configPath returns the config file Load reads: -config if given, else
// WECHAT_CONFIG; "" for none.
func configPath(lookup LookupFunc, fl *Flags) string {
	if fl != nil {
		if v, ok := fl.got["config"]; ok {
			return v
		}
	}
	if lookup != nil {
		if v, ok := lookup("WECHAT_CONFIG"); ok {
			return v
		}
	}
	return ""
}

// Need says what a command does, and so which settings it requires.
type Need uint8

// The roles a command can combine; Validate checks what each needs.
const (
	// NeedCallback: serving WeChat callbacks needs WECHAT_TOKEN (and, in
	// safe mode, WECHAT_APP_ID).
	NeedCallback Need = 1 << iota
	// NeedKeeper: keeping the access token needs WECHAT_APP_ID and
	// WECHAT_APP_SECRET.
	NeedKeeper
	// NeedAdmin: the admin listener needs WECHAT_ADMIN_KEY unless it
	// listens on a loopback address only.
	NeedAdmin
)

// Validate checks c for a command that needs the given roles and returns
// every problem at once, as *VarError values joined by errors.Join, or nil.
// Malformed values are reported whatever the roles; missing ones only when
// a role needs them. No message contains a secret.
//
// The config file's apps are checked whatever the roles, each problem a
// *FileError at its line: an app_id, a secret, and a callback token with a
// callback_path are required; app_ids, names and callback paths are
// unique. With apps, the single-app settings they replace are refused
// rather than required, and so is a store that is one plain file for
// several apps.
func (c Config) Validate(needs Need) error {
	var errs []error
	bad := func(env, flag, format string, args ...any) {
		err := fmt.Errorf(format, args...)
		if k, ok := c.file.global(flag); ok { // the config file's value: name its line
			errs = append(errs, &FileError{Path: c.file.path, Line: k.line, Key: k.name, Err: err})
			return
		}
		errs = append(errs, &VarError{Var: env, Flag: flag, Err: err})
	}

	// Malformed values.
	if c.AppID != "" && strings.ContainsFunc(c.AppID, badIDRune) {
		bad("WECHAT_APP_ID", "app-id", "%q contains white space or punctuation no AppID has", c.AppID)
	}
	for _, s := range []struct {
		env, flag string
		v         Secret
	}{
		{"WECHAT_APP_SECRET", "app-secret", c.AppSecret},
		{"WECHAT_TOKEN", "token", c.Token},
		{"WECHAT_PREVIOUS_TOKEN", "previous-token", c.PreviousToken},
		{"WECHAT_ADMIN_KEY", "admin-key", c.AdminKey},
	} {
		if s.v != "" && strings.TrimSpace(string(s.v)) != string(s.v) {
			bad(s.env, s.flag, "has leading or trailing white space (a newline from a secret file?)")
		}
	}
	if c.PreviousToken != "" && c.Token == "" {
		bad("WECHAT_PREVIOUS_TOKEN", "previous-token", "is set but WECHAT_TOKEN is not: set the new token too")
	}
	for _, k := range []struct {
		env, flag string
		v         Secret
	}{
		{"WECHAT_ENCODING_AES_KEY", "encoding-aes-key", c.EncodingAESKey},
		{"WECHAT_PREVIOUS_ENCODING_AES_KEY", "previous-encoding-aes-key", c.PreviousEncodingAESKey},
	} {
		if err := checkAESKey(string(k.v)); k.v != "" && err != nil {
			bad(k.env, k.flag, "%v", err)
		}
	}
	if c.PreviousEncodingAESKey != "" && c.EncodingAESKey == "" {
		bad("WECHAT_PREVIOUS_ENCODING_AES_KEY", "previous-encoding-aes-key", "is set but WECHAT_ENCODING_AES_KEY is not: set the new key too")
	}
	if c.TimestampWindow < 0 {
		bad("WECHAT_TIMESTAMP_WINDOW", "timestamp-window", "%v is negative: use 0 to turn the check off", c.TimestampWindow)
	}
	for _, b := range strings.Split(c.APIBase, ",") {
		if err := checkAPIBase(strings.TrimSpace(b)); err != nil {
			bad("WECHAT_API_BASE", "api-base", "%v", err)
		}
	}
	if err := checkStore(c.Store); err != nil {
		bad("WECHAT_STORE", "store", "%v", err)
	}
	if c.TokenAPI != "token" && c.TokenAPI != "stable" {
		bad("WECHAT_TOKEN_API", "token-api", "%q is neither token nor stable", c.TokenAPI)
	}
	if c.RefreshBefore < 0 || c.RefreshBefore >= 2*time.Hour {
		bad("WECHAT_REFRESH_BEFORE", "refresh-before", "%v is out of range: a token lives 2h, use e.g. 5m (0 for the default)", c.RefreshBefore)
	}
	if err := checkListen(c.Listen); err != nil {
		bad("WECHAT_LISTEN", "listen", "%v", err)
	}
	if !strings.HasPrefix(c.CallbackPath, "/") || strings.ContainsAny(c.CallbackPath, "?# \t\r\n") {
		bad("WECHAT_CALLBACK_PATH", "callback-path", "%q is not a URL path: start it with / and leave out any query", c.CallbackPath)
	}
	if err := checkListen(c.AdminListen); err != nil {
		bad("WECHAT_ADMIN_LISTEN", "admin-listen", "%v", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("WECHAT_LOG_FORMAT", "log-format", "%q is neither text nor json", c.LogFormat)
	}

	// The config file's apps replace the single-app settings.
	apps := c.Apps()
	if len(apps) > 0 {
		for _, s := range []struct {
			env, flag string
			set       bool
		}{
			{"WECHAT_APP_ID", "app-id", c.AppID != ""},
			{"WECHAT_APP_SECRET", "app-secret", c.AppSecret != ""},
			{"WECHAT_TOKEN", "token", c.Token != ""},
			{"WECHAT_PREVIOUS_TOKEN", "previous-token", c.PreviousToken != ""},
			{"WECHAT_ENCODING_AES_KEY", "encoding-aes-key", c.EncodingAESKey != ""},
			{"WECHAT_PREVIOUS_ENCODING_AES_KEY", "previous-encoding-aes-key", c.PreviousEncodingAESKey != ""},
		} {
			// An app may take its secret from the very variable (secret_env =
			// "WECHAT_APP_SECRET"): that is the file's use of it.
			if s.set && !slices.Contains(c.file.vars(), s.env) {
				bad(s.env, s.flag, "is set, but the config file's [[app]] tables replace it: unset it, or move it into an [[app]] table of %s", c.ConfigFile)
			}
		}
		if len(apps) > 1 && sharedFileStore(c.Store) {
			bad("WECHAT_STORE", "store", "%q is one file, but the config file lists %d apps and each needs its own: write store = \"tokens/\" (a directory) or store = \"wechat-%s.txt\"", c.Store, len(apps), AppIDPlaceholder)
		}
		errs = append(errs, c.validateApps(apps)...)
	}

	// What the roles need; with a config file's apps, validateApps has
	// checked each app's secret and callback token.
	if len(apps) > 0 || c.file != nil && c.file.hasApps {
		needs &^= NeedCallback | NeedKeeper
	}
	if needs&NeedCallback != 0 {
		if c.Token == "" {
			bad("WECHAT_TOKEN", "token", "missing: the callback server needs the token set on the official account platform")
		}
		if c.EncodingAESKey != "" && c.AppID == "" {
			bad("WECHAT_APP_ID", "app-id", "missing: safe mode (WECHAT_ENCODING_AES_KEY is set) checks the AppID in every message")
		}
	}
	if needs&NeedKeeper != 0 {
		if c.AppID == "" {
			bad("WECHAT_APP_ID", "app-id", "missing: the token keeper needs the official account's AppID")
		}
		if c.AppSecret == "" {
			bad("WECHAT_APP_SECRET", "app-secret", "missing: the token keeper needs the account's AppSecret")
		}
	}
	if needs&NeedAdmin != 0 {
		if c.AdminKey == "" && !loopbackOnly(c.AdminListen) {
			bad("WECHAT_ADMIN_KEY", "admin-key", "missing: the admin listener %q is reachable beyond this host, so it needs a key (or listen on 127.0.0.1)", c.AdminListen)
		}
		if c.AdminKey != "" && len(c.AdminKey) < MinAdminKeyLen {
			bad("WECHAT_ADMIN_KEY", "admin-key", "too short (%d characters): use at least %d random characters, e.g. from openssl rand -hex 16", len(c.AdminKey), MinAdminKeyLen)
		}
	}
	return errors.Join(errs...)
}

// badIDRune reports the runes an AppID never has.
func badIDRune(r rune) bool {
	return r <= ' ' || r >= 0x7f || strings.ContainsRune("&?#/=%\"'", r)
}

// checkAESKey checks an EncodingAESKey's shape without ever printing it.
func checkAESKey(k string) error {
	if len(k) != 43 {
		return fmt.Errorf("has %d characters, an EncodingAESKey has 43", len(k))
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return fmt.Errorf("character %d is not a letter or digit: an EncodingAESKey is 43 of [a-zA-Z0-9]", i+1)
		}
	}
	return nil
}

// APIBases returns the API bases of APIBase, in order of preference.
func (c Config) APIBases() []string {
	var bases []string
	for _, b := range strings.Split(c.APIBase, ",") {
		if b = strings.TrimSpace(b); b != "" {
			bases = append(bases, b)
		}
	}
	return bases
}

func checkAPIBase(v string) error {
	if _, err := util.ParseHTTPURL(v); err != nil {
		return fmt.Errorf("%q is not an http(s) URL with a host, like %s", redactStore(v), DefaultAPIBase)
	}
	if _, err := util.ParseHTTPBase(v); err != nil {
		return fmt.Errorf("%q %v", redactStore(v), err)
	}
	return nil
}

// redisSchemes are the URL schemes of a Redis store, as redisstore.Open
// takes them.
var redisSchemes = []string{"redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"}

// IsRedisStore reports whether store, a value of WECHAT_STORE, names a
// Redis store: a URL with a Redis scheme (redis://, rediss://,
// redis+sentinel://, redis+cluster:// and their rediss+ forms), in any
// case. Anything else names a file (or, with another scheme, is refused
// by Validate). It is the one test of which store a value names.
func IsRedisStore(store string) bool {
	scheme, _, ok := strings.Cut(store, "://")
	return ok && slices.Contains(redisSchemes, strings.ToLower(scheme))
}

// sqlSchemes are the URL schemes of a database store, as sqlstore.Open
// takes them.
var sqlSchemes = []string{"mysql", "mariadb", "postgres", "postgresql"}

// IsSQLStore reports whether store, a value of WECHAT_STORE, names a
// database store: a mysql://, mariadb://, postgres:// or postgresql://
// URL, in any case (see package wechat/sqlstore).
func IsSQLStore(store string) bool {
	scheme, _, ok := strings.Cut(store, "://")
	return ok && slices.Contains(sqlSchemes, strings.ToLower(scheme))
}

// checkStore checks a file path, a Redis URL or a database URL. A URL may
// carry a password, so its messages never repeat it.
func checkStore(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("empty: give a file path such as wechat.txt, a redis:// URL, or a mysql:// or postgres:// URL")
	}
	scheme, rest, isURL := strings.Cut(v, "://")
	if !isURL {
		if l := strings.ToLower(v); strings.HasPrefix(l, "redis:") || strings.HasPrefix(l, "rediss:") || strings.HasPrefix(l, "redis+") || strings.HasPrefix(l, "rediss+") {
			return errors.New("looks like a Redis URL but lacks ://: write e.g. redis://localhost:6379/0")
		}
		if strings.ContainsAny(v, "\x00\r\n") {
			return errors.New("the file path contains a NUL or line break")
		}
		return nil
	}
	if !IsRedisStore(v) && !IsSQLStore(v) {
		if strings.ContainsAny(scheme, ":@/") { // might hold a password
			scheme = "?"
		}
		return fmt.Errorf("unknown URL scheme %q: use a file path, redis://, rediss://, redis+sentinel://, redis+cluster://, mysql://, mariadb://, postgres:// or postgresql://", scheme)
	}
	authority, _, _ := strings.Cut(rest, "/")
	authority, _, _ = strings.Cut(authority, "?")
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	if authority == "" {
		example := "localhost:6379/0"
		if IsSQLStore(v) {
			example = "user:password@localhost/wxcentral"
		}
		return fmt.Errorf("the %s URL has no host: write e.g. %s://%s", scheme, scheme, example)
	}
	if _, err := url.Parse(v); err != nil {
		return fmt.Errorf("the %s URL does not parse (escape special characters of the password with %%XX)", scheme)
	}
	return nil
}

func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: write e.g. :3100 or 127.0.0.1:3101", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q has no valid port (0-65535)", addr)
	}
	return nil
}

// loopbackOnly reports whether addr listens on a loopback address only.
// An empty host means every interface.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// RedactedStore returns Store fit for a log line: a file path as it is, a
// Redis URL with its passwords replaced by xxxxx. Log this, never Store.
func (c Config) RedactedStore() string { return redactStore(c.Store) }

// redactStore returns v, a store or any other URL, with any password in
// it replaced.
func redactStore(v string) string {
	scheme, rest, isURL := strings.Cut(v, "://")
	if !isURL {
		return v
	}
	authEnd := strings.IndexAny(rest, "/?#")
	if authEnd < 0 {
		authEnd = len(rest)
	}
	auth, tail := rest[:authEnd], rest[authEnd:]
	if i := strings.LastIndexByte(auth, '@'); i >= 0 {
		user, _, hasPass := strings.Cut(auth[:i], ":")
		if hasPass {
			auth = user + ":xxxxx" + auth[i:]
		} else {
			auth = "xxxxx" + auth[i:]
		}
	}
	path, query, hasQuery := strings.Cut(tail, "?")
	if hasQuery {
		pairs := strings.Split(query, "&")
		for i, p := range pairs {
			k, _, _ := strings.Cut(p, "=")
			if strings.Contains(strings.ToLower(k), "password") {
				pairs[i] = k + "=xxxxx"
			}
		}
		path += "?" + strings.Join(pairs, "&")
	}
	return scheme + "://" + auth + path
}

// fields lists c's settings as name/value pairs, secrets redacted.
func (c Config) fields() []slog.Attr {
	return []slog.Attr{
		slog.String("ConfigFile", c.ConfigFile),
		slog.String("AppID", c.AppID),
		slog.String("AppSecret", c.AppSecret.String()),
		slog.String("Token", c.Token.String()),
		slog.String("PreviousToken", c.PreviousToken.String()),
		slog.String("EncodingAESKey", c.EncodingAESKey.String()),
		slog.String("PreviousEncodingAESKey", c.PreviousEncodingAESKey.String()),
		slog.Duration("TimestampWindow", c.TimestampWindow),
		slog.String("APIBase", c.APIBase),
		slog.String("Store", redactStore(c.Store)),
		slog.String("TokenAPI", c.TokenAPI),
		slog.Duration("RefreshBefore", c.RefreshBefore),
		slog.String("Listen", c.Listen),
		slog.String("CallbackPath", c.CallbackPath),
		slog.String("AdminListen", c.AdminListen),
		slog.String("AdminKey", c.AdminKey.String()),
		slog.String("AdminHosts", c.AdminHosts),
		slog.String("TrustedProxies", c.TrustedProxies),
		slog.String("LogFormat", c.LogFormat),
		slog.String("LogLevel", c.LogLevel.String()),
		slog.Any("Apps", appList(c.Apps())),
	}
}

// String prints c as Name=value pairs with the secrets redacted, for %v,
// %+v and %s.
func (c Config) String() string { return attrsString(c.fields()) }

// GoString prints c as a Go composite literal with the secrets redacted,
// for %#v.
func (c Config) GoString() string { return attrsGoString("config.Config", c.fields()) }

// LogValue makes slog log c as a group with the secrets redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(c.fields()...)
}

// MarshalJSON writes c as a JSON object of its fields with the secrets
// redacted, the store's password included, and the config file's apps
// under "Apps".
func (c Config) MarshalJSON() ([]byte, error) {
	type fieldsOnly Config // the same fields, without these methods
	f := fieldsOnly(c)
	f.Store = redactStore(c.Store)
	return json.Marshal(struct {
		fieldsOnly
		Apps []App `json:",omitempty"`
	}{f, c.Apps()})
}

// NewLogger returns a logger writing to w in c's LogFormat at c's LogLevel.
// Durations are written as Go duration strings ("1.5s", "2m0s") in both
// formats, not as JSON's nanoseconds.
func (c Config) NewLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel, ReplaceAttr: durationString}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// durationString is a slog ReplaceAttr that writes a duration as its
// String form.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
