package central

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/wechat"
)

// An App is one account an Admin serves: its token keeper, and what the
// admin API tells of it.
type App struct {
	// ID is the account's AppID, the {app_id} of the /v1/apps/ routes.
	ID string
	// Name is a label for people (GET /v1/apps, the metrics' app_info);
	// default ID.
	Name string
	// Kind is config.OfficialAccount (also for ""), config.MiniProgram
	// or config.MiniGame. Only an official account has a jsapi_ticket:
	// the ticket and JS-SDK routes answer 400 for the others.
	Kind config.AppKind
	// Keeper keeps the account's token.
	Keeper Keeper
	// Store, if it is an ErrorCounter, is exported as the app's
	// wxcentral_store_errors_total.
	Store wechat.Store
}

// hasJSAPI reports whether the app has a jsapi_ticket.
func (app *App) hasJSAPI() bool { return app.kind().HasJSAPI() }

// kind is the app's Kind, config.OfficialAccount for "".
func (app *App) kind() config.AppKind {
	if app.Kind == "" {
		return config.OfficialAccount
	}
	return app.Kind
}

// An appSet is the apps an Admin serves, as SetApps gave them. It is
// never changed once made, so a reader needs no lock.
type appSet struct {
	list []*App
	byID map[string]*App
}

// SetApps makes apps the accounts the admin API serves, replacing the
// ones it served (a reload): requests already running finish on the app
// they found. Every App needs a Keeper and an ID unique among apps; Name
// defaults to the ID. With one app the single-app routes (/v1/token, …)
// serve it; with several they answer 400 naming the /v1/apps/{app_id}/
// routes; with none every route but /metrics answers 503.
func (a *Admin) SetApps(apps []App) error {
	set := &appSet{list: make([]*App, 0, len(apps)), byID: make(map[string]*App, len(apps))}
	var errs []error
	for i, app := range apps {
		switch {
		case app.Keeper == nil:
			errs = append(errs, fmt.Errorf("central: app %d (%q) has no keeper", i, app.ID))
			continue
		case app.ID == "" && len(apps) > 1:
			errs = append(errs, fmt.Errorf("central: app %d has no ID", i))
			continue
		case set.byID[app.ID] != nil:
			errs = append(errs, fmt.Errorf("central: app ID %q is given twice", app.ID))
			continue
		}
		switch app.Kind {
		case "", config.OfficialAccount, config.MiniProgram, config.MiniGame:
		default:
			errs = append(errs, fmt.Errorf("central: app %q: kind %q is not %s, %s or %s", app.ID, app.Kind,
				config.OfficialAccount, config.MiniProgram, config.MiniGame))
			continue
		}
		if app.Name == "" {
			app.Name = app.ID
		}
		set.list = append(set.list, &app)
		set.byID[app.ID] = &app
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	old := a.apps.Swap(set)
	// A removed app's callback counts go with it, as its keeper's series do.
	if old != nil {
		for id := range old.byID {
			if set.byID[id] == nil {
				a.metrics.callbacks.DeletePartialMatch(prometheus.Labels{"app_id": id})
			}
		}
	}
	return nil
}

// Apps returns the apps the admin API serves, in the order SetApps (or
// SetKeeper) gave them.
func (a *Admin) Apps() []App {
	set := a.apps.Load()
	out := make([]App, len(set.list))
	for i, app := range set.list {
		out[i] = *app
	}
	return out
}

// appRoute adds fn at /v1+path, for the one app of a single-app server,
// and at /v1/apps/{app_id}+path, behind the key check, each with its
// latency measured under its path template.
func (a *Admin) appRoute(r *mux.Router, path, method string, fn func(http.ResponseWriter, *http.Request, *App)) {
	h := func(w http.ResponseWriter, r *http.Request) {
		if app := a.app(w, r, path); app != nil {
			fn(w, r, app)
		}
	}
	a.route(r, "/v1"+path, method, true, h)
	a.route(r, "/v1/apps/{app_id}"+path, method, true, h)
}

// app returns the app a request names, or answers and returns nil: the
// {app_id} of the route (404 when there is no such app), or else the one
// app served (503 before there is one; 400 naming the per-app route when
// there are several).
func (a *Admin) app(w http.ResponseWriter, r *http.Request, path string) *App {
	set := a.apps.Load()
	if id, ok := mux.Vars(r)["app_id"]; ok {
		if app := set.byID[id]; app != nil {
			return app
		}
		a.fail(w, r, http.StatusNotFound, fmt.Errorf("no app %q is configured: GET /v1/apps lists the apps", id))
		return nil
	}
	switch len(set.list) {
	case 0:
		a.fail(w, r, http.StatusServiceUnavailable, a.notReady())
		return nil
	case 1:
		return set.list[0]
	}
	a.fail(w, r, http.StatusBadRequest, fmt.Errorf("%d apps are configured: name the app, as in /v1/apps/{app_id}%s (GET /v1/apps lists them)", len(set.list), path))
	return nil
}

// appJSON is one app in the answer of GET /v1/apps. It never holds a
// credential.
type appJSON struct {
	AppID       string `json:"app_id"`
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	State       string `json:"state"`
	Healthy     bool   `json:"healthy"`
	ExpiresAt   string `json:"expires_at,omitempty"`
	ExpiresIn   int64  `json:"expires_in"`
	RefreshAt   string `json:"refresh_at,omitempty"`
	QuotaUsed   int    `json:"quota_used"`
	QuotaBudget int    `json:"quota_budget"`
}

// appsJSON is the answer of GET /v1/apps and POST /v1/reload.
type appsJSON struct {
	Apps []appJSON `json:"apps"`
}

// describe is app's entry of GET /v1/apps at now, from the keeper's
// Stats: no I/O, so that listing a thousand apps stays cheap.
func describe(app *App, now time.Time) appJSON {
	s := app.Keeper.Stats()
	out := appJSON{AppID: app.ID, Name: app.Name, Kind: string(app.kind()), State: string(wechat.StateInvalid),
		QuotaUsed: s.QuotaUsed, QuotaBudget: s.QuotaBudget}
	if s.QuotaDay != wechat.QuotaDay(now) {
		out.QuotaUsed = 0
	}
	if now.Before(s.TokenExpiresAt) {
		out.Healthy = true
		out.State = string(wechat.StateStale)
		if now.Before(s.TokenStaleAt) {
			out.State = string(wechat.StateFresh)
		}
		out.ExpiresIn = int64(s.TokenExpiresAt.Sub(now) / time.Second)
	}
	if !s.TokenExpiresAt.IsZero() {
		out.ExpiresAt = s.TokenExpiresAt.UTC().Format(time.RFC3339)
	}
	if !s.TokenStaleAt.IsZero() {
		out.RefreshAt = s.TokenStaleAt.UTC().Format(time.RFC3339)
	}
	return out
}

// listApps answers GET /v1/apps.
func (a *Admin) listApps(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.appsAnswer())
}

// appsAnswer is the list of apps served, as GET /v1/apps answers it.
func (a *Admin) appsAnswer() appsJSON {
	set := a.apps.Load()
	now := a.clock.Now()
	out := appsJSON{Apps: make([]appJSON, len(set.list))}
	for i, app := range set.list {
		out.Apps[i] = describe(app, now)
	}
	return out
}

// reload answers POST /v1/reload: AdminOptions.Reload, then the apps now
// served.
func (a *Admin) reload(w http.ResponseWriter, r *http.Request) {
	if a.reloadFn == nil {
		a.fail(w, r, http.StatusNotFound, errors.New("reload is not available: this server has no configuration file (WECHAT_CONFIG)"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	if err := a.reloadFn(ctx); err != nil {
		a.refusals.failed(a.log, a.clock.Now(), r.URL.Path, http.StatusUnprocessableEntity, "422 reload", err.Error())
		writeJSON(w, http.StatusUnprocessableEntity, errorJSON{Error: err.Error(), Reason: ReasonReloadRefused})
		return
	}
	writeJSON(w, http.StatusOK, a.appsAnswer())
}

// appHealth answers /healthz for a server of several apps: 200 while at
// least one app holds a valid token ("ok" when all do, "degraded" when
// some do not, naming them), 503 when none does. /healthz?app_id= is one
// app's health, as a single-app server answers it.
func (a *Admin) appHealth(w http.ResponseWriter, set *appSet) {
	now := a.clock.Now()
	type sick struct {
		AppID string `json:"app_id"`
		Name  string `json:"name"`
		State string `json:"state"`
	}
	out := struct {
		Status    string `json:"status"`
		Apps      int    `json:"apps"`
		Healthy   int    `json:"healthy"`
		Unhealthy []sick `json:"unhealthy,omitempty"`
	}{Status: "ok", Apps: len(set.list)}
	for _, app := range set.list {
		d := describe(app, now)
		if d.Healthy {
			out.Healthy++
			continue
		}
		out.Unhealthy = append(out.Unhealthy, sick{d.AppID, d.Name, d.State})
	}
	code := http.StatusOK
	switch {
	case out.Healthy == 0:
		code, out.Status = http.StatusServiceUnavailable, "unavailable"
	case len(out.Unhealthy) > 0:
		out.Status = "degraded"
	}
	writeJSON(w, code, out)
}
