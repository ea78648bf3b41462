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

// Every series of mails_total exists from the start, so that a rate of failures is 0, not
// absent, before the first mail.
func init() {
	for _, kind := range []mailBudget{ownerMail, reclaimMail} {
		for _, result := range []string{"sent", "failed"} {
			mails.WithLabelValues(string(kind), result)
		}
	}
}
