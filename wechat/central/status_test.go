package central

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// get sends GET path with the Authorization header auth ("" for none) and
// returns the status, the headers and the body.
func (e *adminEnv) get(t testing.TB, path, auth string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

// statusOf decodes GET /v1/status.
func (e *adminEnv) statusOf(t testing.TB) statusJSON {
	t.Helper()
	code, _, raw := e.get(t, "/v1/status", "Bearer "+testKey)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/status = %d %s", code, raw)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("GET /v1/status: %v in %s", err, raw)
	}
	return st
}

// basic is an Authorization header of HTTP Basic.
func basic(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// GET /v1/status has every app with its state, its token's times, its
// quota as /v1/apps and the Store count it, its refreshes, its last error
// and its store; the summary counts them; the gateway's counter shows when
// it is registered.
func TestStatusJSON(t *testing.T) {
	e, apps := newFleetEnv(t, AdminOptions{})
	// Two apps fetch; the third fails with WeChat's 40164 (IP whitelist).
	for _, app := range apps[:2] {
		if _, err := app.Keeper.Token(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	e.fake.Fail("/cgi-bin/token", wechattest.Fault{Errcode: 40164})
	if _, err := apps[2].Keeper.Token(t.Context()); err == nil {
		t.Fatal("a fetch against a failing WeChat succeeded")
	}

	st := e.statusOf(t)
	if st.Gateway {
		t.Error("gateway is true without the gateway's counter")
	}
	if want := (statusSummary{Apps: 3, Fresh: 2, Invalid: 1, Failing: 1}); st.Summary != want {
		t.Errorf("summary = %+v, want %+v", st.Summary, want)
	}
	if st.Now != e.fake.Now().UTC().Format(time.RFC3339) {
		t.Errorf("now = %s, want the Admin's clock %s", st.Now, e.fake.Now().UTC().Format(time.RFC3339))
	}
	var list appsJSON
	code, _, raw := e.get(t, "/v1/apps", "Bearer "+testKey)
	if err := json.Unmarshal([]byte(raw), &list); code != 200 || err != nil {
		t.Fatalf("GET /v1/apps = %d %s", code, raw)
	}
	if len(st.Apps) != len(apps) {
		t.Fatalf("%d apps, want %d", len(st.Apps), len(apps))
	}
	for i, got := range st.Apps {
		app, listed := apps[i], list.Apps[i]
		if got.AppID != app.ID || got.Name != app.Name || got.Kind != string(app.Kind) {
			t.Errorf("app %d = %s %q %s, want %s %q %s", i, got.AppID, got.Name, got.Kind, app.ID, app.Name, app.Kind)
		}
		if got.Quota.Used != listed.QuotaUsed || got.Quota.Budget != listed.QuotaBudget || got.Quota.Left != listed.QuotaBudget-listed.QuotaUsed {
			t.Errorf("%s: quota %+v, /v1/apps says %d of %d", app.ID, got.Quota, listed.QuotaUsed, listed.QuotaBudget)
		}
		if got.State != listed.State || got.ExpiresAt != listed.ExpiresAt || got.RefreshAt != listed.RefreshAt {
			t.Errorf("%s: state %s until %s (refresh %s), /v1/apps says %s until %s (refresh %s)", app.ID,
				got.State, got.ExpiresAt, got.RefreshAt, listed.State, listed.ExpiresAt, listed.RefreshAt)
		}
		if got.Quota.HourlyCap != 30 || got.Store.Status != "ok" || got.Store.Lock != "free" {
			t.Errorf("%s: hourly cap %d, store %+v; want 30, ok, free", app.ID, got.Quota.HourlyCap, got.Store)
		}
		if got.Gateway != nil {
			t.Errorf("%s: gateway %v without a gateway", app.ID, got.Gateway)
		}
		if len(got.Timeline) != 1 {
			t.Errorf("%s: timeline %+v, want one slot", app.ID, got.Timeline)
			continue
		}
		slot := got.Timeline[0]
		if i < 2 {
			if got.State != "fresh" || got.Quota.Used != 1 || got.Quota.HourUsed != 1 || slot.Fetched != 1 || slot.Failed != 0 || got.LastError != "" {
				t.Errorf("%s: %+v, want fresh, 1 fetch today and this hour, no error", app.ID, got)
			}
			if got.Lifetime != 7200 || got.ExpiresIn != 7200 || got.RefreshIn <= 0 || got.RefreshIn >= 7200 {
				t.Errorf("%s: lifetime %d, expires in %d, refresh in %d", app.ID, got.Lifetime, got.ExpiresIn, got.RefreshIn)
			}
			continue
		}
		if got.State != "invalid" || got.Healthy || slot.Failed != 1 || slot.Errcode != 40164 ||
			!strings.Contains(got.LastError, "40164") || got.LastErrorAt != st.Now || got.CooldownUntil == "" {
			t.Errorf("%s: %+v, want invalid with the failure 40164 and a cooldown", app.ID, got)
		}
	}

	// The gateway's counter, once registered, is counted per app.
	gw := prometheus.NewCounterVec(prometheus.CounterOpts{Name: gatewayFamily, Help: "test"}, []string{"app_id", "family", "outcome"})
	e.admin.Registry().MustRegister(gw)
	gw.WithLabelValues(apps[0].ID, "message", "ok").Add(5)
	gw.WithLabelValues(apps[0].ID, "menu", "ok").Add(2)
	gw.WithLabelValues(apps[0].ID, "menu", "errcode").Inc()
	gw.WithLabelValues(apps[1].ID, "message", "upstream_error").Add(3)
	st = e.statusOf(t)
	if !st.Gateway {
		t.Fatal("gateway is false with the gateway's counter registered")
	}
	want := []map[string]int64{{"ok": 7, "errcode": 1}, {"upstream_error": 3}, {}}
	for i, app := range st.Apps {
		if !mapsEqual(app.Gateway, want[i]) {
			t.Errorf("%s: gateway %v, want %v", app.AppID, app.Gateway, want[i])
		}
	}
	code, _, page := e.get(t, "/status", basic("ops", testKey))
	if code != 200 || !strings.Contains(page, `<span class="gw gw-ok">ok <b>7</b></span>`) ||
		!strings.Contains(page, `gw-upstream_error">upstream_error <b>3</b>`) {
		t.Errorf("the page does not show the gateway's counts: %d\n%s", code, page)
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) || a == nil || b == nil {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// The page is server-rendered: every app with its state in words, its
// quota and its timeline, the CSS and script inline under a
// Content-Security-Policy that allows nothing else; ?every= sets the
// refresh interval.
func TestStatusPage(t *testing.T) {
	e, apps := newFleetEnv(t, AdminOptions{})
	for _, app := range apps {
		if _, err := app.Keeper.Token(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	code, h, page := e.get(t, "/status?every=250ms", basic("", testKey))
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /status = %d %s", code, h.Get("Content-Type"))
	}
	for _, want := range []string{`data-every="250"`, `<h1>wxcentral status</h1>`, "3 apps: ", `<span class="state-word">fresh</span>`,
		`role="meter"`, `aria-label="Quota: 1 of 2000 fetches used today"`, `class="t-fetched"`, "Mini Program", "<script>", "<style>"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, app := range apps {
		if !strings.Contains(page, `id="app-`+app.ID+`"`) || !strings.Contains(page, ">"+app.Name+"</h2>") {
			t.Errorf("the page lacks app %s (%s)", app.ID, app.Name)
		}
	}
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'sha256-") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	if !strings.Contains(page, "<script>"+statusJS+"</script>") || !strings.Contains(page, "<style>"+statusCSS+"</style>") {
		t.Error("the inline script or style differs from the file its CSP hash is of")
	}
	for _, bad := range []string{"http://", "https://", " src=", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q: it must need nothing but itself", bad)
		}
	}
	if code, _, _ := e.get(t, "/status?every=soon", basic("", testKey)); code != 400 {
		t.Errorf("?every=soon = %d, want 400", code)
	}
}

// HTTP Basic with the key as the password (any user name) opens /status
// and /v1/status, and no other route; the bearer key still works; a
// wrong or missing key is 401 with a Basic challenge.
func TestStatusAuth(t *testing.T) {
	e, apps := newFleetEnv(t, AdminOptions{})
	if _, err := apps[0].Keeper.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, auth string
		want       int
		challenge  string // the start of WWW-Authenticate on 401
	}{
		{"/status", basic("ops", testKey), 200, ""},
		{"/status", basic("", testKey), 200, ""},
		{"/status", basic("anyone at all", testKey), 200, ""},
		{"/status", "Bearer " + testKey, 200, ""},
		{"/v1/status", basic("ops", testKey), 200, ""},
		{"/v1/status", "Bearer " + testKey, 200, ""},
		{"/status", "", 401, "Basic "},
		{"/status", basic("ops", "wrong"), 401, "Basic "},
		{"/status", basic(testKey, ""), 401, "Basic "}, // the key as the user name is not the password
		{"/v1/status", basic("ops", testKey+"x"), 401, "Basic "},
		{"/v1/status", "", 401, "Basic "},
		{"/status", "Bearer wrong", 401, "Bearer "},
		{"/v1/apps/" + apps[0].ID + "/token", basic("ops", testKey), 401, "Bearer "},
		{"/v1/token", basic("ops", testKey), 401, "Bearer "},
		{"/v1/apps", basic("ops", testKey), 401, "Bearer "},
	}
	for _, tt := range tests {
		code, h, body := e.get(t, tt.path, tt.auth)
		if code != tt.want {
			t.Errorf("%s with %q = %d, want %d: %s", tt.path, tt.auth, code, tt.want, body)
			continue
		}
		if code == 401 {
			if c := h.Get("WWW-Authenticate"); !strings.HasPrefix(c, tt.challenge) {
				t.Errorf("%s with %q: WWW-Authenticate %q, want %s…", tt.path, tt.auth, c, tt.challenge)
			}
			if strings.Contains(body, testKey) {
				t.Errorf("%s: the refusal holds the key", tt.path)
			}
		}
	}

	// Without a key the page is open to loopback Hosts only, as /v1/ is.
	open := &adminEnv{fake: e.fake, admin: NewAdmin(nil, AdminOptions{Clock: e.fake})}
	if err := open.admin.SetApps(apps); err != nil {
		t.Fatal(err)
	}
	open.srv = httptest.NewServer(open.admin)
	defer open.srv.Close()
	if code, _, _ := open.get(t, "/status", ""); code != 200 {
		t.Errorf("a key-less /status = %d, want 200", code)
	}
	req, _ := http.NewRequest(http.MethodGet, open.srv.URL+"/status", nil)
	req.Host = "rebind.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a key-less /status for Host rebind.example = %d, want 403", resp.StatusCode)
	}
}

// Neither the page nor its JSON ever holds a token, a ticket or a secret,
// whatever the apps' state.
func TestStatusNoSecrets(t *testing.T) {
	e, apps := newFleetEnv(t, AdminOptions{})
	secrets := []string{testKey}
	for _, a := range fleetApps {
		secrets = append(secrets, a.secret)
	}
	for _, app := range apps {
		c, err := app.Keeper.Token(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, c.Value)
		if app.Kind == config.OfficialAccount {
			tk, err := app.Keeper.JSAPITicket(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			secrets = append(secrets, tk.Value)
		}
	}
	// A passive refresh naming the current token and failed ones (forced;
	// passive, against an error page quoting a token) leave their marks in
	// the last error and the timeline.
	e.fake.Advance(time.Minute)
	if _, err := apps[0].Keeper.Refresh(t.Context(), secrets[len(fleetApps)+1]); err != nil {
		t.Fatal(err)
	}
	if c, err := apps[0].Keeper.Token(t.Context()); err == nil {
		secrets = append(secrets, c.Value)
	}
	e.fake.Fail("/cgi-bin/token", wechattest.Fault{Errcode: 40001})
	if k, ok := apps[1].Keeper.(*wechat.Wechat); ok {
		_, _ = k.ForceRefresh(t.Context())
	}
	e.fake.Advance(time.Minute)
	e.fake.Fail("/cgi-bin/token", wechattest.Fault{Status: 502, Body: "<html>bad gateway " + secrets[len(secrets)-1] + "</html>"})
	if _, err := apps[2].Keeper.Refresh(t.Context(), secrets[len(secrets)-2]); err == nil {
		t.Fatal("a passive refresh against a failing WeChat succeeded")
	}
	_, _, page := e.get(t, "/status", basic("ops", testKey))
	_, _, data := e.get(t, "/v1/status", "Bearer "+testKey)
	if !strings.Contains(page, apps[0].ID) || !strings.Contains(data, apps[0].ID) {
		t.Fatal("the page or its data lacks the apps: the test would prove nothing")
	}
	for _, s := range secrets {
		if len(s) < 8 {
			t.Fatalf("secret %q is too short to grep for", s)
		}
		if strings.Contains(page, s) {
			t.Errorf("the page holds a secret or credential %.4s…", s)
		}
		if strings.Contains(data, s) {
			t.Errorf("/v1/status holds a secret or credential %.4s…", s)
		}
	}
}

// BenchmarkStatusData measures one answer of GET /v1/status for three
// apps on file stores (each app's Status reads its store).
func BenchmarkStatusData(b *testing.B) {
	e, apps := newFleetEnv(b, AdminOptions{})
	for _, app := range apps {
		if _, err := app.Keeper.Token(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if st := e.admin.statusData(b.Context()); len(st.Apps) != 3 {
			b.Fatal(len(st.Apps))
		}
	}
}
