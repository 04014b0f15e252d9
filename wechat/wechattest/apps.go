package wechattest

import (
	"fmt"
	"strings"
)

// A Kind is the kind of account an app is. All kinds get their tokens the
// same way; they differ in what else the platform offers them.
type Kind string

// The account kinds.
const (
	// KindOfficialAccount (公众号) is the default: tokens, jsapi and
	// wx_card tickets, XML pushes.
	KindOfficialAccount Kind = "official_account"

	// KindMiniProgram (小程序) and KindMiniGame (小游戏) get the same tokens
	// but no tickets (getticket answers WithMiniTicketCode's errcode,
	// 48001 by default), and log users in with /sns/jscode2session. Their
	// pushes may be XML or JSON (Callback.Format).
	KindMiniProgram Kind = "mini_program"
	KindMiniGame    Kind = "mini_game"
)

// ParseKind parses the name of an account kind; "" means
// KindOfficialAccount.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case "":
		return KindOfficialAccount, nil
	case KindOfficialAccount, KindMiniProgram, KindMiniGame:
		return k, nil
	}
	return "", fmt.Errorf("unknown account kind %q: want %s, %s or %s", s, KindOfficialAccount, KindMiniProgram, KindMiniGame)
}

// mini reports whether k is a Mini Program or a Mini Game.
func (k Kind) mini() bool { return k == KindMiniProgram || k == KindMiniGame }

// An App is an AppID, its AppSecret and its kind, as the fake-wechat
// command takes them: -app ID:SECRET[:KIND].
type App struct {
	ID, Secret string

	// Kind is the account kind; "" means KindOfficialAccount.
	Kind Kind
}

// ParseApp parses "ID:SECRET" or "ID:SECRET:KIND", KIND being one of
// official_account, mini_program and mini_game. Neither the ID nor the
// secret may be empty or contain white space; the secret may contain ':'
// (a last part that names a kind is taken as the kind). Errors never
// repeat the secret.
func ParseApp(s string) (App, error) {
	id, secret, ok := strings.Cut(s, ":")
	kind := KindOfficialAccount
	if i := strings.LastIndexByte(secret, ':'); ok && i >= 0 {
		if k, err := ParseKind(secret[i+1:]); err == nil && secret[i+1:] != "" {
			secret, kind = secret[:i], k
		}
	}
	switch {
	case !ok:
		return App{}, fmt.Errorf("app %q: want APPID:SECRET[:KIND]", redactApp(s))
	case id == "" || strings.ContainsAny(id, " \t\r\n"):
		return App{}, fmt.Errorf("app %q: the AppID must be non-empty, without spaces", redactApp(s))
	case secret == "" || strings.ContainsAny(secret, " \t\r\n"):
		return App{}, fmt.Errorf("app %q: the AppSecret must be non-empty, without spaces", id)
	}
	return App{ID: id, Secret: secret, Kind: kind}, nil
}

// redactApp keeps what precedes the first ':' of s.
func redactApp(s string) string {
	if id, _, ok := strings.Cut(s, ":"); ok {
		return id + ":…"
	}
	if len(s) > 4 {
		return s[:4] + "…"
	}
	return s
}

// Apps collects repeated -app ID:SECRET[:KIND] flags; it is a flag.Value:
//
//	var apps wechattest.Apps
//	fs.Var(&apps, "app", "register an app, ID:SECRET[:KIND] (repeatable)")
//	p := wechattest.NewPlatform(apps.Options()...)
type Apps []App

// Set parses one ID:SECRET[:KIND] and appends it.
func (a *Apps) Set(s string) error {
	app, err := ParseApp(s)
	if err != nil {
		return err
	}
	*a = append(*a, app)
	return nil
}

// String lists the app IDs, with the kind of those that are not official
// accounts (wx1,wx2:mini_program); secrets are left out.
func (a *Apps) String() string {
	if a == nil {
		return ""
	}
	ids := make([]string, len(*a))
	for i, app := range *a {
		ids[i] = app.ID
		if app.Kind != "" && app.Kind != KindOfficialAccount {
			ids[i] += ":" + string(app.Kind)
		}
	}
	return strings.Join(ids, ",")
}

// Options returns a WithApp (or WithAppKind) option per app.
func (a Apps) Options() []Option {
	opts := make([]Option, len(a))
	for i, app := range a {
		opts[i] = WithAppKind(app.ID, app.Secret, app.Kind)
	}
	return opts
}
