package central

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// fleetApp is one account of newFleetEnv.
type fleetApp struct {
	id, secret, name string
	kind             wechattest.Kind
}

var fleetApps = []fleetApp{
	{"wx00000000000000a1", "secret-a1-0123456789abcdef", "main", wechattest.KindOfficialAccount},
	{"wx00000000000000a2", "secret-a2-0123456789abcdef", "test", wechattest.KindOfficialAccount},
	{"wx00000000000000b1", "secret-b1-0123456789abcdef", "shop", wechattest.KindMiniProgram},
}

// newFleetEnv is an Admin serving the three fleetApps, each with its own
// keeper and file store, on one fake WeChat.
func newFleetEnv(t testing.TB, o AdminOptions) (*adminEnv, []App) {
	t.Helper()
	opts := []wechattest.Option{wechattest.WithClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))}
	for _, a := range fleetApps {
		opts = append(opts, wechattest.WithAppKind(a.id, a.secret, a.kind))
	}
	fake := wechattest.NewServer(opts...)
	t.Cleanup(fake.Close)
	dir := t.TempDir()
	var apps []App
	for _, a := range fleetApps {
		store := wechat.NewFileStore(filepath.Join(dir, a.id+".txt"), nil)
		k, err := wechat.Open(t.Context(), wechat.Options{AppID: a.id, AppSecret: a.secret, APIBase: fake.URL,
			Clock: fake, Store: store, RetryBackoff: time.Millisecond, MaxAttempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(k.Close)
		apps = append(apps, App{ID: a.id, Name: a.name, Kind: config.AppKind(a.kind), Keeper: k, Store: store})
	}
	o.Key, o.Clock = testKey, fake
	a := NewAdmin(nil, o)
	if err := a.SetApps(apps); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &adminEnv{fake: fake, admin: a, srv: srv}, apps
}

// Each app answers on its own routes with its own token; the single-app
// routes name the per-app ones; an unknown app is 404; a Mini Program has
// no ticket; GET /v1/apps lists every app and never a token.
func TestAdminApps(t *testing.T) {
	e, apps := newFleetEnv(t, AdminOptions{})
	tokens := map[string]string{}
	for _, app := range apps {
		code, m, raw := e.do(t, "GET", "/v1/apps/"+app.ID+"/token", testKey, "", "")
		tok, _ := m["access_token"].(string)
		if code != 200 || tok == "" {
			t.Fatalf("%s: GET token = %d %s", app.ID, code, raw)
		}
		if got, err := app.Keeper.Token(t.Context()); err != nil || got.Value != tok {
			t.Fatalf("%s: the admin API answered %q, the keeper holds %q (%v)", app.ID, tok, got.Value, err)
		}
		for other, otherTok := range tokens {
			if otherTok == tok {
				t.Fatalf("%s and %s answered the same token", app.ID, other)
			}
		}
		tokens[app.ID] = tok
	}
	if n := e.fake.Stats().Fetches[wechattest.PathToken]; n != 3 {
		t.Errorf("%d token fetches for 3 apps, want 3", n)
	}

	code, m, raw := e.do(t, "GET", "/v1/token", testKey, "", "")
	if code != 400 || m["reason"] != ReasonBadRequest || !strings.Contains(m["error"].(string), "/v1/apps/{app_id}/token") {
		t.Errorf("GET /v1/token with 3 apps = %d %s, want 400 naming /v1/apps/{app_id}/token", code, raw)
	}
	code, m, raw = e.do(t, "POST", "/v1/token/refresh", testKey, "application/json", `{"stale":"x"}`)
	if code != 400 || !strings.Contains(m["error"].(string), "/v1/apps/{app_id}/token/refresh") {
		t.Errorf("POST /v1/token/refresh with 3 apps = %d %s, want 400 naming the per-app route", code, raw)
	}
	code, m, raw = e.do(t, "GET", "/v1/apps/wxnope/token", testKey, "", "")
	if code != 404 || m["reason"] != ReasonNotFound || !strings.Contains(m["error"].(string), `"wxnope"`) {
		t.Errorf("unknown app = %d %s, want 404 naming it", code, raw)
	}
	if code, _, _ := e.do(t, "GET", "/v1/apps/"+apps[0].ID+"/token", "-", "", ""); code != 401 {
		t.Errorf("per-app route without the key = %d, want 401", code)
	}

	mini := apps[2].ID
	for _, path := range []string{"/ticket/jsapi", "/jssdk/config?url=https%3A%2F%2Fexample.com%2F"} {
		code, m, raw := e.do(t, "GET", "/v1/apps/"+mini+path, testKey, "", "")
		if code != 400 || !strings.Contains(m["error"].(string), "mini_program") {
			t.Errorf("%s of a Mini Program = %d %s, want 400 saying it is a mini_program", path, code, raw)
		}
	}
	if n := e.fake.Stats().Fetches[wechattest.PathTicket]; n != 0 {
		t.Errorf("%d getticket calls after the refused Mini Program requests, want 0", n)
	}
	code, m, raw = e.do(t, "GET", "/v1/apps/"+apps[0].ID+"/ticket/jsapi", testKey, "", "")
	if code != 200 || m["ticket"] == "" {
		t.Errorf("an official account's ticket = %d %s", code, raw)
	}

	// The passive refresh of one app leaves the others alone.
	e.fake.Advance(time.Minute)
	code, m, raw = e.do(t, "POST", "/v1/apps/"+apps[1].ID+"/token/refresh", testKey, "application/json",
		fmt.Sprintf(`{"stale":%q}`, tokens[apps[1].ID]))
	if code != 200 || m["access_token"] == tokens[apps[1].ID] {
		t.Fatalf("passive refresh of %s = %d %s", apps[1].ID, code, raw)
	}
	for _, app := range []App{apps[0], apps[2]} {
		if _, m, _ := e.do(t, "GET", "/v1/apps/"+app.ID+"/token", testKey, "", ""); m["access_token"] != tokens[app.ID] {
			t.Errorf("%s's token changed with another app's refresh", app.ID)
		}
	}

	code, _, raw = e.do(t, "GET", "/v1/apps", testKey, "", "")
	var list appsJSON
	if err := json.Unmarshal([]byte(raw), &list); code != 200 || err != nil || len(list.Apps) != 3 {
		t.Fatalf("GET /v1/apps = %d %s (%v)", code, raw, err)
	}
	for i, got := range list.Apps {
		want := fleetApps[i]
		if got.AppID != want.id || got.Name != want.name || got.Kind != string(want.kind) || got.State != "fresh" ||
			!got.Healthy || got.ExpiresIn < 7100 || got.RefreshAt == "" || got.QuotaUsed == 0 {
			t.Errorf("GET /v1/apps[%d] = %+v, want %s %q %s, fresh with 7200 s left", i, got, want.id, want.name, want.kind)
		}
	}
	for id, tok := range tokens {
		if strings.Contains(raw, tok) {
			t.Errorf("GET /v1/apps shows %s's token", id)
		}
	}
	for _, a := range fleetApps {
		if strings.Contains(raw, a.secret) {
			t.Errorf("GET /v1/apps shows %s's secret", a.id)
		}
	}
	if code, _, _ := e.do(t, "GET", "/v1/apps", "-", "", ""); code != 401 {
		t.Errorf("GET /v1/apps without the key = %d, want 401", code)
	}
}

// With several apps /healthz is 200 while one holds a token, saying which
// do not; ?app_id= is one app's health; /metrics labels every app's
// series.
func TestAdminAppsHealthAndMetrics(t *testing.T) {
	e, apps := newFleetEnv(t, AdminOptions{})
	code, m, raw := e.do(t, "GET", "/healthz", "-", "", "")
	if code != 503 || m["status"] != "unavailable" || m["healthy"] != 0.0 {
		t.Errorf("/healthz before any token = %d %s, want 503", code, raw)
	}
	e.do(t, "GET", "/v1/apps/"+apps[0].ID+"/token", testKey, "", "")
	code, m, raw = e.do(t, "GET", "/healthz", "-", "", "")
	if code != 200 || m["status"] != "degraded" || m["healthy"] != 1.0 || !strings.Contains(raw, apps[2].ID) {
		t.Errorf("/healthz with one app of 3 healthy = %d %s, want 200 degraded naming the others", code, raw)
	}
	if code, m, raw := e.do(t, "GET", "/healthz?app_id="+apps[2].ID, "-", "", ""); code != 503 || m["state"] != "invalid" {
		t.Errorf("/healthz?app_id= of an app without a token = %d %s, want 503", code, raw)
	}
	if code, m, raw := e.do(t, "GET", "/healthz?app_id="+apps[0].ID, "-", "", ""); code != 200 || m["state"] != "fresh" {
		t.Errorf("/healthz?app_id= of an app with a token = %d %s, want 200", code, raw)
	}
	if code, _, _ := e.do(t, "GET", "/healthz?app_id=wxnope", "-", "", ""); code != 404 {
		t.Errorf("/healthz?app_id= of an unknown app = %d, want 404", code)
	}
	for _, app := range apps[1:] {
		e.do(t, "GET", "/v1/apps/"+app.ID+"/token", testKey, "", "")
	}
	if code, m, raw := e.do(t, "GET", "/healthz", "-", "", ""); code != 200 || m["status"] != "ok" || m["unhealthy"] != nil {
		t.Errorf("/healthz with every app healthy = %d %s", code, raw)
	}

	_, _, text := e.do(t, "GET", "/metrics", "-", "", "")
	for _, app := range apps {
		for _, want := range []string{
			fmt.Sprintf(`wxcentral_app_info{app_id=%q,kind=%q,name=%q} 1`, app.ID, app.Kind, app.Name),
			fmt.Sprintf(`wxcentral_token_fetches_total{app_id=%q,result="ok"} 1`, app.ID),
			fmt.Sprintf(`wxcentral_token_expiry_seconds{app_id=%q} 7200`, app.ID),
			fmt.Sprintf(`wxcentral_token_quota_used{app_id=%q} 1`, app.ID),
		} {
			if !strings.Contains(text, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	}
	if !strings.Contains(text, `wxcentral_admin_request_duration_seconds_count{code="200",route="/v1/apps/{app_id}/token"} 3`) {
		t.Error("the per-app route's latency is not measured under its template")
	}
}

// POST /v1/reload runs AdminOptions.Reload and answers the apps it set; a
// failed reload is 422 and keeps the apps; without Reload it is 404.
// SetApps refuses what it cannot serve and keeps what it served.
func TestAdminReload(t *testing.T) {
	var e *adminEnv
	var apps []App
	var fail error
	e, apps = newFleetEnv(t, AdminOptions{Reload: func(ctx context.Context) error {
		if fail != nil {
			return fail
		}
		return e.admin.SetApps(apps[:2])
	}})
	for _, app := range apps {
		e.admin.CallbackResultFor(app.ID)(httptest.NewRequest("GET", "/", nil), middleware.Result{Outcome: middleware.OutcomeEcho})
	}
	code, _, raw := e.do(t, "POST", "/v1/reload", testKey, "", "")
	var list appsJSON
	if err := json.Unmarshal([]byte(raw), &list); code != 200 || err != nil || len(list.Apps) != 2 {
		t.Fatalf("POST /v1/reload = %d %s, want the 2 apps left", code, raw)
	}
	if code, _, _ := e.do(t, "GET", "/v1/apps/"+apps[2].ID+"/token", testKey, "", ""); code != 404 {
		t.Errorf("a removed app's token = %d, want 404", code)
	}
	_, _, text := e.do(t, "GET", "/metrics", "-", "", "")
	if strings.Contains(text, `app_id="`+apps[2].ID+`"`) {
		t.Errorf("/metrics still has series of the removed app %s", apps[2].ID)
	}
	if !strings.Contains(text, `wxcentral_callback_checks_total{app_id="`+apps[0].ID+`",outcome="echo"} 1`) {
		t.Errorf("/metrics lost the callback count of the kept app %s", apps[0].ID)
	}
	fail = errors.New("wxcentral.toml:3: [[app]] #1: app_id: missing")
	code, m, raw := e.do(t, "POST", "/v1/reload", testKey, "", "")
	if code != 422 || m["reason"] != ReasonReloadRefused || !strings.Contains(raw, "wxcentral.toml:3") {
		t.Errorf("a failed reload = %d %s, want 422 reload_refused with the problem", code, raw)
	}
	if n := len(e.admin.Apps()); n != 2 {
		t.Errorf("%d apps after a failed reload, want the 2 kept", n)
	}
	if code, _, _ := e.do(t, "POST", "/v1/reload", "-", "", ""); code != 401 {
		t.Errorf("POST /v1/reload without the key = %d, want 401", code)
	}

	single := newAdminEnv(t)
	if code, m, _ := single.do(t, "POST", "/v1/reload", testKey, "", ""); code != 404 || !strings.Contains(m["error"].(string), "WECHAT_CONFIG") {
		t.Errorf("POST /v1/reload without Reload = %d %v, want 404 naming WECHAT_CONFIG", code, m)
	}
	// The single-app server's app has the keeper's AppID.
	if got := single.admin.Apps(); len(got) != 1 || got[0].ID != testAppID || got[0].Name != testAppID {
		t.Errorf("SetKeeper's app = %+v, want %s", got, testAppID)
	}
	if code, _, _ := single.do(t, "GET", "/v1/apps/"+testAppID+"/token", testKey, "", ""); code != 200 {
		t.Errorf("the single app's per-app route = %d, want 200", code)
	}

	k := apps[0].Keeper
	for _, bad := range [][]App{
		{{ID: "wx1", Keeper: k}, {ID: "wx1", Keeper: k}},
		{{ID: "wx1"}},
		{{ID: "wx1", Keeper: k, Kind: "service_account"}},
		{{ID: "wx1", Keeper: k}, {Keeper: k}},
	} {
		if err := e.admin.SetApps(bad); err == nil {
			t.Errorf("SetApps(%+v) accepted", bad)
		}
	}
	if n := len(e.admin.Apps()); n != 2 {
		t.Errorf("%d apps after refused SetApps, want the 2 kept", n)
	}
}

// A Remote picks its app with RemoteOptions.App, and refreshes that app's
// token only; without App, a server of several apps refuses it with the
// per-app route in the error.
func TestRemotePicksApp(t *testing.T) {
	e, apps := newFleetEnv(t, AdminOptions{})
	for _, app := range apps {
		r, err := wechat.NewRemote(e.srv.URL, testKey, wechat.RemoteOptions{App: app.ID, Clock: e.fake})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := r.AccessToken(t.Context())
		if err != nil {
			t.Fatalf("%s: %v", app.ID, err)
		}
		if held, _ := app.Keeper.Token(t.Context()); held.Value != tok {
			t.Errorf("%s: the Remote got %q, the keeper holds %q", app.ID, tok, held.Value)
		}
		e.fake.Advance(time.Minute)
		fresh, err := r.Refresh(t.Context(), tok)
		if err != nil || fresh == tok {
			t.Errorf("%s: Refresh(stale) = %q, %v; want a new token", app.ID, fresh, err)
		}
	}
	if n := e.fake.Stats().Fetches[wechattest.PathToken]; n != 6 {
		t.Errorf("%d token fetches, want 6 (one and one refresh per app)", n)
	}
	r, err := wechat.NewRemote(e.srv.URL, testKey, wechat.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AccessToken(t.Context()); err == nil || !strings.Contains(err.Error(), "/v1/apps/{app_id}/token") {
		t.Errorf("a Remote without App on 3 apps: %v, want the error naming /v1/apps/{app_id}/token", err)
	}
	for _, bad := range []string{"wx1/../x", "wx 1", "wx1?x=1"} {
		if _, err := wechat.NewRemote(e.srv.URL, testKey, wechat.RemoteOptions{App: bad}); err == nil {
			t.Errorf("NewRemote accepted App %q", bad)
		}
	}
}
