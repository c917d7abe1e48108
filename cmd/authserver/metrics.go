package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quanux/authserver/keys"
	"github.com/quanux/authserver/oauth"
	"github.com/quanux/authserver/storage"
)

// httpMetrics count requests by route pattern, never by raw path, so an
// attacker cannot create series at will.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authserver_http_requests_total",
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authserver_http_request_duration_seconds",
			Help:    "HTTP request latency in seconds, by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *httpMetrics) observe(route string, status int, elapsed time.Duration) {
	if m == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(elapsed.Seconds())
}

// newRegistry returns a registry with the Go runtime and process
// collectors, the signing-key age, the database pool and the audit queue.
func newRegistry(store *storage.Store, km *keys.Manager, auditor *oauth.Auditor) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authserver_signing_key_age_seconds",
			Help: "Seconds since the active signing key became active.",
		}, func() float64 { return activeKeyAge(km.Keys(), time.Now()).Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authserver_audit_events_dropped_total",
			Help: "Audit events lost because the write queue was full.",
		}, func() float64 { return float64(auditor.Dropped()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authserver_cached_clients",
			Help: "Clients held in this process's cache.",
		}, func() float64 { return float64(store.ReplicaStats().CachedClients) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authserver_revoked_tokens",
			Help: "Revoked, unexpired stateless tokens on this process's revocation list.",
		}, func() float64 { return float64(store.ReplicaStats().RevokedTokens) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authserver_change_feed_age_seconds",
			Help: "Seconds since this process last read the change feed successfully; 0 before the first read.",
		}, func() float64 { return store.ReplicaStats().SyncAge.Seconds() }),
	)
	pool := func(name, help string, value func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "authserver_db_" + name, Help: help}, value)
	}
	reg.MustRegister(
		pool("open_connections", "Open database connections.", func() float64 { return float64(store.PoolStats().OpenConnections) }),
		pool("in_use_connections", "Database connections in use.", func() float64 { return float64(store.PoolStats().InUse) }),
		pool("idle_connections", "Idle database connections.", func() float64 { return float64(store.PoolStats().Idle) }),
		pool("wait_count", "Total waits for a free database connection.", func() float64 { return float64(store.PoolStats().WaitCount) }),
		pool("wait_seconds", "Total time spent waiting for a free database connection, in seconds.", func() float64 { return store.PoolStats().WaitDuration.Seconds() }),
	)
	return reg
}

func activeKeyAge(infos []keys.Info, now time.Time) time.Duration {
	for _, k := range infos {
		if k.State == keys.StateActive && !k.ActivatedAt.IsZero() {
			return now.Sub(k.ActivatedAt)
		}
	}
	return 0
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
