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
)
