package wechattest

import (
	"fmt"
	"strings"
)

// An App is an AppID and its AppSecret, as the fake-wechat command takes
// them: -app ID:SECRET.
type App struct {
	ID, Secret string
}

// ParseApp parses "ID:SECRET". Neither part may be empty or contain white
// space; the secret may contain ':'. Errors never repeat the secret.
func ParseApp(s string) (App, error) {
	id, secret, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return App{}, fmt.Errorf("app %q: want APPID:SECRET", redactApp(s))
	case id == "" || strings.ContainsAny(id, " \t\r\n"):
		return App{}, fmt.Errorf("app %q: the AppID must be non-empty, without spaces", redactApp(s))
	case secret == "" || strings.ContainsAny(secret, " \t\r\n"):
		return App{}, fmt.Errorf("app %q: the AppSecret must be non-empty, without spaces", id)
	}
	return App{ID: id, Secret: secret}, nil
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

// Apps collects repeated -app ID:SECRET flags; it is a flag.Value:
//
//	var apps wechattest.Apps
//	fs.Var(&apps, "app", "register an app, ID:SECRET (repeatable)")
//	p := wechattest.NewPlatform(apps.Options()...)
type Apps []App

// Set parses one ID:SECRET and appends it.
func (a *Apps) Set(s string) error {
	app, err := ParseApp(s)
	if err != nil {
		return err
	}
	*a = append(*a, app)
	return nil
}

// String lists the app IDs; secrets are left out.
func (a *Apps) String() string {
	if a == nil {
		return ""
	}
	ids := make([]string, len(*a))
	for i, app := range *a {
		ids[i] = app.ID
	}
	return strings.Join(ids, ",")
}

// Options returns a WithApp option per app.
func (a Apps) Options() []Option {
	opts := make([]Option, len(a))
	for i, app := range a {
		opts[i] = WithApp(app.ID, app.Secret)
	}
	return opts
}
