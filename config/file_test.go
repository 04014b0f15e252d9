package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/config"
)

// writeConfig writes a config file of the given mode into a new temporary
// directory and returns its path.
func writeConfig(t *testing.T, mode os.FileMode, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wxcentral.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// leaves flattens errors joined with errors.Join (Load's and Validate's)
// into their parts.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

// loadFile loads the config file at path with the environment e (and
// WECHAT_CONFIG set to path), then validates it for the roles needs.
func loadFile(t *testing.T, path string, e env, needs config.Need) (config.Config, []error) {
	t.Helper()
	full := env{"WECHAT_CONFIG": path}
	for k, v := range e {
		full[k] = v
	}
	c, err := config.Load(full.lookup, nil)
	return c, append(leaves(err), leaves(c.Validate(needs))...)
}

const fullFile = `# wxcentral's config file
store = "tokens/"
token_api = "stable"
refresh_before = "7m"
log_level = "debug"
admin_key_env = "ADMIN_KEY"

[[app]]
name = "main"
app_id = "wx0123456789abcdef"
secret_env = "WX_MAIN_SECRET"
refresh_before = "10m"
callback_path = "/wechat/main"
callback_token_env = "WX_MAIN_CALLBACK_TOKEN"
previous_callback_token_file = "prev-token"
encoding_aes_key_env = "WX_MAIN_AES_KEY"

[[app]]
kind = "mini_program"
app_id = "wx1111111111111111"
secret_file = "secrets/mini"
token_api = "token"
`

func TestFileLoad(t *testing.T) {
	path := writeConfig(t, 0o644, fullFile)
	dir := filepath.Dir(path)
	if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"prev-token": "PREV-CB\r\n", "secrets/mini": "MINI-SECRET\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e := env{
		"ADMIN_KEY":              "admin-key-0123456789",
		"WX_MAIN_SECRET":         "MAIN-SECRET",
		"WX_MAIN_CALLBACK_TOKEN": "MAIN-CB",
		"WX_MAIN_AES_KEY":        aesKey,
		"WECHAT_TOKEN_API":       "token", // the environment wins over the file
	}
	c, errs := loadFile(t, path, e, config.NeedCallback|config.NeedKeeper|config.NeedAdmin)
	if len(errs) > 0 {
		t.Fatalf("a good file does not load: %v", errors.Join(errs...))
	}
	if c.Store != "tokens/" || c.TokenAPI != "token" || c.RefreshBefore != 7*time.Minute || c.LogLevel != slog.LevelDebug ||
		c.AdminKey != "admin-key-0123456789" || c.ConfigFile != path || c.Listen != config.DefaultListen {
		t.Errorf("globals: %v", c)
	}
	want := []config.App{{
		Name: "main", Kind: config.OfficialAccount, AppID: "wx0123456789abcdef", Secret: "MAIN-SECRET",
		TokenAPI: "token", RefreshBefore: 10 * time.Minute, CallbackPath: "/wechat/main",
		CallbackToken: "MAIN-CB", PreviousCallbackToken: "PREV-CB", EncodingAESKey: aesKey,
	}, {
		Name: "wx1111111111111111", Kind: config.MiniProgram, AppID: "wx1111111111111111", Secret: "MINI-SECRET",
		TokenAPI: "token", RefreshBefore: 7 * time.Minute,
	}}
	got := c.Apps()
	if len(got) != len(want) {
		t.Fatalf("Apps = %v, want %v", got, want)
	}
	for i := range want {
		if !sameApp(got[i], want[i]) {
			t.Errorf("app %d =\n%#v\nwant\n%#v\nsecrets %q %q %q %q %q", i, got[i], want[i],
				got[i].Secret, got[i].CallbackToken, got[i].PreviousCallbackToken, got[i].EncodingAESKey, got[i].PreviousEncodingAESKey)
		}
	}
	if l := c.AppList(); len(l) != 2 || l[0].Name != "main" {
		t.Errorf("AppList = %v, want the file's apps", l)
	}
	if !got[0].Kind.HasJSAPI() || got[1].Kind.HasJSAPI() || config.MiniGame.HasJSAPI() {
		t.Error("HasJSAPI: only official accounts have a jsapi_ticket")
	}
	if s := c.StoreFor("wx0123456789abcdef"); s != filepath.Join("tokens", "wx0123456789abcdef.txt") {
		t.Errorf("StoreFor = %q", s)
	}
}

// sameApp compares the exported fields of two apps, secrets by value.
func sameApp(a, b config.App) bool {
	return a.Name == b.Name && a.Kind == b.Kind && a.AppID == b.AppID && a.Secret == b.Secret &&
		a.TokenAPI == b.TokenAPI && a.RefreshBefore == b.RefreshBefore && a.CallbackPath == b.CallbackPath &&
		a.CallbackToken == b.CallbackToken && a.PreviousCallbackToken == b.PreviousCallbackToken &&
		a.EncodingAESKey == b.EncodingAESKey && a.PreviousEncodingAESKey == b.PreviousEncodingAESKey
}

func TestFilePrecedence(t *testing.T) {
	path := writeConfig(t, 0o600, "store = \"file.txt\"\nlisten = \":1\"\nadmin_listen = \"127.0.0.1:2\"\nlog_format = \"json\"\n")
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl := config.NewFlags(fs)
	if err := fs.Parse([]string{"-listen", ":3"}); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(env{"WECHAT_CONFIG": path, "WECHAT_LISTEN": ":2", "WECHAT_STORE": "env.txt"}.lookup, fl)
	if err != nil {
		t.Fatal(err)
	}
	// default ← file ← environment ← flags
	if c.Listen != ":3" || c.Store != "env.txt" || c.AdminListen != "127.0.0.1:2" || c.LogFormat != "json" || c.TokenAPI != config.DefaultTokenAPI {
		t.Errorf("precedence: %v", c)
	}

	// -config wins over WECHAT_CONFIG, and -config= turns the file off.
	other := writeConfig(t, 0o600, "listen = \":7\"\n")
	for _, tt := range []struct {
		arg, listen string
	}{{"-config=" + other, ":7"}, {"-config=", config.DefaultListen}} {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fl := config.NewFlags(fs)
		if err := fs.Parse([]string{tt.arg}); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(env{"WECHAT_CONFIG": path}.lookup, fl)
		if err != nil || c.Listen != tt.listen {
			t.Errorf("%s: listen %q, %v; want %q", tt.arg, c.Listen, err, tt.listen)
		}
	}
}

// A file without [[app]] tables holds global settings only, and the
// single-app environment configuration applies as without a file.
func TestFileGlobalsOnly(t *testing.T) {
	path := writeConfig(t, 0o600, "store = \"redis://localhost:6379/0\"\nadmin_key = \"admin-key-0123456789\"\n")
	c, errs := loadFile(t, path, env{"WECHAT_APP_ID": "wx1234567890abcdef", "WECHAT_APP_SECRET": "S", "WECHAT_TOKEN": "T", "WECHAT_CALLBACK_PATH": "/cb"}, config.NeedCallback|config.NeedKeeper|config.NeedAdmin)
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	if c.Apps() != nil || c.AdminKey != "admin-key-0123456789" || c.Store != "redis://localhost:6379/0" {
		t.Errorf("globals-only file: %v", c)
	}
	l := c.AppList()
	want := config.App{Name: "wx1234567890abcdef", Kind: config.OfficialAccount, AppID: "wx1234567890abcdef", Secret: "S",
		TokenAPI: "token", CallbackPath: "/cb", CallbackToken: "T"}
	if len(l) != 1 || !sameApp(l[0], want) {
		t.Errorf("AppList = %#v, want %#v", l, want)
	}
	if s := c.StoreFor("wx1"); s != "redis://localhost:6379/0" {
		t.Errorf("StoreFor a Redis URL = %q", s)
	}
	if l := config.Default().AppList(); l != nil {
		t.Errorf("AppList without an AppID = %v, want nil", l)
	}
}

// problem is an expected *FileError (or, with Var set, *VarError).
type problem struct {
	line int
	key  string
	app  string
	text string // a part of the message
	vr   string // the *VarError's variable, for a problem outside the file
}

func TestFileProblems(t *testing.T) {
	const app = "[[app]]\napp_id = \"wx0123456789abcdef\"\nsecret_env = \"S\"\n"
	for _, tt := range []struct {
		name string
		mode os.FileMode
		text string
		env  env
		want []problem
	}{
		{"syntax error", 0o600, "store = \"a\"\n\nlisten = \"x\n", nil,
			[]problem{{line: 3, text: "string"}}},
		{"duplicate key", 0o600, "listen = \":1\"\nlisten = \":2\"\n", nil,
			[]problem{{line: 2, key: "listen", text: "key listen is already defined"}}},
		{"typo in an app", 0o600, app + "\n[[app]]\napp_id = \"wx2\"\nsecert_env = \"S\"\n", nil, []problem{
			{line: 7, key: "secert_env", app: "wx2", text: "unknown key secert_env in [[app]] #2 (did you mean secret_env?)"},
			{line: 5, key: "secret", app: "wx2", text: "missing"},
		}},
		{"unknown top-level key", 0o600, "lisen = \":1\"\nfoo = \"x\"\n", nil, []problem{
			{line: 1, key: "lisen", text: "did you mean listen?"},
			{line: 2, key: "foo", text: "unknown key foo at the top level"},
		}},
		{"per-app settings at the top level", 0o600, "app_id = \"wx1\"\napp_secret_env = \"S\"\ncallback_path = \"/\"\ntoken = \"t\"\nsecret_env = \"S\"\n", nil, []problem{
			{line: 1, key: "app_id", text: "put it in an [[app]] table"},
			{line: 2, key: "app_secret_env", text: "put it in an [[app]] table"},
			{line: 3, key: "callback_path", text: "put it in an [[app]] table"},
			{line: 4, key: "token", text: "put it in an [[app]] table"},
			{line: 5, key: "secret_env", text: "put it in an [[app]] table"},
		}},
		{"other tables", 0o600, "[app]\napp_id = \"wx1\"\n[[component]]\nx = 1\n[log]\n", nil, []problem{
			{line: 1, text: "write [[app]]"},
			{line: 3, text: "unknown table [[component]]"},
			{line: 5, text: "unknown table [log]"},
		}},
		{"not a string", 0o600, app + "refresh_before = 600\ntoken_api = [\"stable\"]\n", nil, []problem{
			{line: 4, key: "refresh_before", app: "wx0123456789abcdef", text: "is a number, not a string"},
			{line: 5, key: "token_api", app: "wx0123456789abcdef", text: "is an array"},
		}},
		{"literal secret in a readable file", 0o640, "[[app]]\napp_id = \"wx1\"\nsecret = \"secret-value\"\n", nil, []problem{
			{line: 3, key: "secret", app: "wx1", text: "chmod 600"},
		}},
		{"two sources of one secret", 0o600, "[[app]]\napp_id = \"wx1\"\nsecret = \"x\"\nsecret_env = \"S\"\n", nil, []problem{
			{line: 4, key: "secret_env", app: "wx1", text: "give only one of secret, secret_env and secret_file (secret is on line 3)"},
		}},
		{"secret variable unset or empty", 0o600, "[[app]]\nname = \"a\"\napp_id = \"wx1\"\nsecret_env = \"NOPE\"\n[[app]]\napp_id = \"wx2\"\nsecret_env = \"EMPTY\"\n", nil, []problem{
			{line: 4, key: "secret_env", app: "a", text: "NOPE is not set"},
			{line: 7, key: "secret_env", app: "wx2", text: "EMPTY is empty"},
		}},
		{"secret file missing", 0o600, "[[app]]\napp_id = \"wx1\"\nsecret_file = \"no/such\"\n", nil, []problem{
			{line: 3, key: "secret_file", app: "wx1", text: filepath.Join("no", "such") + ": no such file or directory"},
		}},
		{"secret file a directory", 0o600, "[[app]]\napp_id = \"wx1\"\nsecret_file = \".\"\n", nil, []problem{
			{line: 3, key: "secret_file", app: "wx1", text: "not a regular file"},
		}},
		{"the variables of the environment's single app, named by the file", 0o600,
			"[[app]]\napp_id = \"wx1\"\nsecret_env = \"WECHAT_APP_SECRET\"\ncallback_path = \"/\"\ncallback_token_env = \"WECHAT_TOKEN\"\n",
			env{"WECHAT_APP_SECRET": "s", "WECHAT_TOKEN": "t", "WECHAT_APP_ID": "wx1"}, []problem{
				{vr: "WECHAT_APP_ID", text: "[[app]] tables replace it"},
			}},
		{"app_id missing, malformed, repeated", 0o600, "[[app]]\nsecret_env = \"S\"\n[[app]]\napp_id = \"wx 1\"\nsecret_env = \"S\"\n" + app + app, nil, []problem{
			{line: 1, key: "app_id", app: "#1", text: "missing"},
			{line: 4, key: "app_id", app: "wx 1", text: "white space or punctuation"},
			{line: 10, key: "app_id", app: "wx0123456789abcdef", text: `is already the app_id of [[app]] "wx0123456789abcdef" (line 6)`},
		}},
		{"names repeated", 0o600, "[[app]]\nname = \"n\"\napp_id = \"wx1\"\nsecret_env = \"S\"\n[[app]]\nname = \"n\"\napp_id = \"wx2\"\nsecret_env = \"S\"\n[[app]]\nname = \"\"\napp_id = \"wx3\"\nsecret_env = \"S\"\n", nil, []problem{
			{line: 6, key: "name", app: "n", text: `is already the name of [[app]] "n" (line 1)`},
			{line: 10, key: "name", app: "wx3", text: "empty"},
		}},
		{"kind and token_api", 0o600, app + "kind = \"game\"\ntoken_api = \"fast\"\nrefresh_before = \"10\"\n", nil, []problem{
			{line: 6, key: "refresh_before", app: "wx0123456789abcdef", text: `"10" has no unit`},
			{line: 4, key: "kind", app: "wx0123456789abcdef", text: `"game" is none of official_account, mini_program and mini_game`},
			{line: 5, key: "token_api", app: "wx0123456789abcdef", text: `"fast" is neither token nor stable`},
		}},
		{"callback paths", 0o600, app + "callback_path = \"wechat\"\ncallback_token_env = \"T\"\n" +
			"[[app]]\nname = \"b\"\napp_id = \"wx2\"\nsecret_env = \"S\"\ncallback_path = \"/cb?x=1\"\ncallback_token_env = \"T\"\n" +
			"[[app]]\nname = \"c\"\napp_id = \"wx3\"\nsecret_env = \"S\"\ncallback_path = \"/cb\"\n" +
			"[[app]]\nname = \"d\"\napp_id = \"wx4\"\nsecret_env = \"S\"\ncallback_path = \"/cb\"\ncallback_token_env = \"T\"\n", nil, []problem{
			{line: 4, key: "callback_path", app: "wx0123456789abcdef", text: "is not a URL path"},
			{line: 10, key: "callback_path", app: "b", text: "is not a URL path"},
			{line: 12, key: "callback_token", app: "c", text: "missing: callback_path is set"},
			{line: 21, key: "callback_path", app: "d", text: `"/cb" is already the callback_path of [[app]] "c" (line 12)`},
		}},
		{"callback secrets without a path", 0o600, app + "callback_token_env = \"T\"\nencoding_aes_key = \"" + aesKey + "\"\n", nil, []problem{
			{line: 4, key: "callback_token_env", app: "wx0123456789abcdef", text: "callback_path is not"},
			{line: 5, key: "encoding_aes_key", app: "wx0123456789abcdef", text: "callback_path is not"},
		}},
		{"AES keys", 0o600, app + "callback_path = \"/\"\ncallback_token_env = \"T\"\nencoding_aes_key = \"short\"\nprevious_encoding_aes_key_env = \"S\"\n", nil, []problem{
			{line: 6, key: "encoding_aes_key", app: "wx0123456789abcdef", text: "has 5 characters"},
			{line: 7, key: "previous_encoding_aes_key_env", app: "wx0123456789abcdef", text: "has 12 characters"},
		}},
		{"single-app environment with apps", 0o600, app, env{"S": "s", "WECHAT_APP_ID": "wx9", "WECHAT_TOKEN": "t", "WECHAT_APP_SECRET": "x"}, []problem{
			{vr: "WECHAT_APP_ID", text: "[[app]] tables replace it"},
			{vr: "WECHAT_APP_SECRET", text: "[[app]] tables replace it"},
			{vr: "WECHAT_TOKEN", text: "[[app]] tables replace it"},
		}},
		{"one store file for two apps", 0o600, app + "[[app]]\napp_id = \"wx2\"\nsecret_env = \"S\"\n", env{"WECHAT_STORE": "wechat.txt"}, []problem{
			{vr: "WECHAT_STORE", text: `write store = "tokens/" (a directory) or store = "wechat-{app_id}.txt"`},
		}},
		{"a bad global", 0o600, "timestamp_window = \"5x\"\nadmin_key_env = \"NOPE\"\n", nil, []problem{
			{line: 1, key: "timestamp_window", text: `"5x" is not a duration`},
			{line: 2, key: "admin_key_env", text: "NOPE is not set"},
		}},
		// Validate names the file's line for a global setting the file gave,
		// the variable for one the environment gave.
		{"globals Validate refuses", 0o600, "refresh_before = \"3h\"\nadmin_key_env = \"T\"\nlisten = \"nope\"\nstore = \"one.txt\"\n" + app + "[[app]]\napp_id = \"wx2\"\nsecret_env = \"S\"\n",
			env{"WECHAT_STORE": "", "WECHAT_LISTEN": "bad"}, []problem{
				{line: 1, key: "refresh_before", text: "3h0m0s is out of range"},
				{vr: "WECHAT_LISTEN", text: `"bad" is not host:port`},
				{line: 4, key: "store", text: `"one.txt" is one file, but the config file lists 2 apps`},
				{line: 2, key: "admin_key_env", text: "too short (11 characters)"},
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.mode, tt.text)
			e := env{"S": "secret-value", "T": "token-value", "EMPTY": "", "WECHAT_STORE": "tokens/"}
			for k, v := range tt.env {
				e[k] = v
				if v == "" {
					delete(e, k) // unset
				}
			}
			_, errs := loadFile(t, path, e, config.NeedAdmin)
			var got []problem
			for _, err := range errs {
				var fe *config.FileError
				var ve *config.VarError
				switch {
				case errors.As(err, &fe):
					if fe.Path != path {
						t.Errorf("%v: path %q, want %q", fe, fe.Path, path)
					}
					got = append(got, problem{line: fe.Line, key: fe.Key, app: fe.App, text: fe.Error()})
				case errors.As(err, &ve):
					got = append(got, problem{vr: ve.Var, text: ve.Error()})
				default:
					t.Errorf("neither a FileError nor a VarError: %T %v", err, err)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(got), len(tt.want), errors.Join(errs...))
			}
			for i, w := range tt.want {
				g := got[i]
				if g.line != w.line || g.key != w.key || g.app != w.app || g.vr != w.vr || !strings.Contains(g.text, w.text) {
					t.Errorf("problem %d = %+v\nwant %+v", i, g, w)
				}
			}
		})
	}
}

func TestFileErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		err  config.FileError
		want string
	}{
		{config.FileError{Path: "wxcentral.toml", Line: 12, Key: "secret_env", App: "main", Err: errors.New("WX_MAIN_SECRET is not set")},
			`wxcentral.toml:12: [[app]] "main": secret_env: WX_MAIN_SECRET is not set`},
		{config.FileError{Path: "wxcentral.toml", Line: 3, Key: "app_id", App: "#2", Err: errors.New("missing")},
			`wxcentral.toml:3: [[app]] #2: app_id: missing`},
		{config.FileError{Path: "c.toml", Line: 1, Key: "lisen", Err: errors.New("unknown")}, `c.toml:1: lisen: unknown`},
		{config.FileError{Path: "c.toml", Err: errors.New("bad")}, `c.toml: bad`},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.toml")
	_, err := config.Load(env{"WECHAT_CONFIG": path}.lookup, nil)
	var ve *config.VarError
	if !errors.As(err, &ve) || ve.Var != "WECHAT_CONFIG" || !strings.Contains(err.Error(), "none.toml") || strings.Count(err.Error(), "none.toml") != 1 {
		t.Errorf("missing config file: %v", err)
	}
}

// Reload calls Load again: it must give the same result every time.
func TestFileLoadRerun(t *testing.T) {
	path := writeConfig(t, 0o600, fullFile+"[[app]]\napp_id = \"wx3\"\nsecret = \"x\"\nsecert = \"y\"\nkind = \"bad\"\n")
	e := env{"WECHAT_CONFIG": path, "WX_MAIN_SECRET": "s", "WX_MAIN_AES_KEY": aesKey}
	c1, err1 := config.Load(e.lookup, nil)
	for range 5 {
		c2, err2 := config.Load(e.lookup, nil)
		if !reflect.DeepEqual(c1, c2) {
			t.Fatalf("Load differs on a re-run:\n%#v\n%#v", c1, c2)
		}
		if fmt.Sprint(err1) != fmt.Sprint(err2) {
			t.Fatalf("Load's errors differ on a re-run:\n%v\n%v", err1, err2)
		}
		if v1, v2 := fmt.Sprint(c1.Validate(config.NeedKeeper)), fmt.Sprint(c2.Validate(config.NeedKeeper)); v1 != v2 {
			t.Fatalf("Validate differs on a re-run:\n%s\n%s", v1, v2)
		}
	}
	if err1 == nil {
		t.Error("the broken file loads without error")
	}
}

// No error and no printout shows a secret, wherever the file takes it
// from, even when the file is broken around it.
func TestFileNoSecretLeak(t *testing.T) {
	secrets := []string{"LITERALSECRET1", "ENVSECRET2", "FILESECRET3", "CBTOKEN4", "PREVCB5", "ADMINKEY6789012345", "BROKENSECRET7", "SPACESECRET8",
		"aesKEYxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx9", "badAESKEY10", "SYNTAXSECRET11"}
	good := `admin_key = "ADMINKEY6789012345"
[[app]]
name = "a"
app_id = "wx1"
secret = "LITERALSECRET1"
callback_path = "/a"
callback_token = "CBTOKEN4"
previous_callback_token_env = "PREV"
encoding_aes_key = "aesKEYxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx9"
previous_encoding_aes_key = "badAESKEY10"
[[app]]
app_id = "wx2"
secret_env = "ENV_SECRET"
callback_path = "/b"
callback_token_file = "tok"
[[app]]
app_id = "wx3"
secret_file = "secret3"
secret = "BROKENSECRET7"
callback_token_env = "SPACE"
`
	e := env{"ENV_SECRET": "ENVSECRET2", "PREV": "PREVCB5", "SPACE": " SPACESECRET8 "}
	for _, tt := range []struct {
		name string
		mode os.FileMode
		text string
	}{
		{"private file", 0o600, good},
		{"readable file", 0o644, good},
		{"syntax error", 0o600, good + "secret_file = \"SYNTAXSECRET11\n"},
		{"syntax error at a literal", 0o600, "[[app]]\nsecret = \"SYNTAXSECRET11\" x\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.mode, tt.text)
			dir := filepath.Dir(path)
			for name, v := range map[string]string{"tok": "CBTOKEN4\n", "secret3": "FILESECRET3\n"} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			full := env{"WECHAT_CONFIG": path}
			for k, v := range e {
				full[k] = v
			}
			c, err := config.Load(full.lookup, nil)
			verr := c.Validate(config.NeedCallback | config.NeedKeeper | config.NeedAdmin)
			if err == nil && verr == nil {
				t.Error("the file has problems, but none is reported")
			}
			var text, js bytes.Buffer
			slog.New(slog.NewTextHandler(&text, nil)).Info("config", "cfg", c)
			slog.New(slog.NewJSONHandler(&js, nil)).Info("config", "cfg", c, "apps", c.Apps())
			marshalled, jerr := json.Marshal(c)
			if jerr != nil {
				t.Fatal(jerr)
			}
			outputs := map[string]string{
				"Load error":     fmt.Sprint(err),
				"Validate error": fmt.Sprint(verr),
				"String":         c.String(),
				"%+v":            fmt.Sprintf("%+v", c),
				"%#v":            fmt.Sprintf("%#v", c),
				"apps %v":        fmt.Sprintf("%v %+v %s", c.Apps(), c.AppList(), c.Apps()),
				"apps %#v":       fmt.Sprintf("%#v", c.Apps()),
				"slog text":      text.String(),
				"slog json":      js.String(),
				"json":           string(marshalled),
			}
			for name, out := range outputs {
				for _, s := range secrets {
					if strings.Contains(out, s) {
						t.Errorf("%s shows secret %q: %s", name, s, out)
					}
				}
			}
			if tt.name == "private file" {
				if !strings.Contains(outputs["String"], "[redacted]") || !strings.Contains(outputs["slog json"], "wx2") {
					t.Errorf("the printout hides what is set, or what is not secret: %s", outputs["slog json"])
				}
				if a := c.Apps(); len(a) != 3 || a[0].Secret != "LITERALSECRET1" || a[1].Secret != "ENVSECRET2" || a[1].CallbackToken != "CBTOKEN4" {
					t.Errorf("secrets not read: %v", a)
				}
			}
		})
	}
}

func TestStoreFor(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ store, want string }{
		{"redis://:pw@localhost:6379/0", "redis://:pw@localhost:6379/0"},
		{"rediss+cluster://a:1,b:2/{app_id}", "rediss+cluster://a:1,b:2/{app_id}"},
		{"wechat-{app_id}.txt", "wechat-wx1.txt"},
		{"tokens/", filepath.Join("tokens", "wx1.txt")},
		{dir, filepath.Join(dir, "wx1.txt")},
		{"wechat.txt", "wechat.txt"},
	} {
		c := config.Default()
		c.Store = tt.store
		if got := c.StoreFor("wx1"); got != tt.want {
			t.Errorf("StoreFor with store %q = %q, want %q", tt.store, got, tt.want)
		}
	}
}

// Apps set in code are checked as a file's are, and Validate accepts a
// store per app.
func TestWithApps(t *testing.T) {
	c := config.Default().WithApps(
		config.App{Name: "a", Kind: config.OfficialAccount, AppID: "wx1", Secret: "s", TokenAPI: "token"},
		config.App{Name: "b", Kind: config.MiniGame, AppID: "wx1", TokenAPI: "token"},
	)
	c.Store = "wechat-{app_id}.txt"
	var got []string
	for _, err := range leaves(c.Validate(config.NeedKeeper)) {
		got = append(got, err.Error())
	}
	want := []string{
		`: [[app]] "b": app_id: "wx1" is already the app_id of [[app]] "a": list each account once`,
		`: [[app]] "b": secret: missing: give secret_env (a variable holding the AppSecret), secret_file, or secret in a file only its owner can read`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Validate =\n%q\nwant\n%q", got, want)
	}
	if c.WithApps().Apps() != nil {
		t.Error("WithApps() does not clear the apps")
	}
	apps := c.Apps()
	apps[0].Name = "changed"
	if c.Apps()[0].Name != "a" {
		t.Error("Apps returns the Config's own slice")
	}
}

// A syntax error loses the file's apps: Validate then does not ask for the
// single-app settings they replace.
func TestFileSyntaxErrorAlone(t *testing.T) {
	path := writeConfig(t, 0o600, "[[app]]\napp_id = \"wx1\"\nsecret_env = \"S\" x\n")
	c, err := config.Load(env{"WECHAT_CONFIG": path}.lookup, nil)
	var fe *config.FileError
	if !errors.As(err, &fe) || fe.Line != 3 || len(leaves(err)) != 1 {
		t.Errorf("Load = %v, want one FileError on line 3", err)
	}
	if err := c.Validate(config.NeedCallback | config.NeedKeeper); err != nil {
		t.Errorf("Validate after a syntax error in the apps = %v, want nil", err)
	}
}
