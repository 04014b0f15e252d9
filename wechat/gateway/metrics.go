package gateway

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The outcomes of a call, the outcome label of
// wxcentral_gateway_calls_total.
const (
	outcomeOK       = "ok"             // answered, errcode 0 (or not JSON)
	outcomeErrcode  = "errcode"        // WeChat answered an errcode ≠ 0
	outcomeRetried  = "token_retried"  // the token was rejected, refreshed and the call retried
	outcomeRefused  = "refused"        // refused here (unknown token, bad secret, …)
	outcomeUpstream = "upstream_error" // WeChat could not be reached, or no token could be had
)

// families are the path families (first path segment) counted by name;
// any other is "other", so that a caller cannot grow the label set.
var families = map[string]bool{
	"cgi-bin": true, "sns": true, "wxa": true, "wxaapi": true, "datacube": true, "customservice": true,
	"card": true, "cv": true, "semantic": true, "device": true, "marketing": true, "merchant": true,
	"product": true, "shop": true, "channels": true, "tcb": true, "xpay": true, "promoter": true,
	"user-order": true, "bizwifi": true, "shakearound": true, "componenttcb": true, "wxopen": true,
	"intp": true, "union": true,
}

// familyOf returns the family label of an API path.
func familyOf(path string) string {
	seg := path
	if len(seg) > 0 && seg[0] == '/' {
		seg = seg[1:]
	}
	for i := 0; i < len(seg); i++ {
		if seg[i] == '/' {
			seg = seg[:i]
			break
		}
	}
	if families[seg] {
		return seg
	}
	return "other"
}

type metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu   sync.Mutex
	seen map[string]bool // the app_id labels counted
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		seen: map[string]bool{},
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxcentral_gateway_calls_total",
			Help: "Calls of WeChat's API answered by the gateway, by app, path family (token for the token endpoints) and outcome.",
		}, []string{"app_id", "family", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wxcentral_gateway_call_duration_seconds",
			Help:    "Time to answer a call of WeChat's API through the gateway, by path family.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"family"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.calls, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// unknownApp is the app_id label of a call whose app is not one of the
// gateway's (a wrong appid, a token not issued here).
const unknownApp = "unknown"

func (m *metrics) observe(c *call, d time.Duration) {
	app := c.app
	if app == "" || c.g.app(app) == nil {
		app = unknownApp
	} else {
		m.mu.Lock()
		m.seen[app] = true
		m.mu.Unlock()
	}
	m.calls.WithLabelValues(app, c.family, c.outcome).Inc()
	m.duration.WithLabelValues(c.family).Observe(d.Seconds())
}

// forget deletes the series of the apps no longer served.
func (m *metrics) forget(apps map[string]*App) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id := range m.seen {
		if apps[id] == nil {
			m.calls.DeletePartialMatch(prometheus.Labels{"app_id": id})
			delete(m.seen, id)
		}
	}
}
