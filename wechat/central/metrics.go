package central

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wxcentral/wxcentral/wechat"
)

// metrics are the admin API's Prometheus metrics, on a registry of their
// own. The keepers' counters are read from Stats at scrape time; every
// series of one app carries its app_id.
type metrics struct {
	reg       *prometheus.Registry
	handler   http.Handler
	callbacks *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

func newMetrics(a *Admin) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxcentral_callback_checks_total",
			Help: "WeChat callback requests checked by the middleware, by app and outcome (echo, pass, bad_signature, …).",
		}, []string{"app_id", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wxcentral_admin_request_duration_seconds",
			Help:    "Latency of admin API requests, by route and HTTP status code.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "code"}),
	}
	m.reg.MustRegister(m.callbacks, m.latency, &keeperCollector{a: a},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

// instrument measures h's latency under route, by the status h answers.
func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	return promhttp.InstrumentHandlerDuration(m.latency.MustCurryWith(prometheus.Labels{"route": route}), h)
}

// appLabel is the label of every per-app series.
var appLabel = []string{"app_id"}

var (
	descApp = prometheus.NewDesc("wxcentral_app_info",
		"1 for every app served, with its name and kind.", []string{"app_id", "name", "kind"}, nil)
	descFetches = prometheus.NewDesc("wxcentral_token_fetches_total",
		"Calls of WeChat's token endpoint, by result (ok, retry, error, rejected, quota_exhausted).", []string{"app_id", "result"}, nil)
	descTicketFetches = prometheus.NewDesc("wxcentral_ticket_fetches_total",
		"Calls of WeChat's getticket endpoint, by result.", []string{"app_id", "result"}, nil)
	descRefused = prometheus.NewDesc("wxcentral_token_fetches_refused_total",
		"Token fetches the quota guards did not make, by reason (quota, rate, cooldown).", []string{"app_id", "reason"}, nil)
	descRefreshes = prometheus.NewDesc("wxcentral_token_refreshes_total",
		"Token refreshes by trigger (startup, background, stale, passive, forced) and outcome (fetched, adopted, failed).",
		[]string{"app_id", "kind", "outcome"}, nil)
	descQuotaUsed = prometheus.NewDesc("wxcentral_token_quota_used",
		"Token fetches counted today (Beijing time) across every process sharing the store, as last seen.", appLabel, nil)
	descQuotaLeft = prometheus.NewDesc("wxcentral_token_quota_left",
		"Token fetches left in today's budget.", appLabel, nil)
	descTokenLeft = prometheus.NewDesc("wxcentral_token_expiry_seconds",
		"Seconds left before the held access token expires (0 without a valid one).", appLabel, nil)
	descStoreErrors = prometheus.NewDesc("wxcentral_store_errors_total",
		"Failed operations of the token store.", appLabel, nil)
	descUp = prometheus.NewDesc("wxcentral_keeper_up",
		"1 when a token keeper has started, 0 while none has (every app's keeper is up once it is served).", nil, nil)
)

// keeperCollector reads the keepers' Stats at scrape time.
type keeperCollector struct {
	a *Admin
}

// An ErrorCounter counts the operations that failed: a Store that is one
// (redisstore.Store) is exported as wxcentral_store_errors_total.
type ErrorCounter interface {
	Errors() uint64
}

func (c *keeperCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descApp, descFetches, descTicketFetches, descRefused, descRefreshes,
		descQuotaUsed, descQuotaLeft, descTokenLeft, descStoreErrors, descUp} {
		ch <- d
	}
}

func (c *keeperCollector) Collect(ch chan<- prometheus.Metric) {
	set := c.a.apps.Load()
	up := 0.0
	if len(set.list) > 0 {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	now := c.a.clock.Now()
	for _, app := range set.list {
		collectApp(ch, app, now)
	}
}

// collectApp sends the series of one app.
func collectApp(ch chan<- prometheus.Metric, app *App, now time.Time) {
	id := app.ID
	ch <- prometheus.MustNewConstMetric(descApp, prometheus.GaugeValue, 1, id, app.Name, string(app.kind()))
	if s, ok := app.Store.(ErrorCounter); ok {
		ch <- prometheus.MustNewConstMetric(descStoreErrors, prometheus.CounterValue, float64(s.Errors()), id)
	}
	s := app.Keeper.Stats()
	counters := func(d *prometheus.Desc, m map[string]int64) {
		for k, v := range m {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), id, k)
		}
	}
	counters(descFetches, s.Fetches)
	counters(descTicketFetches, s.TicketFetches)
	counters(descRefused, s.Refused)
	for kind, outcomes := range s.Refreshes {
		for o, v := range outcomes {
			ch <- prometheus.MustNewConstMetric(descRefreshes, prometheus.CounterValue, float64(v), id, kind, o)
		}
	}
	used := s.QuotaUsed
	if s.QuotaDay != wechat.QuotaDay(now) {
		used = 0 // a new day has begun since the count was last seen
	}
	ch <- prometheus.MustNewConstMetric(descQuotaUsed, prometheus.GaugeValue, float64(used), id)
	ch <- prometheus.MustNewConstMetric(descQuotaLeft, prometheus.GaugeValue, float64(max(s.QuotaBudget-used, 0)), id)
	left := 0.0
	if now.Before(s.TokenExpiresAt) {
		left = s.TokenExpiresAt.Sub(now).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(descTokenLeft, prometheus.GaugeValue, left, id)
}
