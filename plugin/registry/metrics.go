package registry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var expiredNames = promauto.NewCounter(prometheus.CounterOpts{
	Namespace: "coredns",
	Subsystem: "registry",
	Name:      "expired_names_total",
	Help:      "Counter of names deleted after their expiry grace period.",
})

var responses = promauto.NewCounterVec(prometheus.CounterOpts{
	Namespace: "coredns",
	Subsystem: "registry",
	Name:      "responses_total",
	Help:      "Counter of DNS responses by zone and result (answer, nodata, nxdomain, refused, notimp, formerr, servfail).",
}, []string{"zone", "result"})

var rrlResponses = promauto.NewCounterVec(prometheus.CounterOpts{
	Namespace: "coredns",
	Subsystem: "registry",
	Name:      "rrl_limited_total",
	Help:      "Counter of UDP responses over the response rate limit, by action (slip: sent truncated and empty, drop: not sent).",
}, []string{"action"})

// rrlLimited are rrlResponses' counters by rrlAction, resolved once.
var rrlLimited = [...]prometheus.Counter{
	rrlSlip: rrlResponses.WithLabelValues("slip"),
	rrlDrop: rrlResponses.WithLabelValues("drop"),
}

var dnsTCPRefused = promauto.NewCounter(prometheus.CounterOpts{
	Namespace: "coredns",
	Subsystem: "registry",
	Name:      "dns_tcp_connections_refused_total",
	Help:      "Counter of DNS-over-TCP connections closed at accept because the descriptors for DNS were all taken.",
})
