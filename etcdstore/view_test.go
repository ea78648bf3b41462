package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// putRecords writes n records and their token indexes straight into etcd, batched under
// etcd's limit of operations per transaction.
func putRecords(t *testing.T, cli *clientv3.Client, k keys, n int) {
	t.Helper()
	const perTxn = 50
	for first := 0; first < n; first += perTxn {
		var ops []clientv3.Op
		for i := first; i < min(first+perTxn, n); i++ {
			d := newRecord(fmt.Sprintf("gw%05d", i))
			val, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, clientv3.OpPut(k.name(d.Name), string(val)), clientv3.OpPut(k.token(d.Token), d.Name))
		}
		if _, err := cli.Txn(t.Context()).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestViewPagedLoad(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	first := openStore(t, e, "")
	const n = 2*pageSize + 137
	putRecords(t, first.Client(), first.keys, n)

	s := openStore(t, e, "")
	if err := s.View().WaitLoaded(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.View().Len(); got != n {
		t.Errorf("view holds %d names, want %d", got, n)
	}
	for _, name := range []string{"gw00000", fmt.Sprintf("gw%05d", pageSize-1), fmt.Sprintf("gw%05d", pageSize), fmt.Sprintf("gw%05d", n-1)} {
		if d, ok := s.View().Lookup(name); !ok || d.Name != name {
			t.Errorf("Lookup(%s) = %v", name, ok)
		}
	}
	if err := first.View().WaitRevision(t.Context(), s.View().Revision()); err != nil {
		t.Fatal(err)
	}
	if got := first.View().Len(); got != n {
		t.Errorf("the watching view holds %d names, want %d", got, n)
	}
	assertConsistent(t, s)
}

func TestViewAfterCompaction(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	s, other := openStore(t, e, ""), openStore(t, e, "")
	for i := range 5 {
		if err := other.Create(t.Context(), newRecord(fmt.Sprintf("before%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.Delete(t.Context(), ByName("before0"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().Compact(t.Context(), other.View().Revision(), clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := other.Create(t.Context(), newRecord(fmt.Sprintf("after%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.View().WaitRevision(t.Context(), other.View().Revision()); err != nil {
		t.Fatal(err)
	}
	if got := s.View().Len(); got != 7 {
		t.Errorf("view holds %d names, want 7", got)
	}
	if _, ok := s.View().Lookup("before0"); ok {
		t.Error("view still holds the deleted before0")
	}
	if _, ok := s.View().Lookup("after2"); !ok {
		t.Error("view lacks after2")
	}
}

// TestFollowStopsAtCompactedRevision pins the path a watch that fell behind takes: follow
// returns instead of waiting forever, and the load that follows catches up.
func TestFollowStopsAtCompactedRevision(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	s := openStore(t, e, "")
	v := newView(&Keyspace{cli: s.Client(), keys: s.keys, timeout: time.Second})
	rev, err := v.load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Create(t.Context(), newRecord(fmt.Sprintf("gw%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Client().Compact(t.Context(), s.View().Revision()); err != nil {
		t.Fatal(err)
	}

	done := make(chan struct{})
	go func() {
		v.follow(t.Context(), rev)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("follow kept waiting on a compacted revision")
	}
	if v.Len() != 0 {
		t.Errorf("follow applied %d names from a compacted watch", v.Len())
	}
	if _, err := v.load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v.Len() != 3 || v.Revision() != s.View().Revision() {
		t.Errorf("after reload: %d names at revision %d, want 3 at %d", v.Len(), v.Revision(), s.View().Revision())
	}
}

// TestEtcdDownAndBack stops etcd under a Store, checks that calls fail fast while the View
// keeps answering, then restarts etcd on the same data and ports and checks that the View
// catches up with writes (and a compaction) made by another replica, and that calls work again.
func TestEtcdDownAndBack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var restarted *Embedded
	t.Cleanup(func() {
		if restarted != nil {
			restarted.Close()
		}
	})
	e, err := StartEmbedded(loopbackConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	clientURL, peerURL := e.Endpoints()[0], "http://"+e.etcd.Peers[0].Listener.Addr().String()
	const timeout = 500 * time.Millisecond
	s := openConfig(t, Config{Endpoints: e.Endpoints(), Timeout: timeout})
	d := newRecord("alpha")
	if err := s.Create(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	e.Close()

	t.Run("down", func(t *testing.T) {
		noop := func(*Record) error { return nil }
		calls := []struct {
			name string
			call func(context.Context) error
		}{
			{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, ByToken(d.Token)); return err }},
			{"Create", func(ctx context.Context) error { return s.Create(ctx, newRecord("beta")) }},
			{"Update", func(ctx context.Context) error { _, err := s.Update(ctx, ByName("alpha"), noop); return err }},
			{"Delete", func(ctx context.Context) error { _, err := s.Delete(ctx, ByName("alpha"), nil); return err }},
			{"Check", func(ctx context.Context) error { _, err := s.Check(ctx); return err }},
		}
		for _, c := range calls {
			start := time.Now()
			err := c.call(t.Context())
			took := time.Since(start)
			if err == nil || isSentinel(err) {
				t.Errorf("%s with etcd down = %v, want an etcd error", c.name, err)
			}
			if took > 3*timeout {
				t.Errorf("%s took %v to fail, timeout is %v", c.name, took, timeout)
			}
		}
		if got, ok := s.View().Lookup("alpha"); !ok || got.Token != d.Token {
			t.Error("view lost alpha while etcd is down")
		}
	})

	restarted, err = StartEmbedded(EmbeddedConfig{Dir: dir, ClientURL: clientURL, PeerURL: peerURL, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	other := openConfig(t, Config{Endpoints: restarted.Endpoints()})
	if err := other.Create(t.Context(), newRecord("beta")); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Client().Compact(t.Context(), other.View().Revision()); err != nil {
		t.Fatal(err)
	}
	if err := other.Create(t.Context(), newRecord("gamma")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "view did not catch up after etcd restarted", func() bool {
		return s.View().Revision() >= other.View().Revision()
	})
	for _, name := range []string{"alpha", "beta", "gamma"} {
		if _, ok := s.View().Lookup(name); !ok {
			t.Errorf("view lacks %s after etcd restarted", name)
		}
	}

	eventually(t, 15*time.Second, "calls did not recover after etcd restarted", func() bool {
		_, err := s.Get(t.Context(), ByToken(d.Token))
		return err == nil
	})
	if err := s.Create(t.Context(), newRecord("delta")); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.View().Lookup("delta"); !ok {
		t.Error("read-your-writes lost after etcd restarted")
	}
	if err := other.View().WaitRevision(t.Context(), s.View().Revision()); err != nil {
		t.Fatal(err)
	}
	if _, ok := other.View().Lookup("delta"); !ok {
		t.Error("other replica does not see delta")
	}
	assertConsistent(t, s)
}

// maxLagDuring is the greatest Lag of v sampled every 50ms for d.
func maxLagDuring(v *View, d time.Duration) time.Duration {
	var most time.Duration
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		most = max(most, v.Lag())
	}
	return most
}

// TestViewLag: a view that follows etcd reports a lag under a second (progress is asked
// every second and answered within a round trip); with etcd gone the lag grows with the
// outage; once etcd is back, it falls to nothing again.
func TestViewLag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e, err := StartEmbedded(EmbeddedConfig{Dir: dir, ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0", Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	clientURL, peerURL := e.Endpoints()[0], "http://"+e.etcd.Peers[0].Listener.Addr().String()
	s := openConfig(t, Config{Endpoints: e.Endpoints(), Timeout: 500 * time.Millisecond})
	if err := s.View().WaitLoaded(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(t.Context(), newRecord("alpha")); err != nil {
		t.Fatal(err)
	}
	// A change outside the watched prefix moves etcd's revision, not the watch's: the
	// progress the view asks for brings it there.
	if _, err := s.Client().Put(t.Context(), "/elsewhere", "x"); err != nil {
		t.Fatal(err)
	}
	// Unanswered requests would reach 4 s in 5; answered ones stay within a round trip.
	if lag := maxLagDuring(s.View(), 5*time.Second); lag >= 2*time.Second {
		t.Errorf("following etcd, the view's lag reached %v", lag)
	}

	down := time.Now()
	e.Close()
	eventually(t, 15*time.Second, "lag did not grow with etcd down", func() bool { return s.View().Lag() > 3*time.Second })
	if lag, since := s.View().Lag(), time.Since(down); lag > since+probeEvery {
		t.Errorf("lag %v, longer than the outage (%v) and a probe interval", lag, since)
	}
	if got := maxViewLag(); got < 3 {
		t.Errorf("view_lag_seconds %v with a view %v behind", got, s.View().Lag())
	}

	restarted, err := StartEmbedded(EmbeddedConfig{Dir: dir, ClientURL: clientURL, PeerURL: peerURL, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(restarted.Close)
	eventually(t, 20*time.Second, "lag did not fall after etcd came back", func() bool { return s.View().Lag() < time.Second })
	if lag := maxLagDuring(s.View(), 3*time.Second); lag >= 2*time.Second {
		t.Errorf("after etcd came back, the view's lag reached %v", lag)
	}
}

// TestStaticView: a view of plain records, as answer tests build one, is loaded and finds
// its records by name and by token.
func TestStaticView(t *testing.T) {
	gw := &Record{Name: "gw", Token: "tok"}
	v := StaticView(7, gw)
	if !v.Loaded() || v.Serial() != 7 || v.Len() != 1 {
		t.Fatalf("loaded %v, serial %d, %d names; want loaded, 7, 1", v.Loaded(), v.Serial(), v.Len())
	}
	if d, ok := v.Lookup("gw"); !ok || !reflect.DeepEqual(d, *gw) {
		t.Errorf("Lookup(gw) = %v, %v; want the record", d, ok)
	}
	if d, ok := v.LookupToken("tok"); !ok || !reflect.DeepEqual(d, *gw) {
		t.Errorf("LookupToken(tok) = %v, %v; want the record", d, ok)
	}
	if _, ok := v.Lookup("other"); ok {
		t.Error("Lookup(other) found a record")
	}
}

// TestNoteRevisionSeesHistoryGoBack: the probe's revision below the one the view had applied
// when the probe was sent means etcd's history went back (a restore), and sends the watch to
// a full load; below the view's current revision alone it does not, since the watch may have
// applied newer changes while the probe was on its way (that would reload the whole zone
// under a steady write load).
func TestNoteRevisionSeesHistoryGoBack(t *testing.T) {
	v := StaticView(1)
	v.rev = 10
	v.noteRevision(t.Context(), time.Now(), 8, 9, nil)
	select {
	case <-v.wentBack:
		t.Error("revision 9, read after the view had applied 8, taken for a restore")
	default:
	}
	v.noteRevision(t.Context(), time.Now(), 10, 4, nil)
	select {
	case <-v.wentBack:
	default:
		t.Error("revision 4, read after the view had applied 10, not taken for a restore")
	}
}

// TestSelect: Select copies the records it is asked for, from the base a full load built and
// from the overlay of later changes (a changed record as changed, a deleted one not at all),
// and nothing else.
func TestSelect(t *testing.T) {
	e := startEtcd(t)
	first := openStore(t, e, "/select/")
	for _, name := range []string{"a1", "a2", "a3", "b1"} {
		if err := first.Create(t.Context(), newRecord(name)); err != nil {
			t.Fatal(err)
		}
	}
	s := openStore(t, e, "/select/") // its full load puts the four in the base
	if err := s.View().WaitLoaded(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(t.Context(), ByName("a2"), func(d *Record) error { d.Description = "changed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(t.Context(), ByName("a3"), func(*Record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range s.View().Select(func(d *Record) bool { return strings.HasPrefix(d.Name, "a") }) {
		got[d.Name] = d.Description
	}
	want := map[string]string{"a1": "gateway a1", "a2": "changed"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Select(a*) = %v, want %v", got, want)
	}
}
