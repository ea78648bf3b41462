package etcdstore

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	etcdOps = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "etcd_operations_total",
		Help:      "Counter of etcd operations by type (get, txn, range, watch) and result (ok, error).",
	}, []string{"op", "result"})

	viewNames = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "view_names",
		Help:      "Number of registered names in the in-memory view.",
	})

	viewRevision = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "view_revision",
		Help:      "etcd revision the in-memory view has applied.",
	})

	viewLagged = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "view_lagged_writes_total",
		Help:      "Counter of writes acknowledged before the local view showed them (the view lagged beyond the etcd timeout).",
	})

	writeRetries = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "write_retries_total",
		Help:      "Counter of record writes run again because the record changed after it was read (by another replica, or before this replica's view showed it).",
	})

	etcdDBSize = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "etcd_db_size_bytes",
		Help:      "Size of the etcd database file by member endpoint (\"embedded\" for the embedded etcd); etcd compares it with the quota.",
	}, []string{"endpoint"})

	etcdDBInUse = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "etcd_db_size_in_use_bytes",
		Help:      "Bytes of the etcd database file holding data, by member endpoint; the rest is free pages a defragmentation returns.",
	}, []string{"endpoint"})

	etcdQuota = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "etcd_quota_bytes",
		Help:      "Database size at which etcd raises NOSPACE and refuses writes, by member endpoint.",
	}, []string{"endpoint"})

	etcdAlarms = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "etcd_alarms",
		Help:      "Number of etcd members raising each alarm (NOSPACE, CORRUPT).",
	}, []string{"alarm"})

	etcdCompactions = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "etcd_compactions_total",
		Help:      "Counter of compactions of the embedded etcd's history.",
	})

	etcdDefrags = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "etcd_defrags_total",
		Help:      "Counter of defragmentations of the embedded etcd's database.",
	})

	etcdNoSpaceRecoveries = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "etcd_nospace_recoveries_total",
		Help:      "Counter of NOSPACE alarms of the embedded etcd cleared by compacting and defragmenting.",
	})

	etcdReachable = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "etcd_reachable",
		Help:      "1 while etcd answers a linearizable read (a quorum is reachable), 0 while it does not.",
	})

	// views are the views of this process, whose greatest Lag view_lag_seconds reports.
	views sync.Map

	_ = promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "view_lag_seconds",
		Help:      "Seconds the in-memory view has been behind the revision etcd reported (read every second): 0 while it follows etcd; the greatest of the process's views.",
	}, maxViewLag)

	viewReloads = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "coredns",
		Subsystem: "registry",
		Name:      "view_reloads_total",
		Help:      "Counter of full reloads of the view from etcd (start, compaction, broken watch, etcd restored from a snapshot).",
	})
)

// maxViewLag is the greatest Lag of the process's views, in seconds.
func maxViewLag() float64 {
	var lag time.Duration
	views.Range(func(v, _ any) bool {
		lag = max(lag, v.(*View).Lag())
		return true
	})
	return lag.Seconds()
}

// observe counts one etcd operation and passes its error through.
func observe(op string, err error) error {
	result := "ok"
	if err != nil {
		result = "error"
	}
	etcdOps.WithLabelValues(op, result).Inc()
	return err
}
