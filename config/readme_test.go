package config

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// The README's example config file loads and validates as it says: three
// apps of the kinds it names, secrets from the environment and from
// files next to it, one file per app in the store directory.
func TestReadmeConfigFile(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```toml\n(# wxcentral.toml.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no ```toml block starting with # wxcentral.toml")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "wxcentral.toml")
	if err := os.WriteFile(file, m[1], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"test": "test-app-secret\n", "test-callback": "test-callback-token\n"} {
		if err := os.WriteFile(filepath.Join(dir, "secrets", name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"WECHAT_CONFIG":          file,
		"WECHAT_ADMIN_KEY":       "readme-admin-key-0123456789",
		"WX_MAIN_SECRET":         "main-app-secret",
		"WX_MAIN_CALLBACK_TOKEN": "main-callback-token",
		"WX_MAIN_AES_KEY":        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		"WX_SHOP_SECRET":         "shop-app-secret",
		"WX_SHOP_CALLBACK_TOKEN": "shop-callback-token",
		"WX_SHOP_AES_KEY":        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg",
	}
	c, err := Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := c.Validate(NeedCallback | NeedKeeper | NeedAdmin); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	apps := c.Apps()
	want := []struct {
		name  string
		kind  AppKind
		path  string
		token Secret
	}{
		{"main", OfficialAccount, "/wechat/main", "main-callback-token"},
		{"test", OfficialAccount, "/wechat/test", "test-callback-token"},
		{"shop", MiniProgram, "/wechat/shop", "shop-callback-token"},
	}
	if len(apps) != len(want) {
		t.Fatalf("%d apps, want %d", len(apps), len(want))
	}
	for i, w := range want {
		a := apps[i]
		if a.Name != w.name || a.Kind != w.kind || a.CallbackPath != w.path || a.CallbackToken != w.token || a.Secret == "" {
			t.Errorf("app %d = %v, want %s, %s at %s", i, a, w.name, w.kind, w.path)
		}
	}
	if apps[1].Secret != "test-app-secret" {
		t.Error("the test app's secret_file, relative to the config file, was not read")
	}
	if got, want := c.StoreFor(apps[0].AppID), "/var/lib/wxcentral/tokens/"+apps[0].AppID+".txt"; got != want {
		t.Errorf("StoreFor = %q, want %q", got, want)
	}
	if c.AdminListen != "10.0.0.5:3101" || c.AdminKey == "" || apps[0].TokenAPI != "stable" || apps[1].TokenAPI != "token" {
		t.Errorf("globals: admin %q key set %v, token APIs %q %q", c.AdminListen, c.AdminKey != "", apps[0].TokenAPI, apps[1].TokenAPI)
	}
}
