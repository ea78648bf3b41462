package etcdstore

import (
	"context"
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
)

// upkeep keeps the embedded etcd's database small for as long as the process runs: it
// compacts the history older than EmbeddedConfig.History (sooner when writes pile it up
// faster than the quota allows), defragments when free pages waste
// much of the quota (etcd counts the database file against the quota, free pages included),
// and when NOSPACE fires anyway it compacts, defragments and disarms it by itself. DNS is
// never affected: it answers from the view. A defragmentation holds etcd's backend, so API
// calls made meanwhile wait for it (or fail with 501 after etcd_timeout); it therefore runs
// only when the waste is worth it, at most once per History unless NOSPACE forces it.
type upkeep struct {
	srv   *etcdserver.EtcdServer
	quota int64
	hist  time.Duration
	log   Logger

	marks      []revMark // revisions seen, oldest first, to find the one History ago
	compacted  int64
	compactAt  time.Time // when the history was last compacted by age
	inUse      int64     // bytes in use after the last compaction: what grows beyond is history
	lastDefrag time.Time
	full       time.Time // when NOSPACE was first seen, zero when not
	retryAt    time.Time // a NOSPACE that compaction did not cure is retried then

	cancel context.CancelFunc
	done   chan struct{}
}

type revMark struct {
	at  time.Time
	rev int64
}

// How often the upkeep looks at the NOSPACE alarm (cheap: the member's alarm list), and at
// the history and the database size.
const (
	alarmTick  = 100 * time.Millisecond
	upkeepTick = time.Second
)

// defragWasteShare: a defragmentation runs when free pages exceed 1/defragWasteShare of the quota.
const defragWasteShare = 8

// historyShare: history is compacted early, to the previous tick, when it grows by more than
// 1/historyShare of the quota, so that no write rate reaches NOSPACE through history alone.
const historyShare = 8

// embeddedEndpoint labels the embedded member's metrics.
const embeddedEndpoint = "embedded"

func startUpkeep(srv *etcdserver.EtcdServer, c EmbeddedConfig) *upkeep {
	ctx, cancel := context.WithCancel(context.Background())
	u := &upkeep{srv: srv, quota: c.QuotaBytes, hist: c.History, log: loggerOrDiscard(c.Log), cancel: cancel, done: make(chan struct{})}
	go u.run(ctx)
	return u
}

func (u *upkeep) stop() {
	u.cancel()
	<-u.done
}

func (u *upkeep) run(ctx context.Context) {
	defer close(u.done)
	t := time.NewTicker(alarmTick)
	defer t.Stop()
	every := min(upkeepTick, u.hist/4)
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.srv.StopNotify():
			return
		case now := <-t.C:
			switch {
			case u.noSpace():
				u.recoverSpace(ctx, now)
			case now.Sub(last) >= every:
				last = now
				u.compact(ctx, now)
				u.defragIfWasteful(now)
			default:
				continue
			}
			u.publish()
		}
	}
}

// noSpace reports whether the member's NOSPACE alarm is raised.
func (u *upkeep) noSpace() bool {
	for _, a := range u.srv.Alarms() {
		if a.Alarm == pb.AlarmType_NOSPACE {
			return true
		}
	}
	return false
}

// compact drops the revisions older than History: it remembers the current revision at every
// tick and compacts to the newest one remembered from at least History ago. When the history
// since the last compaction takes more than 1/historyShare of the quota, it keeps only the
// last tick's: a watch that far behind reloads the view, which is cheaper than NOSPACE.
func (u *upkeep) compact(ctx context.Context, now time.Time) {
	u.marks = append(u.marks, revMark{now, u.srv.KV().Rev()})
	keep := 0
	for keep+1 < len(u.marks) && now.Sub(u.marks[keep+1].at) >= u.hist {
		keep++
	}
	u.marks = u.marks[keep:]
	// By age, every tenth of History, as etcd's own periodic compactor does: each compaction
	// walks etcd's whole key index.
	var target int64
	if old := u.marks[0]; now.Sub(old.at) >= u.hist && now.Sub(u.compactAt) >= u.hist/10 {
		target, u.compactAt = old.rev, now
	}
	if n := len(u.marks); n >= 2 && u.srv.Backend().SizeInUse()-u.inUse >= u.quota/historyShare {
		target = max(target, u.marks[n-2].rev)
	}
	if target > u.compacted && u.compactTo(ctx, target) == nil {
		u.inUse = u.srv.Backend().SizeInUse()
	}
}

// compactTo compacts the history below rev and waits until its space is free for reuse.
func (u *upkeep) compactTo(ctx context.Context, rev int64) error {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err := u.srv.Compact(cctx, &pb.CompactionRequest{Revision: rev, Physical: true})
	if errors.Is(err, mvcc.ErrCompacted) {
		err = nil
	} else if err == nil {
		etcdCompactions.Inc()
	}
	if err != nil {
		u.log.Warningf("compacting etcd to revision %d: %v", rev, err)
		return err
	}
	u.compacted = max(u.compacted, rev)
	return nil
}

// defragIfWasteful defragments when free pages take much of the quota, at most once per History.
func (u *upkeep) defragIfWasteful(now time.Time) {
	be := u.srv.Backend()
	if be.Size()-be.SizeInUse() < u.quota/defragWasteShare || now.Sub(u.lastDefrag) < u.hist {
		return
	}
	u.defrag(now)
}

func (u *upkeep) defrag(now time.Time) error {
	before := u.srv.Backend().Size()
	err := u.srv.Defragment()
	u.lastDefrag = now
	if err != nil {
		u.log.Errorf("defragmenting etcd: %v", err)
		return err
	}
	etcdDefrags.Inc()
	u.log.Infof("defragmented etcd in %s: database %s -> %s", time.Since(now).Round(time.Millisecond), mib(before), mib(u.srv.Backend().Size()))
	return nil
}

// recoverSpace answers NOSPACE: writes fail (the API answers 501) until the history is
// compacted away, the database file shrunk and the alarm disarmed. If live data alone fills
// the quota, nothing can be freed: that is logged once, and retried every History.
func (u *upkeep) recoverSpace(ctx context.Context, now time.Time) {
	if u.full.IsZero() {
		u.full = now
		u.log.Warningf("etcd database reached its quota of %s (NOSPACE): writes fail until it is compacted and defragmented", mib(u.quota))
	}
	if now.Before(u.retryAt) {
		return
	}
	if u.compactTo(ctx, u.srv.KV().Rev()) != nil || u.defrag(now) != nil {
		return
	}
	if size := u.srv.Backend().Size(); size >= u.quota*9/10 {
		if u.retryAt.IsZero() {
			u.log.Errorf("etcd holds %s of live data, too close to its quota of %s to accept writes: raise etcd_quota", mib(size), mib(u.quota))
		}
		u.retryAt = now.Add(u.hist)
		return
	}
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err := u.srv.Alarm(actx, &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: uint64(u.srv.MemberID()), Alarm: pb.AlarmType_NOSPACE})
	if err != nil {
		u.log.Warningf("disarming etcd's NOSPACE alarm: %v", err)
		return
	}
	etcdNoSpaceRecoveries.Inc()
	u.log.Infof("etcd recovered from NOSPACE in %s: database %s of its quota of %s", time.Since(u.full).Round(time.Millisecond), mib(u.srv.Backend().Size()), mib(u.quota))
	u.full, u.retryAt = time.Time{}, time.Time{}
}

// publish sets the database gauges of the embedded member.
func (u *upkeep) publish() {
	be := u.srv.Backend()
	setDBGauges(embeddedEndpoint, be.Size(), be.SizeInUse(), u.quota)
	setAlarmGauges(u.srv.Alarms())
}
