package central

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wxcentral/wxcentral/wechat"
)

// metrics are the admin API's Prometheus metrics, on a registry of their
// own. The keeper's counters are read from Stats at scrape time.
type metrics struct {
	reg       *prometheus.Registry
	handler   http.Handler
	callbacks *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

func newMetrics(a *Admin, store wechat.Store) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxcentral_callback_checks_total",
			Help: "WeChat callback requests checked by the middleware, by outcome (echo, pass, bad_signature, …).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wxcentral_admin_request_duration_seconds",
			Help:    "Latency of admin API requests, by route and HTTP status code.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "code"}),
	}
	m.reg.MustRegister(m.callbacks, m.latency, &keeperCollector{a: a, store: store},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

// instrument measures h's latency under route, by the status h answers.
func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	return promhttp.InstrumentHandlerDuration(m.latency.MustCurryWith(prometheus.Labels{"route": route}), h)
}

var (
	descFetches = prometheus.NewDesc("wxcentral_token_fetches_total",
		"Calls of WeChat's token endpoint, by result (ok, retry, error, rejected, quota_exhausted).", []string{"result"}, nil)
	descTicketFetches = prometheus.NewDesc("wxcentral_ticket_fetches_total",
		"Calls of WeChat's getticket endpoint, by result.", []string{"result"}, nil)
	descRefused = prometheus.NewDesc("wxcentral_token_fetches_refused_total",
		"Token fetches the quota guards did not make, by reason (quota, rate, cooldown).", []string{"reason"}, nil)
	descRefreshes = prometheus.NewDesc("wxcentral_token_refreshes_total",
		"Token refreshes by trigger (startup, background, stale, passive, forced) and outcome (fetched, adopted, failed).",
		[]string{"kind", "outcome"}, nil)
	descQuotaUsed = prometheus.NewDesc("wxcentral_token_quota_used",
		"Token fetches counted today (Beijing time) across every process sharing the store, as last seen.", nil, nil)
	descQuotaLeft = prometheus.NewDesc("wxcentral_token_quota_left",
		"Token fetches left in today's budget.", nil, nil)
	descTokenLeft = prometheus.NewDesc("wxcentral_token_expiry_seconds",
		"Seconds left before the held access token expires (0 without a valid one).", nil, nil)
	descStoreErrors = prometheus.NewDesc("wxcentral_store_errors_total",
		"Failed operations of the token store.", nil, nil)
	descUp = prometheus.NewDesc("wxcentral_keeper_up",
		"1 when the token keeper has started, 0 while it is starting.", nil, nil)
)

// keeperCollector reads the keeper's Stats at scrape time.
type keeperCollector struct {
	a     *Admin
	store wechat.Store
}

// An ErrorCounter counts the operations that failed: a Store that is one
// (redisstore.Store) is exported as wxcentral_store_errors_total.
type ErrorCounter interface {
	Errors() uint64
}

func (c *keeperCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFetches, descTicketFetches, descRefused, descRefreshes,
		descQuotaUsed, descQuotaLeft, descTokenLeft, descUp} {
		ch <- d
	}
	if _, ok := c.store.(ErrorCounter); ok {
		ch <- descStoreErrors
	}
}

func (c *keeperCollector) Collect(ch chan<- prometheus.Metric) {
	if s, ok := c.store.(ErrorCounter); ok {
		ch <- prometheus.MustNewConstMetric(descStoreErrors, prometheus.CounterValue, float64(s.Errors()))
	}
	ref := c.a.keeper.Load()
	if ref == nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	s := ref.k.Stats()
	now := c.a.clock.Now()
	counters := func(d *prometheus.Desc, m map[string]int64) {
		for k, v := range m {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), k)
		}
	}
	counters(descFetches, s.Fetches)
	counters(descTicketFetches, s.TicketFetches)
	counters(descRefused, s.Refused)
	for kind, outcomes := range s.Refreshes {
		for o, v := range outcomes {
			ch <- prometheus.MustNewConstMetric(descRefreshes, prometheus.CounterValue, float64(v), kind, o)
		}
	}
	used := s.QuotaUsed
	if s.QuotaDay != wechat.QuotaDay(now) {
		used = 0 // a new day has begun since the count was last seen
	}
	ch <- prometheus.MustNewConstMetric(descQuotaUsed, prometheus.GaugeValue, float64(used))
	ch <- prometheus.MustNewConstMetric(descQuotaLeft, prometheus.GaugeValue, float64(max(s.QuotaBudget-used, 0)))
	left := 0.0
	if now.Before(s.TokenExpiresAt) {
		left = s.TokenExpiresAt.Sub(now).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(descTokenLeft, prometheus.GaugeValue, left)
}
