package etcdstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The zone's SOA serial is the etcd revision plus an offset kept in etcd (the serial key,
// absent meaning 0), truncated to 32 bits: every replica reads the same revision and offset,
// so they agree, and the serial grows with every change. Restoring a snapshot takes the
// revision back to the snapshot's; RaiseSerial then raises the offset so that the serial
// exceeds the highest one served before, and secondaries transfer the restored zone instead
// of keeping theirs.

// serialOf is the serial of revision rev under offset.
func serialOf(offset, rev int64) uint32 { return uint32(offset + rev) }

// newerSerial reports whether a is newer than b in RFC 1982 serial number arithmetic, as
// secondaries compare them.
func newerSerial(a, b uint32) bool { return int32(a-b) > 0 }

// parseOffset reads the serial key's value; an absent key is offset 0.
func parseOffset(value []byte) (int64, error) {
	if value == nil {
		return 0, nil
	}
	offset, err := strconv.ParseInt(string(value), 10, 64)
	if err != nil || offset < 0 {
		return 0, fmt.Errorf("serial offset %q is not a whole number", value)
	}
	return offset, nil
}

// readOffset reads the serial offset at key as of revision rev (0: the current one) and
// returns it with the key's mod revision (0 when absent) and the revision read.
func readOffset(ctx context.Context, cli *clientv3.Client, timeout time.Duration, key string, rev int64) (offset, modRev, at int64, err error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := cli.Get(cctx, key, clientv3.WithRev(rev))
	if err = observe("get", err); err != nil {
		return 0, 0, 0, err
	}
	var value []byte
	if len(resp.Kvs) > 0 {
		value, modRev = resp.Kvs[0].Value, resp.Kvs[0].ModRevision
	}
	offset, err = parseOffset(value)
	return offset, modRev, resp.Header.Revision, err
}

// Serial is the zone's SOA serial as etcd has it now, whatever the View has applied.
func (s *Keyspace) Serial(ctx context.Context) (uint32, error) {
	offset, _, rev, err := readOffset(ctx, s.cli, s.timeout, s.keys.serial(), 0)
	return serialOf(offset, rev), err
}

// raiseAttempts bounds RaiseSerial's compare-and-put: each failure means that another raise
// wrote the offset in between, which only an operator's tools do.
const raiseAttempts = 8

// RaiseSerial makes the zone's serial newer than above (in RFC 1982 arithmetic, as
// secondaries compare serials) and returns the new serial: after etcd is restored from a
// snapshot, above is the highest serial served before (Serial on the old cluster, or the
// SOA secondaries hold). It writes the offset only when the serial is not already newer,
// so calling it again is harmless. Replicas follow the new serial within the watch latency.
func (s *Keyspace) RaiseSerial(ctx context.Context, above uint32) (uint32, error) {
	for range raiseAttempts {
		offset, modRev, rev, err := readOffset(ctx, s.cli, s.timeout, s.keys.serial(), 0)
		if err != nil {
			return 0, err
		}
		if cur := serialOf(offset, rev); newerSerial(cur, above) {
			return cur, nil
		}
		// The write is revision rev+1 or later: the serial it makes is above+1 or more.
		raised := offset + int64(above+1-serialOf(offset, rev+1))
		cctx, cancel := s.ctx(ctx)
		resp, err := s.cli.Txn(cctx).
			If(clientv3.Compare(clientv3.ModRevision(s.keys.serial()), "=", modRev)).
			Then(clientv3.OpPut(s.keys.serial(), strconv.FormatInt(raised, 10))).
			Commit()
		cancel()
		if err = observe("txn", err); err != nil {
			return 0, err
		}
		if resp.Succeeded {
			return serialOf(raised, resp.Header.Revision), nil
		}
	}
	return 0, ErrConflict
}
