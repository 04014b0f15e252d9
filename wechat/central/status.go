package central

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/wechat"
)

// The status page: GET /status is one HTML page, its CSS and JavaScript
// inline, that shows every app's token, quota, refreshes and failures
// and updates itself from GET /v1/status, the same data as JSON. Both are
// built from the keepers' Stats, Status and RefreshHistory and the
// Registry's gateway counter, never from a credential: no token, ticket
// or secret can reach them.

var (
	//go:embed status.html
	statusHTML string
	//go:embed status.css
	statusCSS string
	//go:embed status.js
	statusJS string

	statusTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
		"dur":      humanDuration,
		"pct":      percent,
		"barWidth": barWidth,
		"clock":    clockTime,
		"kindName": kindName,
		"plural":   plural,
	}).Parse(statusHTML))

	// statusCSP allows the page's own inline style and script, by hash,
	// and requests to its own origin; nothing else (no external assets,
	// no framing).
	statusCSP = "default-src 'none'; style-src '" + cspHash(statusCSS) + "'; script-src '" + cspHash(statusJS) +
		"'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

// cspHash is the Content-Security-Policy source of an inline element
// whose text is s.
func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// The page's refresh interval: ?every= (a Go duration) within these
// bounds, default statusEvery.
const (
	statusEvery    = 5 * time.Second
	statusEveryMin = 100 * time.Millisecond
	statusEveryMax = 10 * time.Minute
)

// statusParallel bounds the keepers' Status calls (each may read the
// Store) made at once for one answer.
const statusParallel = 16

// statusTimeout bounds the Store reads of one answer.
const statusTimeout = 3 * time.Second

// gatewayFamily is the metric family the gateway registers on the
// Registry; the page shows its counts per app when it exists.
const gatewayFamily = "wxcentral_gateway_calls_total"

// statusJSON is the answer of GET /v1/status and the data of the page.
// It never holds a credential.
type statusJSON struct {
	Now     string          `json:"now"`     // the server's clock
	Since   string          `json:"since"`   // the start of the timelines, 24 h before the end of Now's slot
	Gateway bool            `json:"gateway"` // the gateway's counter exists
	Summary statusSummary   `json:"summary"` //
	Apps    []appStatusJSON `json:"apps"`
}

// statusSummary counts the apps by state.
type statusSummary struct {
	Apps    int `json:"apps"`
	Fresh   int `json:"fresh"`
	Stale   int `json:"stale"`
	Invalid int `json:"invalid"`
	Failing int `json:"failing"` // apps whose last refresh failed
}

// appStatusJSON is one app of statusJSON.
type appStatusJSON struct {
	AppID   string `json:"app_id"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	State   string `json:"state"` // fresh, stale or invalid
	Healthy bool   `json:"healthy"`

	FetchedAt string `json:"fetched_at,omitempty"`
	ExpiresAt string `json:"expires_at,omitempty"`
	ExpiresIn int64  `json:"expires_in"` // seconds left
	Lifetime  int64  `json:"lifetime"`   // seconds from fetch to expiry
	RefreshAt string `json:"refresh_at,omitempty"`
	RefreshIn int64  `json:"refresh_in"` // seconds until the planned refresh; 0 when due

	Quota quotaJSON `json:"quota"`

	LastRefresh   string `json:"last_refresh,omitempty"`
	LastError     string `json:"last_error,omitempty"`
	LastErrorAt   string `json:"last_error_at,omitempty"`
	CooldownUntil string `json:"cooldown_until,omitempty"`

	Store storeJSON `json:"store"`

	Timeline []slotJSON `json:"timeline"`
	// Gateway counts the gateway's calls for the app by outcome; null
	// without a gateway.
	Gateway map[string]int64 `json:"gateway"`
}

// quotaJSON is an app's fetch quota.
type quotaJSON struct {
	Day    string `json:"day"` // the Beijing-time day counted
	Used   int    `json:"used"`
	Budget int    `json:"budget"`
	Left   int    `json:"left"`
	// HourUsed is the tokens issued this Beijing hour, as the Store counts
	// them; -1 when unknown.
	HourUsed  int `json:"hour_used"`
	HourlyCap int `json:"hourly_cap"` // 0: no cap
}

// storeJSON is the health of an app's Store.
type storeJSON struct {
	Status          string `json:"status"` // ok or unreachable
	Lock            string `json:"lock"`   // free, or waiting: a refresh waits for another holder
	LockWaitSince   string `json:"lock_wait_since,omitempty"`
	LockWaitSeconds int64  `json:"lock_wait_seconds,omitempty"`
}

// slotJSON is one wechat.RefreshSlot.
type slotJSON struct {
	Start   string `json:"start"`
	Fetched int    `json:"fetched"`
	Adopted int    `json:"adopted"`
	Failed  int    `json:"failed"`
	Errcode int    `json:"errcode,omitempty"`
}

// historian is a Keeper with a refresh history, as *wechat.Wechat is.
type historian interface {
	RefreshHistory() wechat.RefreshHistory
}

// statusData gathers the status of every app: their Status calls run at
// once, at most statusParallel of them, within statusTimeout.
func (a *Admin) statusData(ctx context.Context) statusJSON {
	set := a.apps.Load()
	now := a.clock.Now()
	// The timelines end with the slot of now, drawn whole.
	end := now.Truncate(wechat.HistorySlot).Add(wechat.HistorySlot)
	out := statusJSON{Now: rfc3339(now), Since: rfc3339(end.Add(-24 * time.Hour)), Apps: make([]appStatusJSON, len(set.list))}
	gw, hasGW := a.gatewayCounts()
	out.Gateway = hasGW
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	sem := make(chan struct{}, statusParallel)
	var wg sync.WaitGroup
	for i, app := range set.list {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out.Apps[i] = appStatus(ctx, app, now)
			if hasGW {
				out.Apps[i].Gateway = gw[app.ID]
				if out.Apps[i].Gateway == nil {
					out.Apps[i].Gateway = map[string]int64{}
				}
			}
		})
	}
	wg.Wait()
	out.Summary.Apps = len(out.Apps)
	for _, s := range out.Apps {
		switch wechat.TokenState(s.State) {
		case wechat.StateFresh:
			out.Summary.Fresh++
		case wechat.StateStale:
			out.Summary.Stale++
		default:
			out.Summary.Invalid++
		}
		if s.LastError != "" {
			out.Summary.Failing++
		}
	}
	return out
}

// appStatus is one app's entry of statusData at now.
func appStatus(ctx context.Context, app *App, now time.Time) appStatusJSON {
	k := app.Keeper
	st := k.Status(ctx)
	stats := k.Stats()
	out := appStatusJSON{AppID: app.ID, Name: app.Name, Kind: string(app.kind()), State: string(st.State), Healthy: st.Healthy,
		LastRefresh: rfc3339(st.LastRefresh), LastError: st.LastError, CooldownUntil: rfc3339(st.CooldownUntil),
		Timeline: []slotJSON{}}
	if st.LastError != "" {
		out.LastErrorAt = rfc3339(st.LastErrorAt)
	}
	if !st.ExpiresAt.IsZero() {
		out.FetchedAt, out.ExpiresAt, out.RefreshAt = rfc3339(st.FetchedAt), rfc3339(st.ExpiresAt), rfc3339(st.StaleAt)
		out.ExpiresIn = max(int64(st.ExpiresAt.Sub(now)/time.Second), 0)
		out.RefreshIn = max(int64(st.StaleAt.Sub(now)/time.Second), 0)
		if !st.FetchedAt.IsZero() {
			out.Lifetime = max(int64(st.ExpiresAt.Sub(st.FetchedAt)/time.Second), 0)
		}
	}

	q := quotaJSON{Day: wechat.QuotaDay(now), Used: st.QuotaUsed, Budget: st.QuotaBudget, HourUsed: -1}
	if !st.StoreReachable && stats.QuotaDay == q.Day {
		q.Used = stats.QuotaUsed // as last seen
	}
	q.Left = max(q.Budget-q.Used, 0)
	if h, ok := k.(historian); ok {
		hist := h.RefreshHistory()
		q.HourlyCap = hist.HourlyCap
		if app.Store != nil {
			if n, err := app.Store.Count(ctx, wechat.HourCounter(hist.API, now)); err == nil {
				q.HourUsed = n
			}
		}
		for _, s := range hist.Slots {
			out.Timeline = append(out.Timeline, slotJSON{Start: rfc3339(s.Start), Fetched: s.Fetched,
				Adopted: s.Adopted, Failed: s.Failed, Errcode: s.Errcode})
		}
	}
	out.Quota = q

	out.Store = storeJSON{Status: "ok", Lock: "free"}
	if !st.StoreReachable {
		out.Store.Status = "unreachable"
	}
	if !st.LockWaitSince.IsZero() {
		out.Store.Lock = "waiting"
		out.Store.LockWaitSince = rfc3339(st.LockWaitSince)
		out.Store.LockWaitSeconds = int64(max(now.Sub(st.LockWaitSince), 0) / time.Second)
	}
	return out
}

// gatewayCounts gathers the gateway's calls by app and outcome from the
// Registry, and reports whether the gateway's counter is registered.
func (a *Admin) gatewayCounts() (map[string]map[string]int64, bool) {
	fams, _ := a.Registry().Gather() // a failing collector elsewhere must not hide the rest
	for _, f := range fams {
		if f.GetName() != gatewayFamily {
			continue
		}
		out := map[string]map[string]int64{}
		for _, m := range f.GetMetric() {
			var app, outcome string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "app_id":
					app = l.GetValue()
				case "outcome":
					outcome = l.GetValue()
				}
			}
			if out[app] == nil {
				out[app] = map[string]int64{}
			}
			out[app][outcome] += int64(m.GetCounter().GetValue())
		}
		return out, true
	}
	return nil, false
}

// serveStatusJSON answers GET /v1/status.
func (a *Admin) serveStatusJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	writeJSON(w, http.StatusOK, a.statusData(r.Context()))
}

// statusPage is the data of the page's template.
type statusPage struct {
	statusJSON
	Views   []appView
	EveryMS int64
	CSS     template.CSS
	JS      template.JS
}

// appView is an app's card on the page.
type appView struct {
	appStatusJSON
	Marks       []timelineMark
	Totals      string
	ShowGateway bool
	GatewayList []gatewayCount
}

// gatewayCount is one outcome of an app's gateway calls.
type gatewayCount struct {
	Outcome string
	N       int64
}

// gatewayOutcomes are the gateway's outcomes in the order shown; others
// follow, sorted.
var gatewayOutcomes = []string{"ok", "errcode", "token_retried", "refused", "upstream_error"}

// newStatusPage is the page of data.
func newStatusPage(data statusJSON, every time.Duration) statusPage {
	p := statusPage{statusJSON: data, EveryMS: every.Milliseconds(), CSS: template.CSS(statusCSS), JS: template.JS(statusJS)}
	for _, s := range data.Apps {
		v := appView{appStatusJSON: s, Marks: timelineMarks(s, data.Since), Totals: timelineTotals(s), ShowGateway: data.Gateway}
		for _, o := range gatewayOutcomes {
			if n, ok := s.Gateway[o]; ok {
				v.GatewayList = append(v.GatewayList, gatewayCount{o, n})
			}
		}
		for _, o := range slices.Sorted(maps.Keys(s.Gateway)) {
			if !slices.Contains(gatewayOutcomes, o) {
				v.GatewayList = append(v.GatewayList, gatewayCount{o, s.Gateway[o]})
			}
		}
		p.Views = append(p.Views, v)
	}
	return p
}

// serveStatusPage answers GET /status.
func (a *Admin) serveStatusPage(w http.ResponseWriter, r *http.Request) {
	every := statusEvery
	if s := r.URL.Query().Get("every"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			a.fail(w, r, http.StatusBadRequest, errors.New("every must be a duration such as 5s or 500ms"))
			return
		}
		every = min(max(d, statusEveryMin), statusEveryMax)
	}
	var b bytes.Buffer
	err := statusTmpl.Execute(&b, newStatusPage(a.statusData(r.Context()), every))
	if err != nil {
		a.log.Error("central: rendering the status page failed", "err", err)
		a.fail(w, r, http.StatusInternalServerError, errors.New("rendering the status page failed"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", statusCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	_, _ = w.Write(b.Bytes())
}

// authorizePage is authorize for the status page and its data: with a
// key, HTTP Basic with the key as the password (any user name) is
// accepted too, since a browser cannot send a bearer header; the key is
// compared in constant time either way. A refused request is answered 401
// with a Basic challenge, so that a browser asks for the key.
func (a *Admin) authorizePage(next http.HandlerFunc) http.HandlerFunc {
	bearer := a.authorize(next)
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.hasKey {
			next(w, r)
			return
		}
		h := r.Header.Get("Authorization")
		scheme, _, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") {
			bearer.ServeHTTP(w, r)
			return
		}
		if _, pass, ok := r.BasicAuth(); ok && a.keyMatches(pass) {
			next(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="wxcentral admin", charset="UTF-8"`)
		msg := "the admin key is missing: give any user name and WECHAT_ADMIN_KEY as the password, or send Authorization: Bearer <WECHAT_ADMIN_KEY>"
		if h != "" {
			msg = "the admin key is wrong: give any user name and WECHAT_ADMIN_KEY as the password, or send Authorization: Bearer <WECHAT_ADMIN_KEY>"
		}
		a.fail(w, r, http.StatusUnauthorized, errors.New(msg))
	}
}

// keyMatches compares key with the admin key in constant time.
func (a *Admin) keyMatches(key string) bool {
	sum := sha256.Sum256([]byte(key))
	return subtle.ConstantTimeCompare(sum[:], a.key[:]) == 1
}

// rfc3339 formats t in UTC, "" for the zero time.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// humanDuration writes secs as people read a time left: "1h 52m",
// "4m 10s", "9s". status.js's dur is the same.
func humanDuration(secs int64) string {
	switch {
	case secs <= 0:
		return "0s"
	case secs >= 3600:
		return strconv.FormatInt(secs/3600, 10) + "h " + strconv.FormatInt(secs%3600/60, 10) + "m"
	case secs >= 60:
		return strconv.FormatInt(secs/60, 10) + "m " + strconv.FormatInt(secs%60, 10) + "s"
	}
	return strconv.FormatInt(secs, 10) + "s"
}

// percent is part of whole in percent, within 0–100, with one decimal.
func percent(part, whole any) string {
	p, q := toFloat(part), toFloat(whole)
	if q <= 0 {
		return "0"
	}
	v := min(max(p/q*100, 0), 100)
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// barWidth is the width in percent of a bar of used of whole, never
// too thin to see when any is used. status.js's barWidth is the same.
func barWidth(used, whole int) string {
	p := percent(used, whole)
	if v, _ := strconv.ParseFloat(p, 64); used > 0 && v < 0.8 {
		return "0.8"
	}
	return p
}

func toFloat(v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case float64:
		return v
	}
	return 0
}

// clockTime is the hour and minute of an RFC 3339 time, in UTC.
func clockTime(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return ""
	}
	return t.UTC().Format("15:04") + " UTC"
}

// kindName is an app kind as people say it.
func kindName(k string) string {
	switch config.AppKind(k) {
	case config.MiniProgram:
		return "Mini Program"
	case config.MiniGame:
		return "Mini Game"
	case config.OfficialAccount:
		return "Official Account"
	}
	return k
}

// plural is n and word, with an s unless n is 1.
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// A timelineMark is one mark of an app's 24-hour timeline: the SVG is
// 1440 units wide (one a minute, since statusJSON.Since), with a lane
// per outcome. status.js's marks draws the same.
type timelineMark struct {
	X, Y  int
	Class string // t-fetched, t-adopted or t-failed
	Title string
}

// The lanes of the timeline, top to bottom.
var timelineLanes = []struct {
	class, word string
	y           int
}{{"t-fetched", "fetched", 0}, {"t-adopted", "adopted", 13}, {"t-failed", "failed", 26}}

// timelineMarks draws s's timeline from since.
func timelineMarks(s appStatusJSON, since string) []timelineMark {
	from, err := time.Parse(time.RFC3339, since)
	if err != nil {
		return nil
	}
	var out []timelineMark
	for _, slot := range s.Timeline {
		start, err := time.Parse(time.RFC3339, slot.Start)
		if err != nil {
			continue
		}
		x := max(int(start.Sub(from)/time.Minute), 0)
		for i, n := range []int{slot.Fetched, slot.Adopted, slot.Failed} {
			if n == 0 {
				continue
			}
			lane := timelineLanes[i]
			title := start.UTC().Format("15:04") + " UTC: " + strconv.Itoa(n) + " " + lane.word
			if i == 2 && slot.Errcode != 0 {
				title += " (errcode " + strconv.Itoa(slot.Errcode) + ")"
			}
			out = append(out, timelineMark{X: x, Y: lane.y, Class: lane.class, Title: title})
		}
	}
	return out
}

// timelineTotals is the aria label of s's timeline: its counts in words.
func timelineTotals(s appStatusJSON) string {
	var f, a, x int
	for _, slot := range s.Timeline {
		f, a, x = f+slot.Fetched, a+slot.Adopted, x+slot.Failed
	}
	return "Refreshes in the last 24 hours: " + strconv.Itoa(f) + " fetched, " + strconv.Itoa(a) + " adopted, " + strconv.Itoa(x) + " failed"
}
