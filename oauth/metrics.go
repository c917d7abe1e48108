package oauth

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the server's Prometheus metrics about grants. Labels take
// values from fixed sets only: never a username, client id, token or
// secret.
type Metrics struct {
	tokensIssued  *prometheus.CounterVec
	loginFailures *prometheus.CounterVec
	throttled     *prometheus.CounterVec
}

// NewMetrics registers the grant metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		tokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authserver_tokens_issued_total",
			Help: "Access tokens issued, by grant type.",
		}, []string{"grant_type"}),
		loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authserver_login_failures_total",
			Help: "Token requests rejected for wrong credentials, by grant type.",
		}, []string{"grant_type"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authserver_throttled_total",
			Help: "Credential attempts refused before any check: reason lockout (a locked username or client) or address (the per-address rate).",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.tokensIssued, m.loginFailures, m.throttled} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// grantLabel maps a grant_type parameter, which the client chooses, onto a
// fixed set of label values.
func grantLabel(grantType string) string {
	if slices.Contains([]string{"password", "client_credentials", "refresh_token"}, grantType) {
		return grantType
	}
	return "other"
}

func (m *Metrics) observeGrant(grantType string, outcome Outcome, throttledReason string) {
	if m == nil {
		return
	}
	switch {
	case throttledReason != "":
		m.throttled.WithLabelValues(throttledReason).Inc()
	case outcome == Succeeded:
		m.tokensIssued.WithLabelValues(grantLabel(grantType)).Inc()
	case outcome == Failed:
		m.loginFailures.WithLabelValues(grantLabel(grantType)).Inc()
	}
}
