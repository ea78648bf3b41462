package etcdstore

import (
	"context"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Logger receives what an operator must see: etcd lost and regained, NOSPACE handled.
// CoreDNS's plugin logger (clog.P) is one.
type Logger interface {
	Infof(format string, args ...any)
	Warningf(format string, args ...any)
	Errorf(format string, args ...any)
}

type discardLogger struct{}

func (discardLogger) Infof(string, ...any)    {}
func (discardLogger) Warningf(string, ...any) {}
func (discardLogger) Errorf(string, ...any)   {}

func loggerOrDiscard(l Logger) Logger {
	if l == nil {
		return discardLogger{}
	}
	return l
}

// How often the store checks that etcd answers, and reads an external cluster's status.
const (
	probeEvery  = time.Second
	statusEvery = 15 * time.Second
)

// health follows whether etcd answers, logging each loss and each return once (not once per
// failed request), and, for an external cluster, publishes its members' database sizes and
// alarms; the embedded member's are published by its upkeep.
type health struct {
	cli       *clientv3.Client
	probeKey  string
	endpoints []string // external cluster members; nil with the embedded etcd
	timeout   time.Duration
	log       Logger
	view      *View // told etcd's revision at each probe, to measure its lag and see a restore

	lostAt time.Time // zero while etcd answers
}

func (h *health) run(ctx context.Context) {
	probe := time.NewTicker(probeEvery)
	defer probe.Stop()
	var lastStatus time.Time
	for {
		h.probe(ctx)
		if h.endpoints != nil && time.Since(lastStatus) >= statusEvery {
			h.readStatus(ctx)
			lastStatus = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-probe.C:
		}
	}
}

// probe makes one linearizable read of a single key: it succeeds only when a quorum answers.
func (h *health) probe(ctx context.Context) {
	applied := h.view.Revision()
	pctx, cancel := context.WithTimeout(ctx, h.timeout)
	resp, err := h.cli.Get(pctx, h.probeKey, clientv3.WithCountOnly())
	cancel()
	if ctx.Err() != nil {
		return
	}
	var rev int64
	if err == nil {
		rev = resp.Header.Revision
	}
	h.view.noteRevision(ctx, time.Now(), applied, rev, err)
	switch {
	case err != nil && h.lostAt.IsZero():
		h.lostAt = time.Now()
		etcdReachable.Set(0)
		h.log.Errorf("etcd unreachable: %v (DNS answers from the last known state; API writes fail until it returns)", err)
	case err == nil && !h.lostAt.IsZero():
		h.log.Infof("etcd reachable again after %s", time.Since(h.lostAt).Round(time.Second))
		h.lostAt = time.Time{}
		fallthrough
	case err == nil:
		etcdReachable.Set(1)
	}
}

// readStatus publishes each member's database size, in-use size and quota, and the
// cluster's alarms; a member that does not answer keeps its last figures.
func (h *health) readStatus(ctx context.Context) {
	for _, ep := range h.endpoints {
		sctx, cancel := context.WithTimeout(ctx, h.timeout)
		st, err := h.cli.Status(sctx, ep)
		cancel()
		if err == nil {
			setDBGauges(ep, st.DbSize, st.DbSizeInUse, st.DbSizeQuota)
		}
	}
	actx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	if resp, err := h.cli.AlarmList(actx); err == nil {
		setAlarmGauges(resp.Alarms)
	}
}

// setAlarmGauges sets, for each alarm etcd knows, how many members raise it.
func setAlarmGauges(active []*pb.AlarmMember) {
	count := map[pb.AlarmType]int{}
	for _, a := range active {
		count[a.Alarm]++
	}
	setAlarmCounts(count)
}

// setAlarmCounts sets the alarm gauges from how many members raise each alarm.
func setAlarmCounts(count map[pb.AlarmType]int) {
	for t, name := range pb.AlarmType_name {
		if pb.AlarmType(t) != pb.AlarmType_NONE {
			etcdAlarms.WithLabelValues(name).Set(float64(count[pb.AlarmType(t)]))
		}
	}
}

func setDBGauges(endpoint string, size, inUse, quota int64) {
	etcdDBSize.WithLabelValues(endpoint).Set(float64(size))
	etcdDBInUse.WithLabelValues(endpoint).Set(float64(inUse))
	etcdQuota.WithLabelValues(endpoint).Set(float64(quota))
}

// mib formats a byte count for the log.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
