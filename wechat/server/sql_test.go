package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/wechat/internal/sqltest"
	"github.com/wxcentral/wxcentral/wechat/sqlstore"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// Two servers ("hosts") of two apps on one PostgreSQL database share each
// app's token: the second adopts what the first fetched, one fetch per app.
func TestServeSQLStore(t *testing.T) {
	db := sqltest.Postgres(t)
	const otherID, otherSecret = "wx00000000000000c2", "sql-other-secret-0123456789"
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret), wechattest.WithApp(otherID, otherSecret))
	defer fake.Close()
	cfg := config.Default().WithApps(
		config.App{Name: "main", Kind: config.OfficialAccount, AppID: testAppID, Secret: testSecret, TokenAPI: "token"},
		config.App{Name: "other", Kind: config.OfficialAccount, AppID: otherID, Secret: otherSecret, TokenAPI: "token"},
	)
	cfg.APIBase, cfg.Store = fake.URL, db.URL()
	token := func(st *serveTest, id string) string {
		t.Helper()
		res, err := http.Get("http://" + st.admin + "/v1/apps/" + id + "/token")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var m struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(b, &m); res.StatusCode != 200 || err != nil || m.AccessToken == "" {
			t.Fatalf("GET /v1/apps/%s/token = %d %s", id, res.StatusCode, b)
		}
		return m.AccessToken
	}
	first := startServe(t, cfg, Options{})
	a, b := token(first, testAppID), token(first, otherID)
	if a == b {
		t.Fatal("two apps got the same token")
	}
	second := startServe(t, cfg, Options{})
	if got := token(second, testAppID); got != a {
		t.Errorf("the second host got %q for %s, want the stored %q", got, testAppID, a)
	}
	if got := token(second, otherID); got != b {
		t.Errorf("the second host got %q for %s, want the stored %q", got, otherID, b)
	}
	if n := fake.Stats().Fetches[wechattest.PathToken]; n != 2 {
		t.Errorf("%d token fetches for two apps on two hosts, want 2", n)
	}
}

// A server whose database is unreachable starts anyway, as with Redis:
// /healthz says 503 and why, the token route answers an error naming no
// password, and the keeper keeps trying.
func TestServeSQLStoreUnreachable(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret))
	defer fake.Close()
	cfg := serveConfig(t, fake.URL)
	cfg.Store = "postgres://wx:s3cret-db-password@127.0.0.1:1/wxcentral?connect_timeout=1"
	st := startServe(t, cfg, Options{})
	for _, path := range []string{"/healthz", "/v1/token"} {
		res, err := http.Get("http://" + st.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode < 500 || strings.Contains(string(b), "s3cret-db-password") {
			t.Errorf("GET %s with the database down = %d %s, want a 5xx without the password", path, res.StatusCode, b)
		}
	}
	if n := fake.Stats().Fetches[wechattest.PathToken]; n != 0 {
		t.Errorf("%d token fetches without the store's lock, want 0", n)
	}
}

// config and sqlstore agree on which values name a database store, so
// that Serve never hands sqlstore a URL it refuses, nor a file path.
func TestStoreSchemesAgree(t *testing.T) {
	for _, s := range []string{
		"mysql://h/db", "MYSQL://h/db", "mariadb://h/db", "postgres://h/db", "PostgreSQL://h/db",
		"redis://h:6379", "rediss+cluster://h:1", "wechat.txt", "tokens/", "mysql:h", "sqlite://x", "",
	} {
		if a, b := config.IsSQLStore(s), sqlstore.IsURL(s); a != b {
			t.Errorf("%q: config.IsSQLStore = %v, sqlstore.IsURL = %v", s, a, b)
		}
	}
}
