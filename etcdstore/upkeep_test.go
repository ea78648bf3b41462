package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// startBounded starts an embedded etcd with the given quota and history, reached only
// in-process, as the plugin runs it.
func startBounded(t *testing.T, quota int64, history time.Duration) (*Embedded, *Store) {
	t.Helper()
	e, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), QuotaBytes: quota, History: history, Fast: true, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, openConfig(t, Config{Endpoints: e.Endpoints(), Local: e, Timeout: 5 * time.Second})
}

// testLog passes the store's log to the test's.
type testLog struct{ t *testing.T }

func (l testLog) Infof(format string, args ...any)    { l.t.Logf("INFO "+format, args...) }
func (l testLog) Warningf(format string, args ...any) { l.t.Logf("WARNING "+format, args...) }
func (l testLog) Errorf(format string, args ...any)   { l.t.Logf("ERROR "+format, args...) }

// description is a record's description carrying a writer's sequence number, padded to size.
func description(seq int, size int) string {
	s := fmt.Sprintf("seq %09d ", seq)
	return s + strings.Repeat("x", max(0, size-len(s)))
}

func seqOf(d Record) (n int) {
	fmt.Sscanf(d.Description, "seq %d ", &n)
	return n
}

// TestNoSpaceRecovers fills a tiny quota with writes: they fail with etcd's NOSPACE error
// while the upkeep compacts, defragments and disarms, then succeed again without anyone's help;
// no acknowledged write is lost and the view answers throughout.
// Not parallel, as the flood below: writing as fast as etcd takes it, it would distort the
// timings other tests measure.
func TestNoSpaceRecovers(t *testing.T) {
	const quota = 4 << 20
	e, s := startBounded(t, quota, time.Hour) // no compaction by age: only early compaction and the recovery free space
	before := counted(t, etcdNoSpaceRecoveries)
	const writers = 4
	names := make([]string, writers)
	for i := range names {
		names[i] = fmt.Sprintf("full%d", i)
		if err := s.Create(t.Context(), newRecord(names[i])); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu         sync.Mutex
		firstFail  time.Time
		recovered  time.Duration
		acked      = make([]int, writers)
		noSpace    atomic.Int64
		otherError error
	)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for seq := 1; ctx.Err() == nil; seq++ {
				_, err := s.Update(ctx, ByName(names[w]), func(d *Record) error {
					d.Description = description(seq, 2048)
					return nil
				})
				mu.Lock()
				switch {
				case err == nil:
					acked[w] = seq
					// Writes admitted before the alarm took effect may still succeed: the
					// recovery is the first success after the upkeep disarmed the alarm.
					if !firstFail.IsZero() && recovered == 0 && counted(t, etcdNoSpaceRecoveries) > before {
						recovered = time.Since(firstFail)
						cancel()
					}
				case errors.Is(err, rpctypes.ErrNoSpace):
					noSpace.Add(1)
					if firstFail.IsZero() {
						firstFail = time.Now()
					}
				case ctx.Err() == nil && otherError == nil:
					otherError = err
				}
				mu.Unlock()
			}
		})
	}
	for ctx.Err() == nil {
		if _, ok := s.View().Lookup(names[0]); !ok {
			t.Error("the view lost a name during NOSPACE")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	if otherError != nil {
		t.Errorf("a write failed with %v, want success or NOSPACE", otherError)
	}
	if firstFail.IsZero() || recovered == 0 {
		t.Fatalf("NOSPACE seen at %v, recovered after %v: want both", firstFail, recovered)
	}
	t.Logf("NOSPACE after %d acknowledged writes of ~2 KiB; %d writes refused; writable again %v after the first refusal",
		sum(acked), noSpace.Load(), recovered)
	if got := counted(t, etcdNoSpaceRecoveries) - before; got < 1 {
		t.Errorf("nospace recoveries counted %v, want at least 1", got)
	}
	if size := e.etcd.Server.Backend().Size(); size >= quota {
		t.Errorf("database %d bytes after recovery, quota %d", size, quota)
	}
	for w, name := range names {
		d, err := s.Get(t.Context(), ByName(name))
		if err != nil {
			t.Fatal(err)
		}
		if seqOf(d) < acked[w] {
			t.Errorf("%s holds write %d, but write %d was acknowledged", name, seqOf(d), acked[w])
		}
	}
}

// counted is the value of a counter or gauge.
func counted(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetCounter().GetValue() + pb.GetGauge().GetValue()
}

func sum(xs []int) (n int) {
	for _, x := range xs {
		n += x
	}
	return n
}

// TestHistoryStaysBounded floods a few records with updates, as an abuser with a handful of
// tokens would, until the writes add up to 1.5 times the quota: without compaction etcd would
// refuse writes (NOSPACE) before the end; with it the database stays far below the quota
// throughout, and its history is compacted away once the flood stops. The flood writes as fast as etcd takes
// it, far beyond the history's time bound: what keeps it below the quota is the early compaction.
// Not parallel: the flood would distort the timings other tests measure.
func TestHistoryStaysBounded(t *testing.T) {
	const (
		quota   = 256 << 20
		history = 400 * time.Millisecond
		names   = 20
		size    = 32 << 10
	)
	e, s := startBounded(t, quota, history)
	for i := range names {
		if err := s.Create(t.Context(), newRecord(fmt.Sprintf("flood%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	compactions, defrags := counted(t, etcdCompactions), counted(t, etcdDefrags)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	var writes, peak atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for i := range names {
		wg.Go(func() {
			for seq := 1; ctx.Err() == nil; seq++ {
				_, err := s.Update(ctx, ByName(fmt.Sprintf("flood%d", i)), func(d *Record) error {
					d.Description = description(seq, size)
					return nil
				})
				switch {
				case err == nil:
					if writes.Add(1)*size >= quota*3/2 {
						cancel()
					}
				case ctx.Err() == nil:
					t.Errorf("write during the flood: %v", err)
					cancel()
				}
			}
		})
	}
	be := e.etcd.Server.Backend()
	for ctx.Err() == nil {
		peak.Store(max(peak.Load(), be.Size()))
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	took := time.Since(start)
	t.Logf("%d writes of %d KiB (%d MiB) in %v, %.0f/s; database peaked at %.1f MiB of a %d MiB quota",
		writes.Load(), size>>10, writes.Load()*size>>20, took.Round(time.Millisecond), float64(writes.Load())/took.Seconds(),
		float64(peak.Load())/(1<<20), quota>>20)
	if writes.Load()*size < quota*3/2 {
		t.Fatalf("only %d MiB written in %v: the flood did not exceed the quota", writes.Load()*size>>20, took)
	}
	if peak.Load() >= quota/2 {
		t.Errorf("database peaked at %d bytes during the flood, want less than half the quota (%d)", peak.Load(), quota/2)
	}
	// Once the flood stops, the rest of its history is compacted; free pages beyond an
	// eighth of the quota are defragmented away. A trickle of writes goes on, as pings would:
	// etcd frees a compaction's pages, and counts them out of the size in use, only at
	// later commits.
	const live = 1 << 20
	deadline := time.Now().Add(30 * time.Second)
	for seq := 1; (be.SizeInUse() > live || be.Size()-be.SizeInUse() >= quota/defragWasteShare) && time.Now().Before(deadline); seq++ {
		if _, err := s.Update(t.Context(), ByName("flood0"), func(d *Record) error { d.Description = description(seq, 100); return nil }); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("database %.2f MiB (%.2f MiB in use) after the flood; %v compactions, %v defragmentations",
		float64(be.Size())/(1<<20), float64(be.SizeInUse())/(1<<20),
		counted(t, etcdCompactions)-compactions, counted(t, etcdDefrags)-defrags)
	if be.SizeInUse() > live {
		t.Errorf("%d bytes in use 30 s after the flood, want at most %d", be.SizeInUse(), live)
	}
	if free := be.Size() - be.SizeInUse(); free >= quota/defragWasteShare {
		t.Errorf("%d bytes of free pages 30 s after the flood, want less than %d", free, quota/defragWasteShare)
	}
}

// TestHistoryBytesPerWrite measures what one rewrite of a record adds to etcd's database
// until it is compacted, for the records the API writes: a ping (new time, same addresses),
// a /dnsconfig with ACME-sized values, and the largest record a client can make (a 256-rune
// description, two 255-character challenges). Measured on defragmented files, so the
// figures are the history's own bytes; the file grows by up to twice that between
// defragmentations (bbolt's pages are filled half before they split). Not parallel: it writes
// as fast as etcd takes it.
func TestHistoryBytesPerWrite(t *testing.T) {
	e, s := startBounded(t, defaultQuotaBytes, time.Hour) // no compaction while measuring
	now := time.Now().UTC().Truncate(time.Second)
	acme := strings.Repeat("A", 43)
	kinds := []struct {
		name   string
		record func(*Record)
		write  func(*Record, int)
		bound  int64
	}{
		{"ping", func(d *Record) {
			d.Mode = ModeDynamic
			d.SetAddr(netip.MustParseAddr("203.0.113.7"))
			d.SetAddr(netip.MustParseAddr("2001:db8::7"))
		}, func(d *Record, i int) { d.LastPing = now.Add(time.Duration(i) * time.Minute) }, 600},
		{"dnsconfig", func(*Record) {}, func(d *Record, i int) {
			d.AddChallenge(fmt.Sprintf("%s%06d", acme[6:], i), now, 2)
		}, 700},
		{"largest", func(d *Record) { d.Description = strings.Repeat("é", 256) }, func(d *Record, i int) {
			d.AddChallenge(fmt.Sprintf("%06d%s", i, strings.Repeat("c", 249)), now, 2)
		}, 2500},
	}
	const writes = 2000
	for _, k := range kinds {
		d := newRecord(k.name)
		k.record(&d)
		k.write(&d, 0)
		k.write(&d, 1)
		if err := s.Create(t.Context(), d); err != nil {
			t.Fatal(err)
		}
		before := defragmentedSize(t, e)
		for i := range writes {
			if _, err := s.Update(t.Context(), ByName(k.name), func(d *Record) error { k.write(d, i+2); return nil }); err != nil {
				t.Fatal(err)
			}
		}
		stored, _ := s.Get(t.Context(), ByName(k.name))
		value, _ := json.Marshal(&stored)
		perWrite := (defragmentedSize(t, e) - before) / writes
		t.Logf("%s: record of %d bytes, %d bytes of history per write", k.name, len(value), perWrite)
		if perWrite > k.bound || perWrite < int64(len(value)) {
			t.Errorf("%s: %d bytes per write, want between the record's %d and %d", k.name, perWrite, len(value), k.bound)
		}
	}
}

func defragmentedSize(t *testing.T, e *Embedded) int64 {
	t.Helper()
	if err := e.etcd.Server.Defragment(); err != nil {
		t.Fatal(err)
	}
	return e.etcd.Server.Backend().Size()
}
