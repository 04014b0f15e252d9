package config

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// An AppKind is the kind of WeChat account an App is.
type AppKind string

// The kinds of account a config file's [[app]] table can name.
const (
	OfficialAccount AppKind = "official_account" // 公众号
	MiniProgram     AppKind = "mini_program"     // 小程序
	MiniGame        AppKind = "mini_game"        // 小游戏
)

// HasJSAPI reports whether the kind has a jsapi_ticket (official accounts
// only).
func (k AppKind) HasJSAPI() bool { return k == OfficialAccount }

// valid reports whether k is one of the three kinds.
func (k AppKind) valid() bool {
	return k == OfficialAccount || k == MiniProgram || k == MiniGame
}

// An App is one account wxcentral serves: an [[app]] table of the config
// file, or the one account of the WECHAT_APP_ID environment settings (see
// Config.AppList). Its secrets have the type Secret, and the App prints
// with them redacted.
type App struct {
	// Name labels the app in logs, metrics and the status page; the
	// AppID unless the file names it.
	Name string
	// Kind is the kind of account; OfficialAccount unless the file says
	// otherwise.
	Kind AppKind
	// AppID is the account's AppID.
	AppID string
	// Secret is the account's AppSecret.
	Secret Secret
	// TokenAPI is "token" or "stable": the app's own, or the global
	// TokenAPI.
	TokenAPI string
	// RefreshBefore is how long before its expiry the app's token is
	// refreshed: the app's own, or the global RefreshBefore.
	RefreshBefore time.Duration
	// CallbackPath is the path of the app's callback URL; "" for an app
	// without callbacks.
	CallbackPath string
	// CallbackToken is the callback token set on the platform;
	// PreviousCallbackToken is also accepted during a rotation.
	CallbackToken, PreviousCallbackToken Secret
	// EncodingAESKey is the safe-mode key, empty for plaintext mode;
	// PreviousEncodingAESKey is also tried during a rotation.
	EncodingAESKey, PreviousEncodingAESKey Secret

	// src is where in the config file the app was given; nil for an app
	// not read from a file. Validate uses it to name the lines.
	src *appSource
}

// fields lists a's settings as name/value pairs, secrets redacted.
func (a App) fields() []slog.Attr {
	return []slog.Attr{
		slog.String("Name", a.Name),
		slog.String("Kind", string(a.Kind)),
		slog.String("AppID", a.AppID),
		slog.String("Secret", a.Secret.String()),
		slog.String("TokenAPI", a.TokenAPI),
		slog.Duration("RefreshBefore", a.RefreshBefore),
		slog.String("CallbackPath", a.CallbackPath),
		slog.String("CallbackToken", a.CallbackToken.String()),
		slog.String("PreviousCallbackToken", a.PreviousCallbackToken.String()),
		slog.String("EncodingAESKey", a.EncodingAESKey.String()),
		slog.String("PreviousEncodingAESKey", a.PreviousEncodingAESKey.String()),
	}
}

// String prints a as Name:value pairs with the secrets redacted, for %v,
// %+v and %s.
func (a App) String() string { return attrsString(a.fields()) }

// GoString prints a as a Go composite literal with the secrets redacted,
// for %#v.
func (a App) GoString() string { return attrsGoString("config.App", a.fields()) }

// LogValue makes slog log a as a group with the secrets redacted.
func (a App) LogValue() slog.Value { return slog.GroupValue(a.fields()...) }

// appList prints a list of apps with their secrets redacted, in every
// form Config prints in.
type appList []App

func (l appList) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, a := range l {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.String())
	}
	b.WriteByte(']')
	return b.String()
}

func (l appList) GoString() string {
	var b strings.Builder
	b.WriteString("[]config.App{")
	for i, a := range l {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.GoString())
	}
	b.WriteByte('}')
	return b.String()
}

// LogValue is a group with one group per app, keyed by its position.
func (l appList) LogValue() slog.Value {
	attrs := make([]slog.Attr, len(l))
	for i, a := range l {
		attrs[i] = slog.Attr{Key: fmt.Sprint(i), Value: a.LogValue()}
	}
	return slog.GroupValue(attrs...)
}

// attrsString prints attributes as {Key:value Key:value}.
func attrsString(attrs []slog.Attr) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, a := range attrs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%s", a.Key, a.Value)
	}
	b.WriteByte('}')
	return b.String()
}

// attrsGoString prints attributes as a Go composite literal of the type
// named typ.
func attrsGoString(typ string, attrs []slog.Attr) string {
	var b strings.Builder
	b.WriteString(typ)
	b.WriteByte('{')
	for i, a := range attrs {
		if i > 0 {
			b.WriteString(", ")
		}
		switch a.Value.Kind() {
		case slog.KindDuration:
			fmt.Fprintf(&b, "%s:%d", a.Key, int64(a.Value.Duration()))
		case slog.KindLogValuer, slog.KindAny:
			fmt.Fprintf(&b, "%s:%#v", a.Key, a.Value.Any())
		default:
			fmt.Fprintf(&b, "%s:%q", a.Key, a.Value.String())
		}
	}
	b.WriteString("}")
	return b.String()
}

// Apps returns the config file's [[app]] tables, in file order: nil
// without a config file or with one that has none. The slice is a copy.
//
// Apps is a method, not a field, so that Config stays comparable with ==.
func (c Config) Apps() []App {
	if c.apps == nil {
		return nil
	}
	return slices.Clone(*c.apps)
}

// WithApps returns a copy of c whose Apps are apps (none for an empty
// list), as if a config file had listed them. The Config keeps its own
// copy of the list.
func (c Config) WithApps(apps ...App) Config {
	if c.file != nil {
		f := *c.file
		f.hasApps = false
		c.file = &f
	}
	if len(apps) == 0 {
		c.apps = nil
		return c
	}
	l := slices.Clone(apps)
	c.apps = &l
	return c
}

// AppList returns every app c configures: the config file's Apps, or,
// when there are none and AppID is set, the one app of the environment
// settings (Name = AppID, Kind = OfficialAccount, Secret = AppSecret,
// CallbackToken = Token, PreviousCallbackToken = PreviousToken and the
// rest from the fields of the same names). It returns nil when c has no
// app at all.
func (c Config) AppList() []App {
	if apps := c.Apps(); len(apps) > 0 {
		return apps
	}
	if c.AppID == "" {
		return nil
	}
	return []App{c.envApp()}
}

// envApp returns the app of the single-app environment settings.
func (c Config) envApp() App {
	return App{
		Name:                   c.AppID,
		Kind:                   OfficialAccount,
		AppID:                  c.AppID,
		Secret:                 c.AppSecret,
		TokenAPI:               c.TokenAPI,
		RefreshBefore:          c.RefreshBefore,
		CallbackPath:           c.CallbackPath,
		CallbackToken:          c.Token,
		PreviousCallbackToken:  c.PreviousToken,
		EncodingAESKey:         c.EncodingAESKey,
		PreviousEncodingAESKey: c.PreviousEncodingAESKey,
	}
}

// AppIDPlaceholder is the text StoreFor replaces with an app's AppID in a
// file store path, as in store = "wechat-{app_id}.txt".
const AppIDPlaceholder = "{app_id}"

// StoreFor returns the store of the app with the given AppID: a Redis or
// other URL as it is (its keys are per app already); a file path
// containing "{app_id}" with the AppID in its place; a path ending in "/"
// or naming an existing directory joined with appID+".txt"; any other path
// as it is (fit for one app only: Validate refuses it when the config file
// lists several).
func (c Config) StoreFor(appID string) string {
	return storeFor(c.Store, appID)
}

func storeFor(store, appID string) string {
	switch {
	case strings.Contains(store, "://"):
		return store
	case strings.Contains(store, AppIDPlaceholder):
		return strings.ReplaceAll(store, AppIDPlaceholder, appID)
	case isDirStore(store):
		return filepath.Join(store, appID+".txt")
	}
	return store
}

// isDirStore reports whether a file store path names a directory: it ends
// in a separator or is an existing directory.
func isDirStore(store string) bool {
	if strings.HasSuffix(store, "/") || strings.HasSuffix(store, string(filepath.Separator)) {
		return true
	}
	fi, err := os.Stat(store)
	return err == nil && fi.IsDir()
}

// sharedFileStore reports whether store is one file that every app would
// share: neither a URL, nor a path with {app_id}, nor a directory.
func sharedFileStore(store string) bool {
	return !strings.Contains(store, "://") && !strings.Contains(store, AppIDPlaceholder) && !isDirStore(store)
}

// label names a in errors: its Name, its AppID, or its position "#n".
func (a App) label(i int) string {
	switch {
	case a.Name != "":
		return a.Name
	case a.AppID != "":
		return a.AppID
	case a.src != nil:
		return "#" + strconv.Itoa(a.src.n)
	}
	return "#" + strconv.Itoa(i+1)
}

// where describes a for an error about another app: `[[app]] "main"
// (line 3)`.
func (a App) where(i int) string {
	l := a.label(i)
	if !strings.HasPrefix(l, "#") {
		l = strconv.Quote(l)
	}
	if a.src != nil && a.src.line > 0 {
		return fmt.Sprintf("[[app]] %s (line %d)", l, a.src.line)
	}
	return "[[app]] " + l
}

// given reports whether the file gave the key x (a secret by any of its
// three keys), even if Load could not read its value.
func (a App) given(x string) bool {
	if a.src == nil {
		return false
	}
	_, ok := a.src.keys[x]
	return ok
}

// fileError returns err as a problem with a's key x: at x's line if the
// file gave it, else at the [[app]] header.
func (a App) fileError(path string, i int, x string, err error) *FileError {
	fe := &FileError{Path: path, Key: x, App: a.label(i), Err: err}
	if a.src != nil {
		fe.Path, fe.Line = a.src.path, a.src.line
		if k, ok := a.src.keys[x]; ok {
			fe.Key, fe.Line = k.name, k.line
		}
	}
	return fe
}

// validateApps checks the apps of a config file, and reports each
// problem as a *FileError at its line.
func (c Config) validateApps(apps []App) []error {
	var errs []error
	firstID, firstName, firstPath := map[string]int{}, map[string]int{}, map[string]int{}
	for i, a := range apps {
		bad := func(x, format string, args ...any) {
			errs = append(errs, a.fileError(c.ConfigFile, i, x, fmt.Errorf(format, args...)))
		}

		if a.given("name") && a.Name == "" {
			bad("name", "empty: leave name out to label the app with its app_id")
		}
		if strings.ContainsFunc(a.Name, unicode.IsControl) {
			bad("name", "%q contains control characters", a.Name)
		}
		if j, dup := firstName[a.Name]; dup && a.Name != "" && !(a.Name == a.AppID && apps[j].Name == apps[j].AppID) {
			bad("name", "%q is already the name of %s: give each app its own name", a.Name, apps[j].where(j))
		} else if !dup {
			firstName[a.Name] = i
		}
		if !a.Kind.valid() {
			bad("kind", "%q is none of %s, %s and %s", a.Kind, OfficialAccount, MiniProgram, MiniGame)
		}

		switch j, dup := firstID[a.AppID]; {
		case a.AppID == "":
			bad("app_id", "missing: every [[app]] needs the account's AppID")
		case strings.ContainsFunc(a.AppID, badIDRune):
			bad("app_id", "%q contains white space or punctuation no AppID has", a.AppID)
		case dup:
			bad("app_id", "%q is already the app_id of %s: list each account once", a.AppID, apps[j].where(j))
		default:
			firstID[a.AppID] = i
		}

		if a.Secret == "" && !a.given("secret") {
			bad("secret", "missing: give secret_env (a variable holding the AppSecret), secret_file, or secret in a file only its owner can read")
		}
		for _, s := range []struct {
			x string
			v Secret
		}{{"secret", a.Secret}, {"callback_token", a.CallbackToken}, {"previous_callback_token", a.PreviousCallbackToken}} {
			if s.v != "" && strings.TrimSpace(string(s.v)) != string(s.v) {
				bad(s.x, "has leading or trailing white space (a newline from a secret file?)")
			}
		}
		// An app from the file that leaves these out has the global ones,
		// which Validate checks as such.
		own := func(x string) bool { return a.src == nil || a.given(x) }
		if own("token_api") && a.TokenAPI != "token" && a.TokenAPI != "stable" {
			bad("token_api", "%q is neither token nor stable", a.TokenAPI)
		}
		if own("refresh_before") && (a.RefreshBefore < 0 || a.RefreshBefore >= 2*time.Hour) {
			bad("refresh_before", "%v is out of range: a token lives 2h, use e.g. 5m (0 for the default)", a.RefreshBefore)
		}

		hasCallbacks := a.CallbackPath != "" || a.given("callback_path")
		if hasCallbacks {
			if !strings.HasPrefix(a.CallbackPath, "/") || strings.ContainsAny(a.CallbackPath, "?# \t\r\n") {
				bad("callback_path", "%q is not a URL path: start it with / and leave out any query", a.CallbackPath)
			} else if j, dup := firstPath[a.CallbackPath]; dup {
				bad("callback_path", "%q is already the callback_path of %s: give each app its own", a.CallbackPath, apps[j].where(j))
			} else {
				firstPath[a.CallbackPath] = i
			}
			if a.CallbackToken == "" && !a.given("callback_token") {
				bad("callback_token", "missing: callback_path is set, so the app needs the callback token set on the platform: give callback_token_env, callback_token_file or callback_token")
			}
		}
		for _, s := range []struct {
			x string
			v Secret
		}{{"callback_token", a.CallbackToken}, {"previous_callback_token", a.PreviousCallbackToken}, {"encoding_aes_key", a.EncodingAESKey}, {"previous_encoding_aes_key", a.PreviousEncodingAESKey}} {
			if s.v != "" && !hasCallbacks {
				bad(s.x, "is set but callback_path is not: set the path of the app's callback URL too")
			}
		}
		if a.PreviousCallbackToken != "" && a.CallbackToken == "" && !a.given("callback_token") {
			bad("previous_callback_token", "is set but callback_token is not: set the new token too")
		}
		for _, k := range []struct {
			x string
			v Secret
		}{{"encoding_aes_key", a.EncodingAESKey}, {"previous_encoding_aes_key", a.PreviousEncodingAESKey}} {
			if err := checkAESKey(string(k.v)); k.v != "" && err != nil {
				bad(k.x, "%v", err)
			}
		}
		if a.PreviousEncodingAESKey != "" && a.EncodingAESKey == "" && !a.given("encoding_aes_key") {
			bad("previous_encoding_aes_key", "is set but encoding_aes_key is not: set the new key too")
		}
	}
	return errs
}
