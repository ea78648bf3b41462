package api

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	requests = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "api_requests_total",
		Help:      "Counter of registration API requests by endpoint and HTTP status code.",
	}, []string{"endpoint", "code"})

	requestDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "api_request_duration_seconds",
		Help:      "Histogram of the time registration API requests take, by endpoint.",
		Buckets:   prometheus.DefBuckets,
	}, []string{"endpoint"})

	mails = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "mails_total",
		Help:      "Counter of mails handed to the SMTP server (or written to the mail directory) by kind (owner: /setemail's verification, reclaim) and result (sent, failed).",
	}, []string{"kind", "result"})
)

var (
	connectionsOpen = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "api_connections",
		Help:      "Gauge of connections the API listeners hold open.",
	})

	connectionsRefused = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "api_connections_refused_total",
		Help:      "Counter of API connections refused at accept, by the cap they hit (client, total).",
	}, []string{"cap"})

	connectionsShed = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "api_connections_shed_total",
		Help:      "Counter of idle API keep-alive connections closed to make room for new ones.",
	})
)

// Every series of mails_total and api_connections_refused_total exists from the start, so
// that a rate of failures or refusals is 0, not absent, before the first one.
func init() {
	for _, kind := range []mailBudget{ownerMail, reclaimMail} {
		for _, result := range []string{"sent", "failed"} {
			mails.WithLabelValues(string(kind), result)
		}
	}
	for _, limit := range []string{"client", "total"} {
		connectionsRefused.WithLabelValues(limit)
	}
}
