package central

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// browserPath finds Chromium (Debian's package chromium) or Chrome. Without
// one the test is skipped, or fails when CI=true.
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no chromium on PATH: the status page's browser test needs it (Debian: apt-get install chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; under CI=true it must run")
	}
	t.Skip(msg + "; skipped")
	return ""
}

// domApp is one app's card as the browser shows it.
type domApp struct {
	ID, State, Word, Name, LastError, Life, Timeline, Gateway string
	Used, Budget, Left, Hour, Marks                           int
}

// domState is what the page shows.
type domState struct {
	Stale, Conn, Summary string
	Marker               int
	Apps                 []domApp
}

// domExpr reads domState from the page.
const domExpr = `(() => {
  const conn = document.getElementById("conn");
  const num = (el, sel) => { const n = el.querySelector(sel); return n ? +n.textContent : -1; };
  const text = (el, sel) => { const n = el.querySelector(sel); return n ? n.textContent.trim() : ""; };
  return {
    Stale: conn.dataset.stale, Conn: conn.textContent.trim(),
    Summary: document.getElementById("summary").textContent.trim(), Marker: window.__loaded || 0,
    Apps: Array.from(document.querySelectorAll("article.app")).map(el => ({
      ID: el.dataset.appId, State: el.dataset.state, Word: text(el, ".state-word"), Name: text(el, "h2"),
      LastError: text(el, ".last-error"), Life: el.querySelector("svg.bar").getAttribute("aria-label"),
      Timeline: el.querySelector("svg.timeline").getAttribute("aria-label"), Gateway: text(el, ".gateway"),
      Used: num(el, ".q-used"), Budget: num(el, ".q-budget"), Left: num(el, ".q-left"), Hour: num(el, ".q-hour"),
      Marks: el.querySelectorAll("svg.timeline rect[class^='t-']").length,
    })),
  };
})()`

// The status page in a real browser: it shows every app with its state
// and the quota /v1/status gives; when the fake's clock passes the tokens'
// expiry and one app refreshes while another fails, the page follows
// without a reload; when the server stops it keeps the last data, marked
// stale. It is reachable by keyboard. Screenshots go to the test's
// artifact directory: run with -artifacts (and -outputdir) to keep them.
func TestStatusBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the status page's browser test starts chromium")
	}
	chrome := browserPath(t)
	e, apps := newFleetEnv(t, AdminOptions{})
	for _, app := range apps {
		if _, err := app.Keeper.Token(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	gw := prometheus.NewCounterVec(prometheus.CounterOpts{Name: gatewayFamily, Help: "test"}, []string{"app_id", "family", "outcome"})
	e.admin.Registry().MustRegister(gw)
	gw.WithLabelValues(apps[0].ID, "message", "ok").Add(41)
	gw.WithLabelValues(apps[0].ID, "menu", "token_retried").Add(1)
	gw.WithLabelValues(apps[1].ID, "message", "ok").Add(12)

	// Without Chromium's sandbox, which refuses to start as root and in
	// containers without user namespaces (CI); the browser loads only the
	// test's own page.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.WindowSize(1100, 900), chromedp.NoSandbox)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()
	// A browser sends Basic credentials it was given once; the test gives
	// them with every request.
	auth := basic("operator", testKey)
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
		return err
	})); err != nil {
		t.Fatalf("starting %s: %v", chrome, err)
	}
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(tctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	dom := func() domState {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := chromedp.Run(tctx, chromedp.Evaluate[domState](domExpr))
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		return s
	}
	// waitFor polls the page until the JavaScript cond holds.
	waitFor := func(what, cond string) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := chromedp.Run(tctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(20*time.Millisecond),
			chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			t.Fatalf("waiting for %s: %v\npage: %+v", what, err, dom())
		}
	}
	shot := func(name string) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		path := filepath.Join(t.ArtifactDir(), name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s (%d bytes)", path, len(png))
	}
	// sameAsJSON checks the page's apps against GET /v1/status.
	sameAsJSON := func(s domState) {
		t.Helper()
		st := e.statusOf(t)
		if len(s.Apps) != len(st.Apps) {
			t.Fatalf("the page shows %d apps, /v1/status %d", len(s.Apps), len(st.Apps))
		}
		for i, got := range s.Apps {
			want := st.Apps[i]
			if got.ID != want.AppID || got.Name != want.Name || got.State != want.State || got.Word != want.State {
				t.Errorf("app %d on the page: %s %q %s (%q), /v1/status: %s %q %s", i, got.ID, got.Name, got.State, got.Word,
					want.AppID, want.Name, want.State)
			}
			if got.Used != want.Quota.Used || got.Budget != want.Quota.Budget || got.Left != want.Quota.Left || got.Hour != want.Quota.HourUsed {
				t.Errorf("%s: the page's quota %d/%d, %d left, %d this hour; /v1/status: %+v", got.ID, got.Used, got.Budget, got.Left, got.Hour, want.Quota)
			}
		}
	}

	// First as the server draws it: with updates every 10 min, the page
	// is the server's until the pause button is pressed twice (resuming
	// updates at once).
	run("loading /status", chromedp.Navigate(e.srv.URL+"/status?every=10m"), chromedp.WaitVisible(chromedp.CSS("article.app")))
	s := dom()
	if s.Stale != "false" || !strings.HasPrefix(s.Conn, "Live") || !strings.HasPrefix(s.Summary, "3 apps: 3 fresh") {
		t.Errorf("the loaded page: connection %s %q, summary %q", s.Stale, s.Conn, s.Summary)
	}
	for i, app := range s.Apps {
		if app.ID != apps[i].ID || app.State != "fresh" || app.Marks != 1 || !strings.HasPrefix(app.Life, "Token life: 2h 0m left") ||
			!strings.Contains(app.Timeline, "1 fetched, 0 adopted, 0 failed") || app.LastError != "none" {
			t.Errorf("the loaded page's app %d: %+v", i, app)
		}
	}
	if g := s.Apps[0].Gateway; !strings.Contains(g, "ok 41") || !strings.Contains(g, "token_retried 1") {
		t.Errorf("the first app's gateway calls: %q", g)
	}
	sameAsJSON(s)
	// The script's update draws exactly what the server drew.
	cards := func() []string {
		t.Helper()
		html, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("article.app"), el =>
		  el.outerHTML.replace(/>\s+</g, "><").trim())`))
		if err != nil {
			t.Fatal(err)
		}
		return html
	}
	served := cards()
	if updated, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.body.dataset.updated !== undefined`)); updated {
		t.Fatal("the script updated the page before its 10 min were up")
	}
	run("pausing and resuming", chromedp.Click(chromedp.CSS("#pause")), chromedp.Click(chromedp.CSS("#pause")))
	waitFor("the update on resuming", `document.body.dataset.updated !== undefined`)
	if again := dom(); again.String() != s.String() {
		t.Errorf("the script draws the page otherwise than the server:\nserver %s\nscript %s", s, again)
	}
	for i, card := range cards() {
		if card != served[i] {
			t.Errorf("the script draws app %d otherwise than the server:\nserver %s\nscript %s", i, served[i], card)
		}
	}

	// Then updating itself every 100 ms.
	run("loading /status", chromedp.Navigate(e.srv.URL+"/status?every=100ms"),
		chromedp.WaitVisible(chromedp.CSS("article.app")),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[chromedp.Void](`window.__loaded = 1`)(ctx, t)
			return err
		}))
	waitFor("the first update", `document.body.dataset.updated !== undefined`)

	// A browser given the key once, as the password of the page's URL,
	// sends it with the page's own requests too.
	{
		tab, cancel := chromedp.NewContext(ctx) // a tab without the test's header
		u := strings.Replace(e.srv.URL, "http://", "http://operator:"+testKey+"@", 1) + "/status?every=100ms"
		tctx, cancelT := context.WithTimeout(tab, 20*time.Second)
		err := chromedp.Do(tctx, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS("article.app")),
			chromedp.Poll[chromedp.Void](`document.body.dataset.updated !== undefined`, chromedp.WithPollingTimeout(15*time.Second)))
		if err == nil {
			var stale string
			stale, err = chromedp.Run(tctx, chromedp.Evaluate[string](`document.getElementById("conn").dataset.stale`))
			if err == nil && stale != "false" {
				err = fmt.Errorf("the page is stale: its own requests were refused")
			}
		}
		cancelT()
		cancel()
		if err != nil {
			t.Errorf("the page opened with the key in its URL: %v", err)
		}
	}

	// Past the tokens' expiry every app turns invalid, without a reload.
	e.fake.Advance(2*time.Hour + time.Minute)
	waitFor("every app invalid", `Array.from(document.querySelectorAll("article.app")).every(el => el.dataset.state === "invalid")`)
	// The first app refreshes through the admin API; WeChat refuses the
	// second (errcode 40164, its IP is not whitelisted).
	if code, _, raw := e.do(t, "GET", "/v1/apps/"+apps[0].ID+"/token", testKey, "", ""); code != 200 {
		t.Fatalf("GET token = %d %s", code, raw)
	}
	e.fake.Fail("/cgi-bin/token", wechattest.Fault{Errcode: 40164})
	if _, err := apps[1].Keeper.Token(t.Context()); err == nil {
		t.Fatal("a fetch against a failing WeChat succeeded")
	}
	waitFor("the refresh and the failure", fmt.Sprintf(`(() => {
	  const a = document.getElementById("app-%s"), b = document.getElementById("app-%s");
	  return a.dataset.state === "fresh" && a.querySelector(".q-used").textContent === "2" &&
	    b.querySelector(".last-error").textContent.includes("40164");
	})()`, apps[0].ID, apps[1].ID))
	s = dom()
	if s.Marker != 1 {
		t.Fatal("the page was reloaded: it must update in place")
	}
	if !strings.HasPrefix(s.Summary, "3 apps: 1 fresh, 0 stale, 2 invalid; 1 app failing") {
		t.Errorf("summary %q", s.Summary)
	}
	if a := s.Apps[0]; a.Word != "fresh" || !strings.Contains(a.Timeline, "2 fetched") || a.Marks != 2 {
		t.Errorf("the refreshed app: %+v", a)
	}
	if b := s.Apps[1]; b.Word != "invalid" || !strings.Contains(b.Timeline, "1 failed") || b.Marks != 2 {
		t.Errorf("the failed app: %+v", b)
	}
	sameAsJSON(s)

	// Keyboard: Tab reaches the pause button, then the first app's card.
	run("tabbing", chromedp.KeyEvent(kb.Tab))
	if id, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`)); id != "pause" {
		t.Errorf("the first Tab focuses %q, want the pause button", id)
	}
	run("tabbing", chromedp.KeyEvent(kb.Tab))
	if id, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`)); id != "app-"+apps[0].ID {
		t.Errorf("the second Tab focuses %q, want the first app's card", id)
	}
	run("blurring", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`)(ctx, t)
		return err
	}))
	shot("status-page.png")

	// Dark, when the system is.
	media := func(scheme string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
			return err
		})
	}
	run("going dark", media("dark"))
	if bg, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`)); bg != "rgb(13, 17, 23)" {
		t.Errorf("the dark page's background is %q", bg)
	}
	shot("status-page-dark.png")
	run("going light", media("light"))

	// A phone's width: nothing wider than the screen.
	run("a phone's viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	waitFor("the narrow layout", `document.documentElement.scrollWidth <= window.innerWidth`)
	shot("status-page-phone.png")

	// The server stops: the page keeps its data and says it is stale.
	e.srv.CloseClientConnections()
	e.srv.Close()
	waitFor("the stale mark", `document.getElementById("conn").dataset.stale === "true"`)
	s = dom()
	if !strings.HasPrefix(s.Conn, "Stale") || s.Marker != 1 || len(s.Apps) != 3 || s.Apps[0].Used != 2 || s.Apps[0].State != "fresh" {
		t.Errorf("after the server stopped: %+v", s)
	}
	shot("status-page-stale.png")
}

// domState prints in a failure message.
func (s domState) String() string {
	b, _ := json.MarshalIndent(s, "", "  ")
	return string(b)
}
