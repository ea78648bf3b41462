package etcdstore

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestNewerSerial(t *testing.T) {
	for _, tc := range []struct {
		a, b uint32
		want bool
	}{
		{2, 1, true}, {1, 2, false}, {1, 1, false},
		{0, 0xffffffff, true},                         // wrapped around
		{0x7fffffff, 0, true}, {0x80000000, 0, false}, // 2^31 apart: undefined, never newer
	} {
		if got := newerSerial(tc.a, tc.b); got != tc.want {
			t.Errorf("newerSerial(%d, %d) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// RaiseSerial lifts the serial over any value, across the 32-bit wrap, writes nothing when
// the serial is already newer, and every view follows.
func TestRaiseSerial(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	s, other := openStore(t, e, ""), openStore(t, e, "")
	if err := s.Create(t.Context(), newRecord("alpha")); err != nil {
		t.Fatal(err)
	}
	for _, above := range []uint32{1000, 0xfffffff0, 5, 1 << 31} {
		cur, err := s.Serial(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.RaiseSerial(t.Context(), above)
		if err != nil {
			t.Fatal(err)
		}
		if newerSerial(cur, above) {
			if got != cur {
				t.Errorf("above %d with serial %d already newer: raised to %d, want unchanged", above, cur, got)
			}
			continue
		}
		if got != above+1 {
			t.Errorf("above %d: serial %d, want %d", above, got, above+1)
		}
		for _, st := range []*Store{s, other} {
			eventually(t, 10*time.Second, "view did not take the raised serial", func() bool { return st.View().Serial() == got })
		}
		if now, err := s.Serial(t.Context()); err != nil || now != got {
			t.Errorf("Serial after RaiseSerial(%d) = %d, %v; want %d", above, now, err, got)
		}
	}
	// Changes after a raise keep the serial moving up by one per revision.
	before := s.View().Serial()
	if err := s.Create(t.Context(), newRecord("beta")); err != nil {
		t.Fatal(err)
	}
	if got := s.View().Serial(); got != before+1 {
		t.Errorf("serial after a change: %d, want %d", got, before+1)
	}
	assertConsistent(t, s)
}

// A full load after the watch fell behind a compaction never takes the serial back.
func TestSerialAcrossCompactionReload(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	s := openStore(t, e, "")
	if _, err := s.RaiseSerial(t.Context(), 50000); err != nil {
		t.Fatal(err)
	}
	v := newView(&Keyspace{cli: s.Client(), keys: s.keys, timeout: time.Second})
	rev, err := v.load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	loaded := v.Serial()
	if loaded <= 50000 {
		t.Fatalf("serial %d after the load, want over the raised 50000", loaded)
	}
	for i := range 3 {
		if err := s.Create(t.Context(), newRecord(fmt.Sprintf("gw%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Client().Compact(t.Context(), s.View().Revision()); err != nil {
		t.Fatal(err)
	}
	v.follow(t.Context(), rev) // returns at once: the watch's start is compacted
	if got := v.Serial(); got != loaded {
		t.Fatalf("serial %d after a compacted watch, want still %d", got, loaded)
	}
	if _, err := v.load(t.Context()); err != nil {
		t.Fatal(err)
	}
	want, err := s.Serial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Serial(); got != want || !newerSerial(got, loaded) {
		t.Errorf("serial %d after the reload, want %d (etcd's), newer than %d", got, want, loaded)
	}
}

// A raised offset and the change right after it reach the view in revision order (one watch
// brings both), so the view's serial is etcd's as soon as the change is acknowledged. With
// two watches, the change could come first and the raise then count for nothing until the
// next change.
func TestSerialRaiseThenChange(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	for i := range 20 {
		above := s.View().Serial() + 100
		if _, err := s.RaiseSerial(t.Context(), above); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(t.Context(), newRecord(fmt.Sprint("n", i))); err != nil {
			t.Fatal(err)
		}
		want, err := s.Serial(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got := s.View().Serial(); got != want {
			t.Fatalf("round %d: view serial %d after RaiseSerial(%d) and a change, etcd's %d", i, got, above, want)
		}
	}
}

// Restoring an etcd snapshot takes the revision back; RaiseSerial after it makes the serial
// newer than any served before, for a replica started on the restored etcd and for one that
// kept running through the restore (whose serial never goes back meanwhile).
func TestSerialAfterSnapshotRestore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e, err := StartEmbedded(loopbackConfig(filepath.Join(dir, "etcd")))
	if err != nil {
		t.Fatal(err)
	}
	clientURL, peerURL := e.Endpoints()[0], "http://"+e.etcd.Peers[0].Listener.Addr().String()
	running := openConfig(t, Config{Endpoints: e.Endpoints(), Timeout: 500 * time.Millisecond})
	for _, name := range []string{"alpha", "beta"} {
		if err := running.Create(t.Context(), newRecord(name)); err != nil {
			t.Fatal(err)
		}
	}
	snapshot := filepath.Join(dir, "snapshot.db")
	saveSnapshot(t, running.Client(), snapshot)
	for i := range 20 {
		if err := running.Create(t.Context(), newRecord(fmt.Sprintf("later%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	served := running.View().Serial()
	e.Close()

	restoreSnapshot(t, snapshot, filepath.Join(dir, "restored"))
	restored, err := StartEmbedded(EmbeddedConfig{Dir: filepath.Join(dir, "restored"), ClientURL: clientURL, PeerURL: peerURL, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(restored.Close)
	fresh := openConfig(t, Config{Endpoints: restored.Endpoints()})
	if err := fresh.View().WaitLoaded(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := fresh.View().Lookup("later0"); ok || fresh.View().Len() != 2 {
		t.Fatalf("restored etcd holds %d names (later0 among them: %v), want the snapshot's 2", fresh.View().Len(), ok)
	}
	if got := fresh.View().Serial(); newerSerial(got, served) || got == served {
		t.Fatalf("serial %d on the restored etcd, served %d before: the restore should have taken it back", got, served)
	}
	t.Logf("serial %d before the restore, %d on the restored etcd", served, fresh.View().Serial())

	raised, err := fresh.RaiseSerial(t.Context(), served)
	if err != nil {
		t.Fatal(err)
	}
	if !newerSerial(raised, served) {
		t.Fatalf("RaiseSerial(%d) = %d, not newer", served, raised)
	}
	if err := fresh.Create(t.Context(), newRecord("gamma")); err != nil {
		t.Fatal(err)
	}
	final := fresh.View().Serial()
	// The replica that ran through the restore reloads from the restored etcd and ends at
	// the same serial, having never shown one older than what it served.
	eventually(t, 20*time.Second, "the running replica did not follow the restored etcd", func() bool {
		got := running.View().Serial()
		if newerSerial(served, got) {
			t.Fatalf("running replica's serial went back from %d to %d", served, got)
		}
		_, ok := running.View().Lookup("gamma")
		return got == final && ok
	})
	if _, ok := running.View().Lookup("later0"); ok {
		t.Error("running replica still holds later0, which the restore removed")
	}
	t.Logf("serial %d after RaiseSerial(%d) and one change, on both replicas", final, served)
}

// saveSnapshot writes etcd's snapshot (Maintenance API) to path.
func saveSnapshot(t *testing.T, cli *clientv3.Client, path string) {
	t.Helper()
	rc, err := cli.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// restoreSnapshot restores the snapshot at path into dir, failing the test if it cannot.
func restoreSnapshot(t *testing.T, path, dir string) {
	t.Helper()
	if err := RestoreSnapshot(path, dir); err != nil {
		t.Fatal(err)
	}
}
